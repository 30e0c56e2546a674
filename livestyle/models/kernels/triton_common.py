"""Helpers shared by the Triton kernels (imported only where Triton runs)."""

from __future__ import annotations

import triton
import triton.language as tl

__all__ = ["gelu_tanh", "num_warps_for"]


@triton.jit
def gelu_tanh(x):  # noqa: ANN001, ANN201 (a Triton device function)
    """``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`` in float32; tanh as ``1 - 2 / (e^{2u} + 1)``
    (exact at both tails: e^{2u} overflows to inf → 1, underflows to 0 → -1)."""
    u = 0.7978845608028654 * (x + 0.044715 * x * x * x)
    return 0.5 * x * (2.0 - 2.0 / (tl.exp(2.0 * u) + 1.0))


def num_warps_for(block: int) -> int:
    """Warps for a one-row-per-program kernel over ``block`` columns: ~16 float32 values a thread."""
    return max(1, min(16, block // 512))
