"""Residual add + LayerNorm + per-frame modulation (+ fp8 quantisation) in one pass over each token.

``norm_modulate(x, ...)`` computes, for ``x`` ``[B, F*T, D]`` (T tokens per latent frame)::

    r = x + y · gate        (``y`` given; ``gate`` [B, F, 1, D] per frame, or none: x + y)
    n = LayerNorm(r)        (over D, float32 statistics, eps; times ``weight`` plus ``bias`` if given)
    h = n · scale1 + shift  (``scale1``/``shift`` [B, F, 1, D] per frame: Wan's ``1 + scale``, ``shift``)

and returns ``(r, h)``: ``r`` in ``x``'s dtype (the new residual stream; ``x`` itself when no ``y``),
``h`` in ``x``'s dtype, or as :class:`~livestyle.models.kernels.quant.QuantizedRows` (per-row e4m3)
with ``quantize=True`` on the fused path — the next GEMM's input, written once. ``norm=False``
skips the LayerNorm and ``h`` (the block's last gated residual): returns ``(r, None)``.

The reference is the block's former op sequence (``torch.addcmul`` in the model dtype, ``nn``
LayerNorm, ``addcmul`` modulation), roundings included. The fused kernel rounds ``r`` to the model
dtype before normalising it (what the next block reads) and rounds ``h`` once.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from livestyle.models.kernels import fused_enabled, run_fused
from livestyle.models.kernels.rows import QuantizedRows

__all__ = ["norm_modulate", "norm_modulate_reference"]


def norm_modulate_reference(x: torch.Tensor, frames: int, eps: float, *, y: torch.Tensor | None = None,
                            gate: torch.Tensor | None = None, weight: torch.Tensor | None = None,
                            bias: torch.Tensor | None = None, shift: torch.Tensor | None = None,
                            scale1: torch.Tensor | None = None, norm: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """PyTorch reference of :func:`norm_modulate` (module docstring), in ``x``'s dtype."""
    b, n, d = x.shape
    if y is not None:
        if gate is not None:
            x = torch.addcmul(x.view(b, frames, -1, d), y.view(b, frames, -1, d), gate).view(b, n, d)
        else:
            x = x + y
    if not norm:
        return x, None
    h = F.layer_norm(x, (d,), weight, bias, eps)
    if scale1 is not None:
        assert shift is not None
        h = torch.addcmul(shift, h.view(b, frames, -1, d), scale1).view(b, n, d)
    return x, h


def norm_modulate(x: torch.Tensor, frames: int, eps: float, *, y: torch.Tensor | None = None,
                  gate: torch.Tensor | None = None, weight: torch.Tensor | None = None,
                  bias: torch.Tensor | None = None, shift: torch.Tensor | None = None,
                  scale1: torch.Tensor | None = None, norm: bool = True,
                  quantize: bool = False) -> tuple[torch.Tensor, torch.Tensor | QuantizedRows | None]:
    """Residual + LayerNorm + modulation (module docstring); fused Triton kernel where enabled.

    ``quantize`` applies on the fused path only (the reference returns ``h`` in ``x``'s dtype and
    the fp8 Linear quantises it)."""
    if (shift is None) != (scale1 is None):
        raise ValueError("pass shift and scale1 together")
    if not fused_enabled(x):
        return norm_modulate_reference(x, frames, eps, y=y, gate=gate, weight=weight, bias=bias,
                                       shift=shift, scale1=scale1, norm=norm)
    def fused() -> tuple[torch.Tensor, torch.Tensor | QuantizedRows | None]:
        from livestyle.models.kernels.triton_norm import norm_modulate_triton

        return norm_modulate_triton(x, frames, eps, y=y, gate=gate, weight=weight, bias=bias, shift=shift,
                                    scale1=scale1, norm=norm, quantize=quantize)

    return run_fused("norm_modulate", fused, lambda: norm_modulate_reference(
        x, frames, eps, y=y, gate=gate, weight=weight, bias=bias, shift=shift, scale1=scale1, norm=norm))
