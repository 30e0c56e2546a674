"""Attention with 8-bit inputs to its matrix products (the ``"fp8"`` and ``"int8"`` attention
backends, opt-in).

``fp8_attention(q, k, v, pv=)``: ``q`` ``[B, Lq, heads, D]``, ``k``/``v`` ``[B, Lk, heads, D]`` (bf16
or fp16, every key visible: the KV cache's steady state, and cross-attention) → ``[B, Lq, heads, D]``
in ``q``'s dtype, ``softmax(q kᵀ / sqrt(D)) v`` computed as FlashAttention does (key blocks of
``block_n``, a running max and sum per query), with:

- **Q·Kᵀ in int8**: Q per block of ``block_m`` query rows and K per block of ``block_n`` keys
  quantised to int8 with one scale each (``amax / 127``; 7 bits of precision where e4m3 has 3: ~1 %
  error on the scores' softmax instead of ~4 %); the softmax scale and ``log2 e`` are folded into
  Q's scale, so the scores come out in base-2 units;
- **P·V** (``pv="fp8"``) in e4m3: P (the block's ``exp2(s - m)``, in [0, 1]) as ``P · 448``, V per
  key block and channel (``amax`` over the block's keys of each channel / 448, applied as a column
  scale of the block's ``P V`` before it joins the running sum); or (``pv="bf16"``) P rounded to
  V's dtype and V as it is;
- the running sum of P (the softmax denominator) kept in float32 from the unquantised P.

This is the SageAttention recipe (arXiv 2410.02367 §3: int8 Q·Kᵀ per block; 2411.10958 §3: fp8 P·V
with per-channel V scales) without K smoothing. On Hopper the int8 and fp8 products run at twice
the bf16 rate; whether that beats cuDNN's bf16 flash kernel end to end, with the quantisation
passes, is measured by ``benchmarks/fused_kernels.py --part attn``.

:func:`fp8_attention_reference` is the same algorithm in PyTorch (float32, e4m3 rounding by
``torch.float8_e4m3fn``), block by block; the CPU tests hold the Triton kernel (interpreter) to it,
and both to exact attention within the error the quantisation allows.
"""

from __future__ import annotations

import math

import torch

from livestyle.models.kernels import fused_enabled, run_fused
from livestyle.models.kernels.rows import FP8_MAX, MIN_SCALE

__all__ = ["BLOCKS", "fp8_attention", "fp8_attention_reference", "fp8_attention_supported"]

LOG2E = 1.4426950408889634
BLOCKS: dict[str, tuple[int, int]] = {"cuda": (128, 128), "cpu": (16, 16)}
"""``(block_m, block_n)`` by device type (the interpreter's small blocks keep CPU tests quick)."""


def fp8_attention_supported(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> bool:
    """Whether :func:`fp8_attention` takes these tensors (else the caller uses SDPA)."""
    d = q.shape[-1]
    return (q.ndim == 4 and k.shape == v.shape and k.shape[0] == q.shape[0] and k.shape[2:] == q.shape[2:]
            and d >= 16 and d & (d - 1) == 0 and k.shape[1] > 0 and q.shape[1] > 0
            and fused_enabled(q) and (q.dtype in (torch.bfloat16, torch.float16) or not q.is_cuda))


def _e4m3(x: torch.Tensor) -> torch.Tensor:
    return x.clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn).float()


def _block_scale(x: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    return (x.abs().amax(dim=dims, keepdim=True) / FP8_MAX).clamp(min=MIN_SCALE)


def _int8(x: torch.Tensor, dims: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    scale = (x.abs().amax(dim=dims, keepdim=True) / 127.0).clamp(min=MIN_SCALE)
    return torch.round(x / scale).clamp(-127, 127), scale  # half away from zero, as the kernel


def fp8_attention_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, block_m: int = 16,
                            block_n: int = 16, pv: str = "fp8") -> torch.Tensor:
    """The algorithm of :func:`fp8_attention` in PyTorch (module docstring), float32 throughout."""
    b, lq, h, d = q.shape
    lk = k.shape[1]
    qf = q.float().transpose(1, 2) * (LOG2E / math.sqrt(d))  # [B, H, Lq, D], scores in log2 units
    kf, vf = k.float().transpose(1, 2), v.float().transpose(1, 2)
    out = torch.empty(b, h, lq, d, device=q.device)
    for m0 in range(0, lq, block_m):
        q8, qs = _int8(qf[:, :, m0:m0 + block_m], (2, 3))
        m_i = torch.full(q8.shape[:3], -math.inf, device=q.device)
        l_i = torch.zeros(q8.shape[:3], device=q.device)
        acc = torch.zeros(q8.shape, device=q.device)
        for n0 in range(0, lk, block_n):
            k8, ks = _int8(kf[:, :, n0:n0 + block_n], (2, 3))
            vb = vf[:, :, n0:n0 + block_n]
            s = (q8 @ k8.transpose(-1, -2)) * (qs * ks)
            m_new = torch.maximum(m_i, s.amax(-1))
            p = torch.exp2(s - m_new[..., None])
            alpha = torch.exp2(m_i - m_new)
            l_i = l_i * alpha + p.sum(-1)
            if pv == "fp8":
                vs = _block_scale(vb, (2,))  # [B, H, 1, D]: per channel
                pv_ = (_e4m3(p * FP8_MAX) @ _e4m3(vb / vs)) * (vs / FP8_MAX)
            else:
                pv_ = p.to(v.dtype).float() @ vb
            acc = acc * alpha[..., None] + pv_
            m_i = m_new
        out[:, :, m0:m0 + block_m] = acc / l_i[..., None]
    return out.transpose(1, 2).to(q.dtype)


def fp8_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, pv: str = "fp8") -> torch.Tensor:
    """8-bit attention (module docstring); the Triton kernels where enabled, else the reference."""
    if pv not in ("fp8", "bf16"):
        raise ValueError(f"pv must be fp8 or bf16, got {pv!r}")
    bm, bn = BLOCKS["cuda" if q.is_cuda else "cpu"]
    if not fused_enabled(q):
        return fp8_attention_reference(q, k, v, block_m=bm, block_n=bn, pv=pv)

    def fused() -> torch.Tensor:
        from livestyle.models.kernels.triton_fp8_attention import fp8_attention_triton

        return fp8_attention_triton(q, k, v, block_m=bm, block_n=bn, pv=pv)

    return run_fused("fp8_attention", fused, lambda: fp8_attention_reference(q, k, v, block_m=bm, block_n=bn, pv=pv))
