"""Triton kernels of ``livestyle.models.kernels.fp8_attention`` (imported only where Triton runs).

Two kernels: ``_quant_blocks_kernel`` writes Q and K as int8 (one scale per block of rows) and,
for fp8 P·V, V as e4m3 (one scale per block of keys and channel, stored transposed
``[B, H, D, Lk]``: the key-major layout the fp8 tensor cores take for the second operand of ``P V``); ``_fp8_attention_kernel`` runs
the FlashAttention loop over key blocks on them. Under the CPU interpreter, whose float8 casts
are not faithful, the codes are float32 values on the e4m3 grid (rounded by PyTorch after the
quantisation kernel, and by ``_round_e4m3`` for P inside the attention kernel).
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from livestyle.models.kernels.rows import FP8_MAX, MIN_SCALE

__all__ = ["fp8_attention_triton"]

LOG2E = 1.4426950408889634


@triton.jit
def _round_e4m3(x):  # noqa: ANN001, ANN202 (a Triton device function)
    """float32 ``x`` (|x| <= 448) to the nearest e4m3 value (ties up), for the interpreter."""
    e = tl.maximum(tl.floor(tl.log2(tl.maximum(tl.abs(x), 1e-30))), -6.0)  # below 2^-6: subnormal steps
    step = tl.exp2(e - 3.0)
    return tl.floor(x / step + 0.5) * step


@triton.jit
def _quant_blocks_kernel(x_ptr, out_ptr, scale_ptr, L, H, stride_b, stride_l, stride_h, mult,  # noqa: ANN001
                         D: tl.constexpr, BLOCK: tl.constexpr, PER_CHANNEL: tl.constexpr,
                         TRANSPOSE: tl.constexpr, INT8: tl.constexpr, STORE_FP32: tl.constexpr) -> None:
    """Program (row block, b*H + h): the block's ``x · mult`` as e4m3 (or int8) codes and its scale(s)."""
    blk = tl.program_id(0)
    bh = tl.program_id(1).to(tl.int64)
    b, h = bh // H, bh % H
    rows = blk * BLOCK + tl.arange(0, BLOCK)
    cols = tl.arange(0, D)
    rm = rows < L
    x = tl.load(x_ptr + b * stride_b + h * stride_h + rows.to(tl.int64)[:, None] * stride_l + cols[None, :],
                mask=rm[:, None], other=0.0).to(tl.float32) * mult
    nblk = tl.cdiv(L, BLOCK)
    top = 127.0 if INT8 else 448.0
    if PER_CHANNEL:
        scale = tl.maximum(tl.max(tl.abs(x), axis=0) / top, 1e-12)  # [D]
        codes = x / scale[None, :]
        tl.store(scale_ptr + (bh * nblk + blk) * D + cols, scale)
    else:
        scale = tl.maximum(tl.max(tl.max(tl.abs(x), axis=1), axis=0) / top, 1e-12)
        codes = x / scale
        tl.store(scale_ptr + bh * nblk + blk, scale)
    codes = tl.minimum(tl.maximum(codes, -top), top)
    if INT8:  # round half away from zero, as the reference does
        codes = tl.where(codes >= 0, tl.floor(codes + 0.5), -tl.floor(-codes + 0.5))
    if TRANSPOSE:
        dest = out_ptr + bh * D * L + cols[None, :].to(tl.int64) * L + rows[:, None]
    else:
        dest = out_ptr + bh * L * D + rows.to(tl.int64)[:, None] * D + cols[None, :]
    if STORE_FP32:
        tl.store(dest, codes, mask=rm[:, None])
    elif INT8:
        tl.store(dest, codes.to(tl.int8), mask=rm[:, None])
    else:
        tl.store(dest, codes.to(tl.float8e4nv), mask=rm[:, None])


@triton.jit
def _fp8_attention_kernel(q_ptr, qs_ptr, k_ptr, ks_ptr, v_ptr, vs_ptr, o_ptr, Lq, Lk, H,  # noqa: ANN001
                          stride_ob, stride_ol, stride_oh, stride_vb, stride_vl, stride_vh,
                          D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                          PV_FP8: tl.constexpr, EMULATE: tl.constexpr) -> None:
    """Program (query block, b*H + h): the FlashAttention loop over key blocks, low-precision products."""
    mblk = tl.program_id(0)
    bh = tl.program_id(1).to(tl.int64)
    b, h = bh // H, bh % H
    rows = mblk * BLOCK_M + tl.arange(0, BLOCK_M)
    dims = tl.arange(0, D)
    rm = rows < Lq
    q = tl.load(q_ptr + bh * Lq * D + rows.to(tl.int64)[:, None] * D + dims[None, :], mask=rm[:, None], other=0.0)
    q_scale = tl.load(qs_ptr + bh * tl.cdiv(Lq, BLOCK_M) + mblk)
    nkb = tl.cdiv(Lk, BLOCK_N)
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, D], dtype=tl.float32)
    for kb in range(0, nkb):
        keys = kb * BLOCK_N + tl.arange(0, BLOCK_N)
        km = keys < Lk
        # K as a [D, BLOCK_N] tile (channels contiguous) and V as [BLOCK_N, D] from its transposed
        # storage (keys contiguous): the operand layouts of the fp8 tensor-core products
        k_t = tl.load(k_ptr + bh * Lk * D + keys.to(tl.int64)[None, :] * D + dims[:, None], mask=km[None, :], other=0.0)
        s = tl.dot(q, k_t).to(tl.float32) * (q_scale * tl.load(ks_ptr + bh * nkb + kb))
        s = tl.where(km[None, :], s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        p = tl.exp2(s - m_new[:, None])
        alpha = tl.exp2(m_i - m_new)
        l_i = l_i * alpha + tl.sum(p, axis=1)
        if PV_FP8:
            v = tl.load(v_ptr + bh * D * Lk + dims[None, :].to(tl.int64) * Lk + keys[:, None], mask=km[:, None], other=0.0)
            if EMULATE:
                pv = tl.dot(_round_e4m3(p * 448.0), v)
            else:
                pv = tl.dot((p * 448.0).to(tl.float8e4nv), v)
            v_scale = tl.load(vs_ptr + (bh * nkb + kb) * D + dims)
            pv = pv * (v_scale / 448.0)[None, :]
        else:  # V as given (bf16), P rounded to it
            v = tl.load(v_ptr + b * stride_vb + h * stride_vh + keys.to(tl.int64)[:, None] * stride_vl + dims[None, :],
                        mask=km[:, None], other=0.0)
            pv = tl.dot(p.to(v.dtype), v)
        acc = acc * alpha[:, None] + pv
        m_i = m_new
    out = acc / l_i[:, None]
    tl.store(o_ptr + b * stride_ob + h * stride_oh + rows.to(tl.int64)[:, None] * stride_ol + dims[None, :],
             out.to(o_ptr.dtype.element_ty), mask=rm[:, None])


def _quantize(x: torch.Tensor, block: int, mult: float, *, per_channel: bool, transpose: bool,
              int8: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` ``[B, L, H, D]`` (any strides, unit channel stride) → codes ``[B, H, L, D]`` (or
    ``[B, H, D, L]``) and scales ``[B*H, blocks]`` (or ``[B*H, blocks, D]``)."""
    b, n, h, d = x.shape
    if x.stride(-1) != 1:
        x = x.contiguous()
    cpu = x.device.type == "cpu"
    shape = (b, h, d, n) if transpose else (b, h, n, d)
    code_dtype = torch.float32 if cpu else torch.int8 if int8 else torch.float8_e4m3fn
    codes = torch.empty(shape, device=x.device, dtype=code_dtype)
    blocks = triton.cdiv(n, block)
    scale = torch.empty((b * h, blocks, d) if per_channel else (b * h, blocks), device=x.device, dtype=torch.float32)
    _quant_blocks_kernel[(blocks, b * h)](x, codes, scale, n, h, x.stride(0), x.stride(1), x.stride(2), mult,
                                          D=d, BLOCK=block, PER_CHANNEL=per_channel, TRANSPOSE=transpose,
                                          INT8=int8, STORE_FP32=cpu, num_warps=4)
    if cpu and not int8:  # the e4m3 rounding the GPU kernel does in registers (int8 codes are exact)
        codes = codes.clamp_(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn).float()
    return codes, scale


def fp8_attention_triton(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, block_m: int, block_n: int,
                         pv: str = "fp8") -> torch.Tensor:
    """See ``fp8_attention.fp8_attention`` (Q·Kᵀ in int8, P·V in fp8 or V's dtype)."""
    b, lq, h, d = q.shape
    lk = k.shape[1]
    assert MIN_SCALE == 1e-12  # the kernels' floor
    q8, qs = _quantize(q, block_m, LOG2E / math.sqrt(d), per_channel=False, transpose=False, int8=True)
    k8, ks = _quantize(k, block_n, 1.0, per_channel=False, transpose=False, int8=True)
    pv_fp8 = pv == "fp8"
    if pv_fp8:
        v8, vs = _quantize(v, block_n, 1.0, per_channel=True, transpose=True)
    else:
        v8, vs = (v if v.stride(-1) == 1 else v.contiguous()), ks  # V as it is; vs: a placeholder pointer, unread
    out = torch.empty_like(q)
    cpu = q.device.type == "cpu"
    _fp8_attention_kernel[(triton.cdiv(lq, block_m), b * h)](
        q8, qs, k8, ks, v8, vs, out, lq, lk, h, out.stride(0), out.stride(1), out.stride(2),
        v8.stride(0), v8.stride(1), v8.stride(2),
        D=d, BLOCK_M=block_m, BLOCK_N=block_n, PV_FP8=pv_fp8, EMULATE=cpu,
        num_warps=4 if cpu else 8, num_stages=1 if cpu else 3,
    )
    return out
