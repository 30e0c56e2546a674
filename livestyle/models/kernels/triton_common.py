"""Helpers shared by the Triton kernels (imported only where Triton runs)."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

__all__ = ["fp8_rows_buffer", "gelu_tanh", "num_warps_for", "store_fp8_row"]


@triton.jit
def gelu_tanh(x):  # noqa: ANN001, ANN201 (a Triton device function)
    """``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`` in float32; tanh as ``1 - 2 / (e^{2u} + 1)``
    (exact at both tails: e^{2u} overflows to inf → 1, underflows to 0 → -1)."""
    u = 0.7978845608028654 * (x + 0.044715 * x * x * x)
    return 0.5 * x * (2.0 - 2.0 / (tl.exp(2.0 * u) + 1.0))


def num_warps_for(block: int) -> int:
    """Warps for a one-row-per-program kernel over ``block`` columns: ~16 float32 values a thread."""
    return max(1, min(16, block // 512))


@triton.jit
def store_fp8_row(h, q_ptr, s_ptr, row, cols, m, FP8MAX: tl.constexpr, STORE_FP32: tl.constexpr):  # noqa: ANN001, ANN201
    """Quantise one float32 row ``h`` (columns ``cols``, valid where ``m``) to e4m3 with its own scale
    ``max(amax / 448, 1e-12)`` (``rows.MIN_SCALE``): codes at ``q_ptr + row * len``, scale at ``s_ptr + row``.
    ``STORE_FP32`` (the CPU interpreter) stores the scaled, clamped float32 values for PyTorch to cast."""
    h = tl.where(m, h, 0.0)
    scale = tl.maximum(tl.max(tl.abs(h), axis=0) / FP8MAX, 1e-12)
    q = tl.minimum(tl.maximum(h / scale, -FP8MAX), FP8MAX)
    if STORE_FP32:
        tl.store(q_ptr + cols, q, mask=m)
    else:
        tl.store(q_ptr + cols, q.to(tl.float8e4nv), mask=m)
    tl.store(s_ptr + row, scale)


def fp8_rows_buffer(rows: int, cols: int, device: torch.device) -> torch.Tensor:
    """Where a kernel writes fp8 rows: e4m3 on the GPU; float32 under the CPU interpreter, whose own
    float8 cast is not faithful (``.to(torch.float8_e4m3fn)`` afterwards, by the caller)."""
    dtype = torch.float32 if device.type == "cpu" else torch.float8_e4m3fn
    return torch.empty(rows, cols, device=device, dtype=dtype)
