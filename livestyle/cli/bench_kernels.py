"""GPU kernel time by category for ``livestyle bench --profile-chunks N``.

``profile_chunks(step, n)`` runs ``step()`` ``n`` times under ``torch.profiler`` (CUDA activity
only; kernels inside CUDA-graph replays are reported one by one) and returns the device time per
call split into the categories the efficiency work is judged by::

    {"chunks": n, "gpu_ms": 437.1,
     "by_category_ms": {"gemm": 102.0, "attention": 87.0, "elementwise": 236.0, "conv": 5.0, "memcpy": 1.2},
     "by_category_pct": {...}, "top": [{"kernel": ..., "category": ..., "calls": ..., "ms": ...}, ...]}

Categories are read off the kernel names, in this order: ``memcpy`` (copies and memsets issued as
such), ``attention`` (flash/cuDNN/efficient SDPA kernels; cuDNN's are named
``..._sdpa_..._flash_fprop_...``), ``conv`` (cuDNN fprop/implicit-GEMM convolutions: the codecs),
``gemm`` (cuBLAS/cuBLASLt/CUTLASS matrix products, fp8 ``_scaled_mm`` included), and
``elementwise`` for everything else: norms, modulation, RoPE, casts, quantisation, reductions,
index/copy kernels and the fused Triton kernels (the glue the fused kernels exist to shrink).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["CATEGORIES", "format_kernel_table", "kernel_category", "profile_chunks"]

CATEGORIES = ("gemm", "attention", "elementwise", "conv", "memcpy")

_CONV = ("fprop", "dgrad", "wgrad", "conv", "implicit_gemm", "winograd", "implicit_convolve")
_ATTN = ("flash", "fmha", "sdpa", "attention", "attn")
_GEMM = ("gemm", "nvjet", "cutlass", "xmma", "cublas", "f8f8bf16", "_scaled_mm", "splitk", "matmul")


def kernel_category(name: str) -> str:
    """The category of a CUDA kernel (or activity) name (module docstring)."""
    low = name.lower()
    if low.startswith(("memcpy", "memset")) or "memcpy" in low:
        return "memcpy"
    if any(k in low for k in _ATTN):  # before conv: cuDNN's SDPA kernels are named "..._sdpa_..._fprop_..."
        return "attention"
    if any(k in low for k in _CONV):
        return "conv"
    if any(k in low for k in _GEMM):
        return "gemm"
    return "elementwise"


def profile_chunks(step: Callable[[], Any], n: int, sync: Callable[[], None]) -> dict[str, Any]:
    """Device time per ``step()`` call over ``n`` calls, by category, with the 15 largest kernels."""
    from torch.profiler import ProfilerActivity, profile

    sync()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(n):
            step()
        sync()
    cats = dict.fromkeys(CATEGORIES, 0.0)
    rows = []
    for e in prof.key_averages():
        us = float(getattr(e, "self_device_time_total", 0.0) or getattr(e, "self_cuda_time_total", 0.0))
        if us <= 0:
            continue
        cat = kernel_category(e.key)
        cats[cat] += us
        rows.append({"kernel": e.key[:100], "category": cat, "calls": round(e.count / n, 1), "ms": round(us / 1000 / n, 3)})
    total = sum(cats.values())
    rows.sort(key=lambda r: -r["ms"])
    return {
        "chunks": n,
        "gpu_ms": round(total / 1000 / n, 2),
        "by_category_ms": {k: round(v / 1000 / n, 2) for k, v in cats.items()},
        "by_category_pct": {k: round(100 * v / total, 1) if total else 0.0 for k, v in cats.items()},
        "top": rows[:15],
    }


def format_kernel_table(prof: dict[str, Any], width: int = 80) -> str:
    """The profile as a plain-text table (categories, then the top kernels), ``width`` columns."""
    lines = [f"GPU time per chunk: {prof['gpu_ms']:.1f} ms over {prof['chunks']} chunks"]
    for cat in CATEGORIES:
        lines.append(f"  {cat:<12} {prof['by_category_ms'][cat]:8.2f} ms  {prof['by_category_pct'][cat]:5.1f} %")
    lines.append("  top kernels (ms per chunk, calls per chunk):")
    name_w = max(20, width - 30)
    for r in prof["top"]:
        lines.append(f"  {r['ms']:8.2f} {r['calls']:7.1f}  {r['category'][:4]:<4}  {r['kernel'][:name_w]}")
    return "\n".join(lines)
