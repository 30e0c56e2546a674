"""Triton kernel of ``livestyle.models.kernels.qk_rope.qk_norm_rope`` (imported only where Triton runs)."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from livestyle.models.kernels.triton_common import num_warps_for

__all__ = ["qk_norm_rope_triton"]


@triton.jit
def _norm_rope_row(src_ptr, w_ptr, c, s, cols, cm, D, eps, BLOCK: tl.constexpr, ROPE: tl.constexpr):  # noqa: ANN001, ANN202
    """One row's RMSNorm (over D) and RoPE in float32, read and returned as contiguous channels:
    the (even, odd) pairs are split in registers, so loads and stores stay vectorised."""
    x = tl.load(src_ptr + cols, mask=cm, other=0.0).to(tl.float32)
    r = 1.0 / tl.sqrt(tl.sum(x * x, axis=0) / D + eps)
    x = x * r * tl.load(w_ptr + cols, mask=cm, other=0.0).to(tl.float32)
    if ROPE:
        xe, xo = tl.split(tl.reshape(x, [BLOCK, 2]))
        x = tl.reshape(tl.join(xe * c - xo * s, xe * s + xo * c), [2 * BLOCK])
    return x


@triton.jit
def _qk_norm_rope_kernel(
    q_ptr, k_ptr, v_ptr, wq_ptr, wk_ptr, cos_ptr, sin_ptr, qo_ptr, ko_ptr, vo_ptr, idx_ptr,
    q_stride, k_stride, v_stride, D, HALF_HEAD, eps,
    HAS_K: tl.constexpr, ROPE: tl.constexpr, HAS_IDX: tl.constexpr, BLOCK: tl.constexpr,
) -> None:
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, 2 * BLOCK)  # channels; pair j = channels (2j, 2j+1), BLOCK >= D / 2
    cm = cols < D
    pairs = tl.arange(0, BLOCK)
    pm = pairs < D // 2
    c = tl.zeros([BLOCK], dtype=tl.float32)
    s = tl.zeros([BLOCK], dtype=tl.float32)
    if ROPE:
        hp = pairs % HALF_HEAD
        c = tl.load(cos_ptr + row * HALF_HEAD + hp, mask=pm, other=1.0)
        s = tl.load(sin_ptr + row * HALF_HEAD + hp, mask=pm, other=0.0)
    qn = _norm_rope_row(q_ptr + row * q_stride, wq_ptr, c, s, cols, cm, D, eps, BLOCK, ROPE)
    tl.store(qo_ptr + row * D + cols, qn.to(qo_ptr.dtype.element_ty), mask=cm)
    if HAS_K:
        kn = _norm_rope_row(k_ptr + row * k_stride, wk_ptr, c, s, cols, cm, D, eps, BLOCK, ROPE)
        out = row
        if HAS_IDX:
            out = tl.load(idx_ptr + row).to(tl.int64)
        tl.store(ko_ptr + out * D + cols, kn.to(ko_ptr.dtype.element_ty), mask=cm)
        vv = tl.load(v_ptr + row * v_stride + cols, mask=cm, other=0.0)
        tl.store(vo_ptr + out * D + cols, vv.to(vo_ptr.dtype.element_ty), mask=cm)


def _rows(t: torch.Tensor) -> torch.Tensor:
    """``[B, L, D]`` as ``[B*L, D]`` rows with unit column stride (a view where possible)."""
    t2 = t.reshape(-1, t.shape[-1])
    return t2 if t2.stride(-1) == 1 else t2.contiguous()


def qk_norm_rope_triton(q: torch.Tensor, k: torch.Tensor | None, v: torch.Tensor | None,
                        wq: torch.Tensor, wk: torch.Tensor | None, cos: torch.Tensor | None,
                        sin: torch.Tensor | None, eps: float, heads: int, *,
                        k_out: torch.Tensor | None = None, v_out: torch.Tensor | None = None,
                        index: torch.Tensor | None = None,
                        ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """See ``qk_norm_rope``."""
    b, n, d = q.shape
    hd = d // heads
    q2 = _rows(q)
    rows = q2.shape[0]
    qo = torch.empty(b, n, heads, hd, device=q.device, dtype=q.dtype)
    rope = cos is not None
    if rope:
        assert sin is not None
        cos = cos.reshape(rows, hd // 2).contiguous()
        sin = sin.reshape(rows, hd // 2).contiguous()
    has_k = k is not None
    if has_k:
        assert v is not None and wk is not None
        k2, v2 = _rows(k), _rows(v)
        if k_out is None:
            k_out = torch.empty(b, n, heads, hd, device=q.device, dtype=q.dtype)
            v_out = torch.empty(b, n, heads, hd, device=q.device, dtype=q.dtype)
        assert v_out is not None and k_out.is_contiguous() and v_out.is_contiguous()
    else:
        k2 = v2 = q2
    block = triton.next_power_of_2(d // 2)
    dummy = q2
    if rows:
        _qk_norm_rope_kernel[(rows,)](
            q2, k2, v2, wq, wk if wk is not None else wq,
            cos if rope else dummy, sin if rope else dummy,
            qo, k_out if has_k else qo, v_out if has_k else qo, index if index is not None else dummy,
            q2.stride(0), k2.stride(0), v2.stride(0), d, hd // 2, eps,
            HAS_K=has_k, ROPE=rope, HAS_IDX=index is not None, BLOCK=block,
            num_warps=num_warps_for(2 * block),
        )
    if not has_k:
        return qo, None, None
    return qo, k_out, v_out
