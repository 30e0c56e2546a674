"""Triton kernel of ``livestyle.models.kernels.quant.quantize_rows`` (imported only where Triton runs)."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from livestyle.models.kernels.rows import FP8_MAX, QuantizedRows
from livestyle.models.kernels.triton_common import fp8_rows_buffer, gelu_tanh, num_warps_for, store_fp8_row

__all__ = ["quantize_rows_triton"]


@triton.jit
def _quantize_rows_kernel(x_ptr, q_ptr, s_ptr, x_row_stride, K, FP8MAX: tl.constexpr,
                          GELU: tl.constexpr, STORE_FP32: tl.constexpr, BLOCK: tl.constexpr) -> None:
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    m = cols < K
    x = tl.load(x_ptr + row * x_row_stride + cols, mask=m, other=0.0).to(tl.float32)
    if GELU:
        x = gelu_tanh(x)
    store_fp8_row(x, q_ptr + row * K, s_ptr, row, cols, m, FP8MAX, STORE_FP32)


def quantize_rows_triton(x: torch.Tensor, gelu: bool = False) -> QuantizedRows:
    """``x`` ``[..., K]`` with unit stride in the last dim → :class:`QuantizedRows`."""
    k = x.shape[-1]
    x2 = x.reshape(-1, k)
    if x2.stride(-1) != 1:
        x2 = x2.contiguous()
    rows = x2.shape[0]
    interpret = not x.is_cuda
    data = fp8_rows_buffer(rows, k, x.device)
    scale = torch.empty(rows, 1, device=x.device, dtype=torch.float32)
    block = triton.next_power_of_2(k)
    if rows:
        _quantize_rows_kernel[(rows,)](x2, data, scale, x2.stride(0), k, FP8MAX=FP8_MAX, GELU=gelu,
                                       STORE_FP32=interpret, BLOCK=block, num_warps=num_warps_for(block))
    if interpret:
        data = data.to(torch.float8_e4m3fn)
    return QuantizedRows(data, scale, tuple(x.shape[:-1]))
