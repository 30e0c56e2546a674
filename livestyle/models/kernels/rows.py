"""The fp8 GEMM input the fused kernels write: rows of e4m3 values with one float32 scale each."""

from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = ["FP8_MAX", "MIN_SCALE", "QuantizedRows"]

FP8_MAX = 448.0
"""Largest finite float8_e4m3fn value."""
MIN_SCALE = 1e-12
"""Floor of a row's scale (an all-zero row quantises to zeros, never divides by zero)."""


class QuantizedRows(NamedTuple):
    """An fp8 GEMM input: ``data`` ``[M, K]`` e4m3, ``scale`` ``[M, 1]`` float32 (``x ≈ data · scale``),
    and the leading shape of the tensor it came from (``shape[:-1]``, restored on the GEMM output)."""

    data: torch.Tensor
    scale: torch.Tensor
    lead: tuple[int, ...]
