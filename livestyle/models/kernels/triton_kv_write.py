"""Triton kernels of ``livestyle.models.kernels.kv_write`` (imported only where Triton runs)."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from livestyle.models.kernels.triton_common import num_warps_for

__all__ = ["frame_means_triton", "scatter_rows_triton"]

_BLOCK_R = 32  # token rows per loop step of a means program
_BLOCK_D = 128  # channels per means program


@triton.jit
def _frame_sums_kernel(k_ptr, v_ptr, pk_ptr, pv_ptr, T, D, FRAMES, rows_per_split,  # noqa: ANN001
                       BLOCK_R: tl.constexpr, BLOCK_D: tl.constexpr) -> None:
    """Program (frame f, channel block, token split): float32 sums of its rows of k and v."""
    f = tl.program_id(0).to(tl.int64)
    cols = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    cm = cols < D
    sp = tl.program_id(2)
    start = sp * rows_per_split
    end = tl.minimum(start + rows_per_split, T)
    acc_k = tl.zeros([BLOCK_D], dtype=tl.float32)
    acc_v = tl.zeros([BLOCK_D], dtype=tl.float32)
    for r0 in range(start, end, BLOCK_R):
        rows = r0 + tl.arange(0, BLOCK_R)
        m = (rows < end)[:, None] & cm[None, :]
        offs = (f * T + rows.to(tl.int64))[:, None] * D + cols[None, :]
        acc_k += tl.sum(tl.load(k_ptr + offs, mask=m, other=0.0).to(tl.float32), axis=0)
        acc_v += tl.sum(tl.load(v_ptr + offs, mask=m, other=0.0).to(tl.float32), axis=0)
    out = (sp * FRAMES + f) * D + cols
    tl.store(pk_ptr + out, acc_k, mask=cm)
    tl.store(pv_ptr + out, acc_v, mask=cm)


@triton.jit
def _scatter_rows_kernel(k_ptr, v_ptr, ko_ptr, vo_ptr, idx_ptr, D, BLOCK: tl.constexpr) -> None:  # noqa: ANN001
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    cm = cols < D
    out = tl.load(idx_ptr + row).to(tl.int64)
    kk = tl.load(k_ptr + row * D + cols, mask=cm, other=0.0)
    vv = tl.load(v_ptr + row * D + cols, mask=cm, other=0.0)
    tl.store(ko_ptr + out * D + cols, kk.to(ko_ptr.dtype.element_ty), mask=cm)
    tl.store(vo_ptr + out * D + cols, vv.to(vo_ptr.dtype.element_ty), mask=cm)


def frame_means_triton(k: torch.Tensor, v: torch.Tensor, tokens_per_frame: int,
                       dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """See ``kv_write.frame_means``."""
    b, t = k.shape[0], tokens_per_frame
    d = k.shape[-2] * k.shape[-1]
    frames = k.shape[0] * k.shape[1] // t
    blocks = triton.cdiv(d, _BLOCK_D)
    # enough programs to keep every SM streaming (~512), each over at least a few loop steps
    splits = max(1, min(triton.cdiv(t, 4 * _BLOCK_R), triton.cdiv(512, frames * blocks)))
    rows_per_split = triton.cdiv(t, splits)
    part_k = torch.empty(splits, frames, d, device=k.device, dtype=torch.float32)
    part_v = torch.empty_like(part_k)
    _frame_sums_kernel[(frames, blocks, splits)](k, v, part_k, part_v, t, d, frames, rows_per_split,
                                                BLOCK_R=_BLOCK_R, BLOCK_D=_BLOCK_D, num_warps=4)
    scale = 1.0 / t
    return ((part_k.sum(0) * scale).to(dtype).reshape(b, -1, d),
            (part_v.sum(0) * scale).to(dtype).reshape(b, -1, d))


def scatter_rows_triton(k: torch.Tensor, v: torch.Tensor, k_out: torch.Tensor, v_out: torch.Tensor,
                        index: torch.Tensor) -> None:
    """See ``kv_write.scatter_rows``."""
    d = k.shape[-2] * k.shape[-1]
    rows = k.numel() // d
    if rows == 0:
        return
    block = triton.next_power_of_2(d)
    _scatter_rows_kernel[(rows,)](k, v, k_out, v_out, index, d, BLOCK=block, num_warps=num_warps_for(block))
