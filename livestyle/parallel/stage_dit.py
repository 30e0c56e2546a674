"""One pipeline stage's share of the causal Wan DiT: a contiguous run of its blocks.

:class:`StageDiT` holds references to the modules of a :class:`~livestyle.models.dit.CausalWanDiT`
that stage ``span`` owns and runs the same arithmetic as ``CausalWanDiT.forward`` in three parts:

- :meth:`StageDiT.embed` (first stage only): latents ``[B, 16, F, H, W]`` → tokens ``[B, F'*T, dim]``
  (the patch embedding);
- :meth:`StageDiT.blocks_forward` (every stage): tokens through the stage's blocks, with the
  stage's own KV cache (its layers numbered from 0), the time modulation recomputed from the
  timesteps ``[B, F']`` (a few small GEMMs; cheaper than sending it) and RoPE from the cache's block
  positions, which every stage advances identically;
- :meth:`StageDiT.head` (last stage only): tokens → the flow-matching velocity ``[B, 16, F, H, W]``.

Chained over all stages they equal one ``CausalWanDiT`` call on the cached path (checked by
``tests/test_parallel_stage.py``). Every stage also keeps the text and time embeddings (small) so it
fills its blocks' cross-attention K/V itself from the context it is sent.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from livestyle.models.attention import KeyMask
from livestyle.models.dit import CausalWanDiT, DiTConfig, sinusoidal_embedding
from livestyle.models.kernels import fused_enabled
from livestyle.models.kv_cache import BlockSlots, CrossAttnCache, KVCache
from livestyle.models.rope import RopeAngles, rope_cos_sin, rope_freqs
from livestyle.planning.stage_split import StageSpan

__all__ = ["StageDiT"]


class StageDiT:
    """Blocks ``span.start .. span.stop - 1`` of ``dit`` (plus the patch embedding on the first
    stage and the head on the last) as one pipeline stage."""

    def __init__(self, dit: CausalWanDiT, span: StageSpan) -> None:
        if not 0 <= span.start < span.stop <= dit.config.num_layers:
            raise ValueError(f"stage blocks {span.start}..{span.stop - 1} are not within the model's {dit.config.num_layers}")
        self.dit = dit
        self.span = span
        self.blocks: list[nn.Module] = list(dit.blocks[span.start:span.stop])
        self.config: DiTConfig = replace(dit.config, num_layers=span.stop - span.start)
        """The model's config with this stage's block count: the stage's KV caches are sized by it."""

    # ------------------------------------------------------------------ pieces of the forward
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Latents ``[B, 16, F, H, W]`` → tokens ``[B, F/pt * H/ph * W/pw, dim]`` (first stage)."""
        dtype = self.dit.patch_embedding.weight.dtype
        return self.dit.patch_embedding(x.to(dtype)).flatten(2).transpose(1, 2)

    def time_embedding(self, timestep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Timesteps ``[B, F']`` → ``(e [B, F', dim], e0 [B, F', 6, dim])`` as ``CausalWanDiT.forward``."""
        d = self.dit
        emb_dtype = d.time_embedding[0].weight.dtype
        e = d.time_embedding(sinusoidal_embedding(timestep, d.config.freq_dim).to(emb_dtype))
        e0 = d.time_projection(e).unflatten(-1, (6, d.config.dim))
        return e, e0

    def blocks_forward(self, tokens: torch.Tensor, timestep: torch.Tensor, grid: tuple[int, int, int],
                       cache: KVCache, block: BlockSlots) -> torch.Tensor:
        """Tokens ``[B, F'*T, dim]`` through this stage's blocks at ``timestep`` ``[B, F']``;
        ``grid`` = ``(F', H', W')`` in patches; ``cache`` is the stage's own (``self.config``'s
        layers) with its cross-attention K/V filled (:meth:`encode_prompt`)."""
        fp, hp, wp = grid
        b = tokens.shape[0]
        if cache.tokens_per_frame != hp * wp or cache.batch != b:
            raise ValueError(f"cache is for B={cache.batch}, T={cache.tokens_per_frame}; tokens give B={b}, T={hp * wp}")
        if not cache.cross.filled:
            raise ValueError("the stage's cross-attention cache is empty; call encode_prompt first")
        _, e0 = self.time_embedding(timestep)
        cos, sin = rope_cos_sin(self.dit.rope_tables(tokens.device), block.positions, hp, wp)
        rope = RopeAngles(cos, sin, None if fused_enabled(tokens) else rope_freqs(cos, sin))
        mask: KeyMask | None = None
        if not cache.full:
            mask = cache.key_mask(block)
        stacked = torch.stack([blk.modulation for blk in self.blocks])  # [L, 1, 6, dim]
        mods = (stacked.unsqueeze(1) + e0.unsqueeze(0)).to(tokens.dtype)  # [L, B, F, 6, dim]
        mods[:, :, :, 1::3].add_(1)  # scale_sa, scale_ff (CausalWanDiT._modulations)
        mods = mods.unsqueeze(4)
        cross = cache.cross
        for i, blk in enumerate(self.blocks):
            tokens = blk(tokens, mods[i], fp, rope, mask, cross.k[i], cross.v[i], cache, i, block)
        return tokens

    def head(self, tokens: torch.Tensor, timestep: torch.Tensor, shape: tuple[int, ...],
             out_dtype: torch.dtype) -> torch.Tensor:
        """Tokens ``[B, F'*T, dim]`` → velocity ``[B, 16, F, H, W]`` (``shape`` = the latents'
        shape) in ``out_dtype`` (last stage)."""
        cfg = self.dit.config
        b, _, f, hgt, wid = shape
        pt, ph, pw = cfg.patch_size
        fp, hp, wp = f // pt, hgt // ph, wid // pw
        e, _ = self.time_embedding(timestep)
        out = self.dit.head(tokens, e, fp)
        out = out.view(b, fp, hp, wp, pt, ph, pw, cfg.out_dim)
        out = torch.einsum("bfhwpqrc->bcfphqwr", out).reshape(b, cfg.out_dim, f, hgt, wid)
        return out.to(out_dtype)

    @torch.no_grad()
    def encode_prompt(self, context: torch.Tensor, cross: CrossAttnCache) -> None:
        """Fill ``cross`` (``self.config``'s layers) with this stage's blocks' K/V of ``context``
        ``[1, L, text_dim]`` (``CausalWanDiT.encode_prompt`` for a slice of the blocks)."""
        ctx = self.dit.embed_context(context)
        for i, blk in enumerate(self.blocks):
            k, v = blk.cross_attn.context_kv(ctx)
            cross.k[i].copy_(k.expand_as(cross.k[i]))
            cross.v[i].copy_(v.expand_as(cross.v[i]))
        cross.filled = True

    def grid(self, shape: tuple[int, ...]) -> tuple[int, int, int]:
        """``(F', H', W')`` in patches for latents of ``shape`` ``[B, 16, F, H, W]``."""
        pt, ph, pw = self.dit.config.patch_size
        return shape[2] // pt, shape[3] // ph, shape[4] // pw
