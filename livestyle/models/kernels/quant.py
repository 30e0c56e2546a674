"""Per-row e4m3 quantisation of a GEMM input, optionally through GELU-tanh first.

``quantize_rows(x)``: ``x`` ``[..., K]`` (bf16/fp16/fp32) → :class:`QuantizedRows` with
``data`` ``[M, K]`` float8_e4m3fn (M = rows of ``x``) and ``scale`` ``[M, 1]`` float32, such that
``x ≈ data · scale``; ``scale = max(amax(|row|) / 448, 1e-12)``. Per-row (per-token) scales keep a
token with large activations from crushing every other token's resolution, and are what
``torch._scaled_mm``'s row-wise mode takes (``scale_a [M, 1]``).

``gelu=True`` quantises ``gelu_tanh(x)`` instead (the FFN's hidden activation): one read of the
bf16 hidden state, one write of fp8, in place of GELU's read+write plus the quantiser's.

The Triton kernel runs one program per row, in float32. Under the CPU interpreter (tests) the
kernel stores the scaled, clamped float32 values and the final cast to e4m3 is done by PyTorch
(the interpreter's float8 cast is not faithful); on the GPU the kernel casts in registers.
"""

from __future__ import annotations

import torch

from livestyle.models.kernels import fused_enabled, run_fused
from livestyle.models.kernels.rows import FP8_MAX, MIN_SCALE, QuantizedRows

__all__ = ["FP8_MAX", "QuantizedRows", "gelu_tanh_reference", "quantize_rows", "quantize_rows_reference"]

def gelu_tanh_reference(x: torch.Tensor) -> torch.Tensor:
    """``nn.GELU(approximate="tanh")`` (the Wan FFN activation)."""
    return torch.nn.functional.gelu(x, approximate="tanh")


def quantize_rows_reference(x: torch.Tensor, gelu: bool = False) -> QuantizedRows:
    """PyTorch reference of :func:`quantize_rows` (GELU, when asked, rounds to ``x``'s dtype first)."""
    if gelu:
        x = gelu_tanh_reference(x)
    x2 = x.reshape(-1, x.shape[-1]).float()
    scale = (x2.abs().amax(dim=1, keepdim=True) / FP8_MAX).clamp(min=MIN_SCALE)
    data = (x2 / scale).clamp_(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn)
    return QuantizedRows(data, scale, tuple(x.shape[:-1]))


def quantize_rows(x: torch.Tensor, gelu: bool = False) -> QuantizedRows:
    """Per-row e4m3 quantisation (module docstring); fused Triton kernel where enabled."""
    if not fused_enabled(x):
        return quantize_rows_reference(x, gelu)
    def fused() -> QuantizedRows:
        from livestyle.models.kernels.triton_quant import quantize_rows_triton

        return quantize_rows_triton(x, gelu)

    return run_fused("quantize_rows", fused, lambda: quantize_rows_reference(x, gelu))
