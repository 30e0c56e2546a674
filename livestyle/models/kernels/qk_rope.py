"""Wan's q/k RMSNorm + 3-D RoPE, with K/V written straight into the KV cache, in one pass per token.

``qk_norm_rope(q, k, v, wq, wk, cos, sin, eps, heads, k_out=, v_out=, index=)``:

- ``q``/``k``/``v``: ``[B, L, D]`` views (e.g. the three thirds of the fused qkv GEMM output;
  any row stride, unit column stride), ``D = heads · head_dim``;
- RMSNorm over the full ``D`` (Wan's ``norm_q``/``norm_k``: ``x · rsqrt(mean(x²) + eps) · w``);
- RoPE on adjacent (even, odd) channel pairs, ``cos``/``sin`` ``[B, L, 1, head_dim/2]`` float32
  (``livestyle.models.rope.rope_cos_sin``);
- ``k_out``/``v_out`` (the layer's cache buffers, ``[B, S*T, heads, head_dim]``) with ``index``
  ``[B*L]`` long flat token rows (``BlockSlots.write_index``): row ``i`` of k (after norm and RoPE)
  and of v goes to row ``index[i]``. Without them, fresh ``[B, L, heads, head_dim]`` tensors.

Returns ``(q, k_all, v_all)``: q ``[B, L, heads, head_dim]`` (rotated) and the K/V to attend to
(the whole cache buffers, or the fresh tensors). ``k=None`` (cross-attention's query) normalises
``q`` only, and ``cos=None`` skips RoPE; both return ``(q, None, None)``.

The reference is the former op sequence (fp32 RMSNorm rounded to the model dtype, weight
multiply, complex-multiply RoPE in fp32, ``index_copy_`` into the cache).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from livestyle.models.kernels import fused_enabled, run_fused
from livestyle.models.rope import apply_rope_freqs, rope_freqs

__all__ = ["qk_norm_rope", "qk_norm_rope_reference", "rms_norm_reference"]


def rms_norm_reference(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """The DiT's ``RMSNorm``: float32 statistics, rounded to ``x``'s dtype, times ``weight``."""
    return F.rms_norm(x.float(), (x.shape[-1],), eps=eps).to(x.dtype) * weight


def qk_norm_rope_reference(q: torch.Tensor, k: torch.Tensor | None, v: torch.Tensor | None,
                           wq: torch.Tensor, wk: torch.Tensor | None, cos: torch.Tensor | None,
                           sin: torch.Tensor | None, eps: float, heads: int, *,
                           freqs: torch.Tensor | None = None, k_out: torch.Tensor | None = None,
                           v_out: torch.Tensor | None = None, index: torch.Tensor | None = None,
                           ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """PyTorch reference of :func:`qk_norm_rope` (module docstring); ``freqs`` is the complex
    ``rope_freqs(cos, sin)`` when the caller already has it."""
    rope = cos is not None
    if rope and freqs is None:
        assert sin is not None
        freqs = rope_freqs(cos, sin)
    qn = rms_norm_reference(q, wq, eps).unflatten(-1, (heads, -1))
    qn = apply_rope_freqs(qn, freqs) if rope else qn
    if k is None:
        return qn, None, None
    assert v is not None and wk is not None
    kn = rms_norm_reference(k, wk, eps).unflatten(-1, (heads, -1))
    kn = apply_rope_freqs(kn, freqs) if rope else kn
    vh = v.unflatten(-1, (heads, -1))
    if k_out is None:
        return qn, kn, vh
    assert v_out is not None and index is not None
    flat = (-1,) + tuple(k_out.shape[2:])
    k_out.view(flat).index_copy_(0, index, kn.reshape(flat).to(k_out.dtype))
    v_out.view(flat).index_copy_(0, index, vh.reshape(flat).to(v_out.dtype))
    return qn, k_out, v_out


def qk_norm_rope(q: torch.Tensor, k: torch.Tensor | None, v: torch.Tensor | None,
                 wq: torch.Tensor, wk: torch.Tensor | None, cos: torch.Tensor | None,
                 sin: torch.Tensor | None, eps: float, heads: int, *,
                 freqs: torch.Tensor | None = None, k_out: torch.Tensor | None = None,
                 v_out: torch.Tensor | None = None, index: torch.Tensor | None = None,
                 ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """q/k RMSNorm + RoPE + cache write (module docstring); fused Triton kernel where enabled."""
    if (k_out is None) != (index is None) or (k_out is None) != (v_out is None):
        raise ValueError("pass k_out, v_out and index together")
    if not fused_enabled(q):
        return qk_norm_rope_reference(q, k, v, wq, wk, cos, sin, eps, heads, freqs=freqs,
                                      k_out=k_out, v_out=v_out, index=index)
    def fused() -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        from livestyle.models.kernels.triton_qk_rope import qk_norm_rope_triton

        return qk_norm_rope_triton(q, k, v, wq, wk, cos, sin, eps, heads, k_out=k_out, v_out=v_out, index=index)

    return run_fused("qk_norm_rope", fused, lambda: qk_norm_rope_reference(
        q, k, v, wq, wk, cos, sin, eps, heads, freqs=freqs, k_out=k_out, v_out=v_out, index=index))
