"""The causal Wan 2.1 diffusion transformer: one model for every checkpoint family.

Parameter names are the *original* Wan names (``patch_embedding``, ``blocks.N.self_attn.q``,
``blocks.N.norm3``, ``head.head``, ...; docs/models.md), so original, Self-Forcing, CausVid,
StreamDiffusionV2, Krea and LongLive weights load with at most a prefix strip
(``livestyle.models.checkpoints.load_dit``).

Forward contract::

    velocity = model(x, timestep, context=None, *, cache=None, block=None,
                     causal_block_frames=None, kv_bias=None, frame_positions=None)

- ``x``: ``[B, 16, F, H, W]`` latents (H, W multiples of 2 in latent space, i.e. 16 px).
- ``timestep``: ``[B]`` (one per sample) or ``[B, F]`` (one per latent frame), float in 0..1000.
- ``context``: ``[B or 1, L, text_dim]`` text embeddings, L ≤ 512, zero-padded to ``text_len``
  inside (Wan attends to all 512 slots). May be ``None`` when ``cache.cross`` is filled.
- returns the flow-matching velocity ``v = noise - x0``, ``[B, 16, F, H, W]``, in ``x``'s dtype.

Without a cache it is the plain bidirectional Wan forward over all F frames at temporal positions
``0..F-1`` (or ``frame_positions`` ``[B, F]``); ``causal_block_frames=k`` makes it block-causal
(blocks of k frames; the reference for the cached path). With ``cache=`` and ``block=`` (from
``cache.begin_block(F)``) the block's K/V are written into the cache at the block's slots and
its queries attend to every cached frame plus the block itself (``causal_block_frames`` then
applies within the block: Krea's recompute / LongLive's re-cache fill the cache exactly as
block-by-block feeding would). ``kv_bias`` is Krea's KV attention bias (see ``KVCache.key_mask``).
If ``cache.cross`` is not filled, the cross-attention K/V are computed from ``context`` and
stored; if it is filled, ``context`` is ignored (call ``cache.cross.reset()`` on a prompt change,
or ``encode_prompt`` to refill explicitly).

Fast path on GPU: bf16 weights (``model.to(torch.bfloat16)``), SDPA/FlashAttention,
``model.fuse_qkv()`` after loading (one GEMM for q/k/v, one for cross-attention k/v), fixed
cache buffers and device-side positions (no host syncs), so the step compiles once per block
shape and can be CUDA-graphed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from livestyle.models.cuda_graphs import StepGraphs

from livestyle.models.attention import KeyMask, attention
from livestyle.models.kernels import fused_enabled
from livestyle.models.kernels.norm import norm_modulate
from livestyle.models.kernels.qk_rope import qk_norm_rope, rms_norm_reference
from livestyle.models.kernels.quant import quantize_rows
from livestyle.models.kernels.rows import QuantizedRows
from livestyle.models.kv_cache import BlockSlots, KVCache
from livestyle.models.rope import RopeAngles, RopeTables, build_rope_tables, rope_cos_sin, rope_freqs

__all__ = ["DIT_CONFIGS", "CausalWanDiT", "DiTConfig", "sinusoidal_embedding"]


@dataclass(frozen=True)
class DiTConfig:
    """Sizes of a Wan 2.1 T2V transformer (Wan 2.1 wan/modules/model.py, Wan-Video/Wan2.1)."""

    dim: int
    ffn_dim: int
    num_heads: int
    num_layers: int
    in_dim: int = 16
    out_dim: int = 16
    text_dim: int = 4096
    text_len: int = 512
    freq_dim: int = 256
    eps: float = 1e-6
    patch_size: tuple[int, int, int] = (1, 2, 2)
    rope_max_frames: int = 1024

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads

    @property
    def patch_numel(self) -> int:
        return self.out_dim * math.prod(self.patch_size)

    def tokens_per_frame(self, height: int, width: int) -> int:
        """Tokens per latent frame for a latent of ``height x width`` (pixels / 8)."""
        return (height // self.patch_size[1]) * (width // self.patch_size[2])

    def __post_init__(self) -> None:
        if self.dim % self.num_heads:
            raise ValueError(f"dim {self.dim} is not a multiple of num_heads {self.num_heads}")


DIT_CONFIGS: dict[str, DiTConfig] = {
    "1.3b": DiTConfig(dim=1536, ffn_dim=8960, num_heads=12, num_layers=30),
    "14b": DiTConfig(dim=5120, ffn_dim=13824, num_heads=40, num_layers=40),
    "tiny": DiTConfig(dim=64, ffn_dim=128, num_heads=2, num_layers=2, text_dim=32),
}


def sinusoidal_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Wan's timestep embedding: ``concat(cos, sin)`` of ``t * 10000^(-i/half)`` in float64.

    ``t``: any shape, float (0..1000); returns ``t.shape + (dim,)`` float64.
    """
    half = dim // 2
    freqs = torch.pow(10000.0, -torch.arange(half, device=t.device, dtype=torch.float64) / half)
    args = t.to(torch.float64)[..., None] * freqs
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class RMSNorm(nn.Module):
    """x · rsqrt(mean(x²) + eps) · weight, computed in fp32, cast back."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm_reference(x, self.weight, self.eps)


def concat_linears(*linears: nn.Linear) -> nn.Linear:
    """One Linear whose output is the given Linears' outputs concatenated (one GEMM instead of several).

    The fused parameters keep the originals' ``requires_grad``: a fused inference model must not
    start recording autograd graphs (a stream that chained them through its KV cache grew from
    9 to 129 GiB on the GPU).
    """
    first = linears[0]
    fused = nn.Linear(first.in_features, sum(lin.out_features for lin in linears),
                      device=first.weight.device, dtype=first.weight.dtype)
    with torch.no_grad():
        fused.weight.copy_(torch.cat([lin.weight for lin in linears]))
        fused.bias.copy_(torch.cat([lin.bias for lin in linears]))
    fused.requires_grad_(first.weight.requires_grad)
    return fused


class SelfAttention(nn.Module):
    """Wan self-attention (q/k RMSNorm over the full dim, 3-D RoPE) with an optional KV cache."""

    def __init__(self, dim: int, num_heads: int, eps: float) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.o = nn.Linear(dim, dim)
        self.norm_q = RMSNorm(dim, eps)
        self.norm_k = RMSNorm(dim, eps)
        self.qkv: nn.Linear | None = None

    def fuse(self) -> None:
        """Replace q/k/v by one ``qkv`` Linear (same math, one GEMM)."""
        if self.qkv is not None:
            return
        self.qkv = concat_linears(self.q, self.k, self.v)
        del self.q, self.k, self.v

    def forward(self, x: torch.Tensor | QuantizedRows, rope: RopeAngles, mask: KeyMask | None,
                cache: KVCache | None, layer: int, block: BlockSlots | None) -> torch.Tensor:
        """``x`` ``[B, L, dim]`` (or its fp8 rows on the fused path) → ``[B, L, dim]``."""
        if self.qkv is not None:
            q, k, v = self.qkv(x).chunk(3, dim=-1)
        else:
            q, k, v = self.q(x), self.k(x), self.v(x)
        # the fused kernel writes K/V straight into the cache's slots; the adaptive sink must see
        # the new K/V before it places them, so it keeps the cache's own write
        direct = cache is not None and not cache.adaptive_sink
        if direct:
            assert cache is not None and block is not None
            q, k, v = qk_norm_rope(q, k, v, self.norm_q.weight, self.norm_k.weight, rope.cos, rope.sin,
                                   self.norm_q.eps, self.num_heads, freqs=rope.freqs,
                                   k_out=cache.k[layer], v_out=cache.v[layer], index=block.write_index)
        else:
            q, k, v = qk_norm_rope(q, k, v, self.norm_q.weight, self.norm_k.weight, rope.cos, rope.sin,
                                   self.norm_q.eps, self.num_heads, freqs=rope.freqs)
            if cache is not None:
                assert block is not None and k is not None and v is not None
                k, v = cache.write(layer, block, k, v)
        assert k is not None and v is not None
        out = attention(q, k.to(q.dtype), v.to(q.dtype), mask)
        return self.o(out.flatten(2))


class CrossAttention(nn.Module):
    """Wan T2V cross-attention: no RoPE, no mask, all ``text_len`` context slots attended."""

    def __init__(self, dim: int, num_heads: int, eps: float) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.o = nn.Linear(dim, dim)
        self.norm_q = RMSNorm(dim, eps)
        self.norm_k = RMSNorm(dim, eps)
        self.kv: nn.Linear | None = None

    def fuse(self) -> None:
        """Replace k/v by one ``kv`` Linear."""
        if self.kv is not None:
            return
        self.kv = concat_linears(self.k, self.v)
        del self.k, self.v

    def context_kv(self, ctx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """K/V ``[B, text_len, heads, head_dim]`` of the text-embedded context ``[B, text_len, dim]``."""
        if self.kv is not None:
            k, v = self.kv(ctx).chunk(2, dim=-1)
        else:
            k, v = self.k(ctx), self.v(ctx)
        return self.norm_k(k).unflatten(-1, (self.num_heads, -1)), v.unflatten(-1, (self.num_heads, -1))

    def forward(self, x: torch.Tensor | QuantizedRows, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        q, _, _ = qk_norm_rope(self.q(x), None, None, self.norm_q.weight, None, None, None,
                               self.norm_q.eps, self.num_heads)
        if k.shape[0] != q.shape[0]:  # one prompt for a whole batch (real strides for flash-attn)
            k = k.expand(q.shape[0], *k.shape[1:]).contiguous()
            v = v.expand(q.shape[0], *v.shape[1:]).contiguous()
        out = attention(q, k.to(q.dtype), v.to(q.dtype))
        return self.o(out.flatten(2))


class WanBlock(nn.Module):
    """One Wan attention block with per-frame modulation (Wan 2.1 wan/modules/model.py, Wan-Video/Wan2.1)."""

    def __init__(self, cfg: DiTConfig) -> None:
        super().__init__()
        dim = cfg.dim
        self.norm1 = nn.LayerNorm(dim, eps=cfg.eps, elementwise_affine=False)
        self.self_attn = SelfAttention(dim, cfg.num_heads, cfg.eps)
        self.norm3 = nn.LayerNorm(dim, eps=cfg.eps, elementwise_affine=True)
        self.cross_attn = CrossAttention(dim, cfg.num_heads, cfg.eps)
        self.norm2 = nn.LayerNorm(dim, eps=cfg.eps, elementwise_affine=False)
        self.ffn = nn.Sequential(nn.Linear(dim, cfg.ffn_dim), nn.GELU(approximate="tanh"), nn.Linear(cfg.ffn_dim, dim))
        self.modulation = nn.Parameter(torch.randn(1, 6, dim) / dim**0.5)

    def forward(self, x: torch.Tensor, mod: torch.Tensor, frames: int, rope: RopeAngles,
                mask: KeyMask | None, ctx_k: torch.Tensor, ctx_v: torch.Tensor,
                cache: KVCache | None, layer: int, block: BlockSlots | None) -> torch.Tensor:
        """``x`` ``[B, F*T, dim]``; ``mod`` ``[B, F, 6, 1, dim]`` in ``x``'s dtype: this block's
        ``modulation + e0`` with 1 already added to both scales (``CausalWanDiT._modulations``).

        Each residual add and the LayerNorm + modulation after it are one ``norm_modulate`` (one
        fused kernel on the GPU, which also writes fp8 rows when the next Linear is fp8)."""
        shift_sa, scale_sa, gate_sa, shift_ff, scale_ff, gate_ff = mod.unbind(2)  # [B, F, 1, dim]
        eps = self.norm1.eps
        ffn_in, ffn_act, ffn_out = self.ffn

        _, h = norm_modulate(x, frames, eps, shift=shift_sa, scale1=scale_sa,
                             quantize=_takes_quantized(self.self_attn.qkv))
        y = self.self_attn(h, rope, mask, cache, layer, block)  # type: ignore[arg-type]
        x, h = norm_modulate(x, frames, eps, y=y, gate=gate_sa, weight=self.norm3.weight, bias=self.norm3.bias,
                             quantize=_takes_quantized(self.cross_attn.q))
        y = self.cross_attn(h, ctx_k, ctx_v)  # type: ignore[arg-type]
        x, h = norm_modulate(x, frames, eps, y=y, shift=shift_ff, scale1=scale_ff,
                             quantize=_takes_quantized(ffn_in))
        if isinstance(h, torch.Tensor) and h.is_cuda and fused_enabled(h) and type(ffn_in) is nn.Linear:
            y = ffn_out(_linear_gelu(h, ffn_in))
        else:
            hidden = ffn_in(h)
            if _takes_quantized(ffn_out) and fused_enabled(hidden):
                y = ffn_out(quantize_rows(hidden, gelu=True))  # GELU and the fp8 cast in one kernel
            else:
                y = ffn_out(ffn_act(hidden))
        x, _ = norm_modulate(x, frames, eps, y=y, gate=gate_ff, norm=False)
        return x


def _linear_gelu(h: torch.Tensor, linear: nn.Linear) -> torch.Tensor:
    """``gelu_tanh(linear(h))`` with the GELU in cuBLASLt's GEMM epilogue (its GELU is the tanh
    form; one pass over the 13824-wide hidden instead of two): ``h`` ``[B, L, dim]`` →
    ``[B, L, ffn_dim]``. Measured on an H100 at the 14B's FFN shape: 1.16 vs 1.35 ms, relative
    difference 0.003 to Linear + ``F.gelu(approximate="tanh")`` (bf16 rounding)."""
    out = torch._addmm_activation(linear.bias, h.reshape(-1, h.shape[-1]), linear.weight.t(), use_gelu=True)
    return out.view(*h.shape[:-1], -1)


def _takes_quantized(linear: nn.Module | None) -> bool:
    """Whether ``linear`` takes fp8 rows (``Fp8Linear``) that a fused kernel can write directly."""
    return bool(getattr(linear, "takes_quantized", False))


class Head(nn.Module):
    """Output head: LayerNorm, per-frame (shift, scale) from the time embedding, Linear to patches."""

    def __init__(self, cfg: DiTConfig) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(cfg.dim, eps=cfg.eps, elementwise_affine=False)
        self.head = nn.Linear(cfg.dim, cfg.patch_numel)
        self.modulation = nn.Parameter(torch.randn(1, 2, cfg.dim) / cfg.dim**0.5)

    def forward(self, x: torch.Tensor, e: torch.Tensor, frames: int) -> torch.Tensor:
        shift, scale = (self.modulation.unsqueeze(0) + e.unsqueeze(2)).to(x.dtype).unsqueeze(3).unbind(2)
        if fused_enabled(x):
            _, h = norm_modulate(x, frames, self.norm.eps, shift=shift, scale1=1 + scale)
        else:
            b, n, d = x.shape
            h = (self.norm(x).view(b, frames, -1, d) * (1 + scale) + shift).view(b, n, d)
        return self.head(h)


class CausalWanDiT(nn.Module):
    """Wan 2.1 T2V transformer with per-frame timesteps and an optional explicit KV cache."""

    def __init__(self, config: DiTConfig) -> None:
        super().__init__()
        self.config = config
        d = config.dim
        self.patch_embedding = nn.Conv3d(config.in_dim, d, kernel_size=config.patch_size, stride=config.patch_size)
        self.text_embedding = nn.Sequential(nn.Linear(config.text_dim, d), nn.GELU(approximate="tanh"), nn.Linear(d, d))
        self.time_embedding = nn.Sequential(nn.Linear(config.freq_dim, d), nn.SiLU(), nn.Linear(d, d))
        self.time_projection = nn.Sequential(nn.SiLU(), nn.Linear(d, 6 * d))
        self.blocks = nn.ModuleList(WanBlock(config) for _ in range(config.num_layers))
        self.head = Head(config)
        self._rope: RopeTables | None = None
        self._graphs: StepGraphs | None = None

    # ------------------------------------------------------------------ helpers
    def rope_tables(self, device: torch.device) -> RopeTables:
        """RoPE tables (not part of the state dict), built once per device."""
        if self._rope is None or self._rope.cos[0].device != device:
            self._rope = build_rope_tables(self.config.head_dim, self.config.rope_max_frames, device=device)
        return self._rope

    def fuse_qkv(self) -> CausalWanDiT:
        """Fuse self-attention q/k/v and cross-attention k/v into single GEMMs (after loading)."""
        for blk in self.blocks:
            blk.self_attn.fuse()
            blk.cross_attn.fuse()
        return self

    def quantize_fp8(self) -> CausalWanDiT:
        """Swap every Linear inside the blocks for an e4m3 ``Fp8Linear`` (``livestyle.models.fp8``;
        call after ``fuse_qkv``). Embeddings and the head stay in the model dtype. Opt-in speed
        option for Hopper-class GPUs; not reversible."""
        from livestyle.models.fp8 import quantize_linears_fp8

        quantize_linears_fp8(self.blocks)
        return self

    def embed_context(self, context: torch.Tensor) -> torch.Tensor:
        """``[B, L<=text_len, text_dim]`` → zero-pad to ``text_len`` → ``[B, text_len, dim]``."""
        cfg = self.config
        if context.ndim != 3 or context.shape[-1] != cfg.text_dim or context.shape[1] > cfg.text_len:
            raise ValueError(f"context must be [B, L<={cfg.text_len}, {cfg.text_dim}], got {context.shape=}")
        w = self.text_embedding[0].weight
        context = context.to(w.dtype)
        if context.shape[1] < cfg.text_len:
            context = F.pad(context, (0, 0, 0, cfg.text_len - context.shape[1]))
        return self.text_embedding(context)

    def context_kv(self, context: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per-layer cross-attention K/V ``[B, text_len, heads, head_dim]`` for a raw context."""
        ctx = self.embed_context(context)
        return [blk.cross_attn.context_kv(ctx) for blk in self.blocks]

    @torch.no_grad()
    def encode_prompt(self, context: torch.Tensor, cross: KVCache | object) -> None:
        """Fill a ``CrossAttnCache`` (or a ``KVCache``'s ``.cross``) from ``context`` ``[B or 1, L, text_dim]``."""
        cc = cross.cross if isinstance(cross, KVCache) else cross
        for layer, (k, v) in enumerate(self.context_kv(context)):
            cc.k[layer].copy_(k.expand_as(cc.k[layer]))  # type: ignore[attr-defined]
            cc.v[layer].copy_(v.expand_as(cc.v[layer]))  # type: ignore[attr-defined]
        cc.filled = True  # type: ignore[attr-defined]

    def _modulations(self, e0: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """Every block's ``modulation + e0`` at once: ``[L, B, F, 6, 1, dim]`` in ``dtype``, with 1
        added to the two scale rows (indices 1 and 4) — two kernels per forward instead of four per layer."""
        stacked = torch.stack([blk.modulation for blk in self.blocks])  # [L, 1, 6, dim]
        mods = (stacked.unsqueeze(1) + e0.unsqueeze(0)).to(dtype)  # [L, B, F, 6, dim]
        mods[:, :, :, 1::3].add_(1)  # scale_sa (1), scale_ff (4)
        return mods.unsqueeze(4)

    # ------------------------------------------------------------------ CUDA graphs
    def enable_cuda_graphs(self, warmup_calls: int = 2) -> CausalWanDiT:
        """Replay the steady-state cached step from CUDA graphs (``livestyle.models.cuda_graphs``).

        Calls with a full cache, a filled cross-attention cache, no block-causal mask and no KV bias
        are captured per (input shapes, cache, block handle) after ``warmup_calls`` eager calls and
        replayed from then on: one launch per forward instead of ~1000. Everything else stays eager.
        No-op off CUDA.
        """
        from livestyle.models.cuda_graphs import StepGraphs

        self._graphs = StepGraphs(warmup_calls=warmup_calls)
        return self

    def disable_cuda_graphs(self) -> None:
        """Drop captured graphs (and their memory pool); every call runs eagerly again."""
        self._graphs = None

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor, timestep: torch.Tensor, context: torch.Tensor | None = None, *,
                cache: KVCache | None = None, block: BlockSlots | None = None,
                causal_block_frames: int | None = None, kv_bias: float | None = None,
                frame_positions: torch.Tensor | None = None) -> torch.Tensor:
        cfg = self.config
        if x.ndim != 5 or x.shape[1] != cfg.in_dim:
            raise ValueError(f"x must be [B, {cfg.in_dim}, F, H, W], got {x.shape=}")
        b, _, f, hgt, wid = x.shape
        pt, ph, pw = cfg.patch_size
        if f % pt or hgt % ph or wid % pw:
            raise ValueError(f"latent F/H/W must be multiples of the patch size {cfg.patch_size}, got {x.shape=}")
        fp, hp, wp = f // pt, hgt // ph, wid // pw
        if timestep.ndim == 1:
            timestep = timestep[:, None].expand(b, fp)
        if timestep.shape != (b, fp):
            raise ValueError(f"timestep must be [B] or [B, F] with B={b}, F={fp}, got {timestep.shape=}")
        if (cache is None) != (block is None):
            raise ValueError("pass cache= and block= together (block = cache.begin_block(F))")
        if block is not None and block.num_frames != fp:
            raise ValueError(f"block holds {block.num_frames} frames but x has {fp}")

        graphs = self._graphs
        if (graphs is not None and not graphs.capturing and cache is not None and block is not None
                and graphs.eligible(x, cache, causal_block_frames, kv_bias, frame_positions)):
            return graphs.run(self, x, timestep, cache, block)

        dtype = self.patch_embedding.weight.dtype
        tokens = self.patch_embedding(x.to(dtype)).flatten(2).transpose(1, 2)  # [B, F*T, dim]

        # time embeddings per frame: e [B, F, dim] (head), e0 [B, F, 6, dim] (blocks)
        emb_dtype = self.time_embedding[0].weight.dtype
        e = self.time_embedding(sinusoidal_embedding(timestep, cfg.freq_dim).to(emb_dtype))
        e0 = self.time_projection(e).unflatten(-1, (6, cfg.dim))

        # positions and keys
        if block is not None:
            positions = block.positions
        elif frame_positions is not None:
            positions = frame_positions
        else:
            positions = torch.arange(fp, device=x.device)[None].expand(b, fp)
        cos, sin = rope_cos_sin(self.rope_tables(x.device), positions, hp, wp)
        # the fused kernel reads cos/sin; the reference path multiplies by one complex tensor
        rope = RopeAngles(cos, sin, None if fused_enabled(tokens) else rope_freqs(cos, sin))
        if cache is not None:
            assert block is not None
            if cache.tokens_per_frame != hp * wp or cache.batch != b:
                raise ValueError(f"cache is for B={cache.batch}, T={cache.tokens_per_frame}; x gives B={b}, T={hp * wp}")
            mask: KeyMask | None = None  # a full cache with no bias: every key visible, unmasked attention
            if not (cache.full and causal_block_frames is None and (kv_bias is None or kv_bias == 1.0)):
                mask = cache.key_mask(block, causal_block_frames=causal_block_frames, kv_bias=kv_bias)
        elif causal_block_frames is not None:
            mask = _block_causal_mask(fp, int(causal_block_frames), hp * wp, x.device)
        else:
            mask = None

        # cross-attention K/V
        cross = cache.cross if cache is not None else None
        if cross is not None and cross.filled:
            ctx_kv = [(cross.k[i], cross.v[i]) for i in range(cfg.num_layers)]
        else:
            if context is None:
                raise ValueError("context is required unless cache.cross is filled (encode_prompt)")
            if cross is not None:
                self.encode_prompt(context, cross)
                ctx_kv = [(cross.k[i], cross.v[i]) for i in range(cfg.num_layers)]
            else:
                ctx_kv = self.context_kv(context)

        mods = self._modulations(e0, tokens.dtype)
        for i, blk in enumerate(self.blocks):
            tokens = blk(tokens, mods[i], fp, rope, mask, ctx_kv[i][0], ctx_kv[i][1], cache, i, block)

        out = self.head(tokens, e, fp)  # [B, F*T, 64]
        out = out.view(b, fp, hp, wp, pt, ph, pw, cfg.out_dim)
        out = torch.einsum("bfhwpqrc->bcfphqwr", out).reshape(b, cfg.out_dim, f, hgt, wid)
        return out.to(x.dtype)


def _block_causal_mask(frames: int, block_frames: int, tokens_per_frame: int, device: torch.device) -> KeyMask:
    """Additive ``[1, 1, F*T, F*T]`` mask: frame i sees frame j iff ``j // k <= i // k``."""
    blk = torch.arange(frames, device=device) // block_frames
    frame_bias = torch.zeros(frames, frames, device=device).masked_fill(blk[None, :] > blk[:, None], float("-inf"))
    bias = frame_bias.repeat_interleave(tokens_per_frame, 0).repeat_interleave(tokens_per_frame, 1)
    return KeyMask(bias=bias[None, None], frame_bias=frame_bias[None], tokens_per_frame=tokens_per_frame)
