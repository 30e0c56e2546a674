"""Triton kernel of ``livestyle.models.kernels.norm.norm_modulate`` (imported only where Triton runs)."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from livestyle.models.kernels.rows import FP8_MAX, QuantizedRows
from livestyle.models.kernels.triton_common import fp8_rows_buffer, num_warps_for, store_fp8_row

__all__ = ["norm_modulate_triton"]


@triton.jit
def _norm_modulate_kernel(
    x_ptr, y_ptr, gate_ptr, r_ptr, w_ptr, b_ptr, shift_ptr, scale_ptr, h_ptr, hs_ptr,
    tokens_per_frame, mod_stride, D, eps,
    HAS_Y: tl.constexpr, HAS_GATE: tl.constexpr, NORM: tl.constexpr, HAS_W: tl.constexpr,
    HAS_B: tl.constexpr, MOD: tl.constexpr, QUANT: tl.constexpr, STORE_FP32: tl.constexpr,
    FP8MAX: tl.constexpr, BLOCK: tl.constexpr,
) -> None:
    row = tl.program_id(0).to(tl.int64)
    frame_row = row // tokens_per_frame  # b * F + f: rows are [B, F, T] flattened
    cols = tl.arange(0, BLOCK)
    m = cols < D
    x = tl.load(x_ptr + row * D + cols, mask=m, other=0.0)
    if HAS_Y:
        y = tl.load(y_ptr + row * D + cols, mask=m, other=0.0).to(tl.float32)
        if HAS_GATE:
            g = tl.load(gate_ptr + frame_row * mod_stride + cols, mask=m, other=0.0).to(tl.float32)
            y = y * g
        x = (x.to(tl.float32) + y).to(r_ptr.dtype.element_ty)  # the residual stream, rounded as stored
        tl.store(r_ptr + row * D + cols, x, mask=m)
    if NORM:
        xf = x.to(tl.float32)
        mean = tl.sum(xf, axis=0) / D
        xc = tl.where(m, xf - mean, 0.0)
        var = tl.sum(xc * xc, axis=0) / D
        h = xc * (1.0 / tl.sqrt(var + eps))
        if HAS_W:
            h = h * tl.load(w_ptr + cols, mask=m, other=0.0).to(tl.float32)
        if HAS_B:
            h = h + tl.load(b_ptr + cols, mask=m, other=0.0).to(tl.float32)
        if MOD:
            sc = tl.load(scale_ptr + frame_row * mod_stride + cols, mask=m, other=0.0).to(tl.float32)
            sh = tl.load(shift_ptr + frame_row * mod_stride + cols, mask=m, other=0.0).to(tl.float32)
            h = h * sc + sh
        if QUANT:
            store_fp8_row(h, h_ptr + row * D, hs_ptr, row, cols, m, FP8MAX, STORE_FP32)
        else:
            tl.store(h_ptr + row * D + cols, h.to(h_ptr.dtype.element_ty), mask=m)


def _frame_rows(t: torch.Tensor | None, b: int, frames: int, d: int) -> tuple[torch.Tensor | None, int]:
    """A per-frame ``[B, F, 1, D]`` (or ``[B, F, D]``) tensor as rows ``b * F + f`` with one stride."""
    if t is None:
        return None, 0
    t = t.reshape(b, frames, d) if t.numel() == b * frames * d else t.expand(b, frames, 1, d).reshape(b, frames, d)
    if t.stride(2) != 1 or t.stride(0) != frames * t.stride(1):
        t = t.contiguous()
    return t, t.stride(1)


def norm_modulate_triton(x: torch.Tensor, frames: int, eps: float, *, y: torch.Tensor | None = None,
                         gate: torch.Tensor | None = None, weight: torch.Tensor | None = None,
                         bias: torch.Tensor | None = None, shift: torch.Tensor | None = None,
                         scale1: torch.Tensor | None = None, norm: bool = True,
                         quantize: bool = False) -> tuple[torch.Tensor, torch.Tensor | QuantizedRows | None]:
    """See ``norm_modulate``; ``x``/``y`` ``[B, F*T, D]``."""
    b, n, d = x.shape
    x = x.contiguous()
    if y is not None:
        y = y.contiguous()
    rows = b * n
    strides = {}
    tensors = {}
    for name, t in (("gate", gate), ("shift", shift), ("scale", scale1)):
        tensors[name], strides[name] = _frame_rows(t, b, frames, d)
    mod_strides = {s for k, s in strides.items() if tensors[k] is not None}
    if len(mod_strides) > 1:  # one stride for every per-frame tensor: make them all contiguous
        for k in tensors:
            if tensors[k] is not None:
                tensors[k] = tensors[k].contiguous()
        mod_strides = {d}
    mod_stride = mod_strides.pop() if mod_strides else 0
    r = torch.empty_like(x) if y is not None else x
    interpret = not x.is_cuda
    h: torch.Tensor | None = None
    hs: torch.Tensor | None = None
    if norm:
        if quantize:
            h = fp8_rows_buffer(rows, d, x.device)
            hs = torch.empty(rows, 1, device=x.device, dtype=torch.float32)
        else:
            h = torch.empty_like(x)
    block = triton.next_power_of_2(d)
    dummy = x
    if rows:
        _norm_modulate_kernel[(rows,)](
            x, y if y is not None else dummy, tensors["gate"] if tensors["gate"] is not None else dummy, r,
            weight if weight is not None else dummy, bias if bias is not None else dummy,
            tensors["shift"] if tensors["shift"] is not None else dummy,
            tensors["scale"] if tensors["scale"] is not None else dummy,
            h if h is not None else dummy, hs if hs is not None else dummy,
            n // frames, mod_stride, d, eps,
            HAS_Y=y is not None, HAS_GATE=gate is not None, NORM=norm, HAS_W=weight is not None,
            HAS_B=bias is not None, MOD=shift is not None, QUANT=quantize, STORE_FP32=interpret,
            FP8MAX=FP8_MAX, BLOCK=block, num_warps=num_warps_for(block),
        )
    if not norm:
        return r, None
    assert h is not None
    if quantize:
        assert hs is not None
        return r, QuantizedRows(h.to(torch.float8_e4m3fn) if interpret else h, hs, (b, n))
    return r, h
