"""The adaptive sink's cache write: per-frame K/V token means, then K/V rows scattered to their slots.

With StreamDiffusionV2's adaptive sink the new frame's slot depends on how alike its mean key and
value are to the sink frames' (``livestyle.models.kv_cache``), so the K/V cannot be written by the
q/k kernel directly; the cache write is two passes over the new rows instead of three:

- ``frame_means(k, v, tokens_per_frame, dtype)``: ``k``/``v`` ``[B, n*T, heads, head_dim]``
  (contiguous) → the per-frame token means ``[B, n, heads*head_dim]`` of each, accumulated in
  float32 and rounded once to ``dtype`` (the reference: ``x.to(dtype).reshape(B, n, T, -1).mean(2)``);
- ``scatter_rows(k, v, k_out, v_out, index)``: token row ``i`` of ``k``/``v`` to row ``index[i]`` of
  the cache buffers ``[B, S*T, heads, head_dim]`` (the reference: two ``index_copy_``).

Fused (Triton) where ``fused_enabled``: the means in one launch for both tensors (token ranges
split over programs, partial sums added in float32), the scatter in one launch for both.
"""

from __future__ import annotations

import torch

from livestyle.models.kernels import fused_enabled, run_fused

__all__ = ["frame_means", "frame_means_reference", "scatter_rows", "scatter_rows_reference"]


def frame_means_reference(k: torch.Tensor, v: torch.Tensor, tokens_per_frame: int,
                          dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """PyTorch reference of :func:`frame_means`."""
    b = k.shape[0]
    return (k.to(dtype).reshape(b, -1, tokens_per_frame, k.shape[-2] * k.shape[-1]).mean(2),
            v.to(dtype).reshape(b, -1, tokens_per_frame, v.shape[-2] * v.shape[-1]).mean(2))


def frame_means(k: torch.Tensor, v: torch.Tensor, tokens_per_frame: int,
                dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-frame token means of ``k`` and ``v`` (module docstring); fused where enabled."""
    if k.shape != v.shape or k.shape[1] % tokens_per_frame:
        raise ValueError(f"k and v must be [B, n*T, heads, head_dim] with T={tokens_per_frame}; got {tuple(k.shape)}, {tuple(v.shape)}")
    if not fused_enabled(k) or not (k.is_contiguous() and v.is_contiguous()):
        return frame_means_reference(k, v, tokens_per_frame, dtype)

    def fused() -> tuple[torch.Tensor, torch.Tensor]:
        from livestyle.models.kernels.triton_kv_write import frame_means_triton

        return frame_means_triton(k, v, tokens_per_frame, dtype)

    return run_fused("frame_means", fused, lambda: frame_means_reference(k, v, tokens_per_frame, dtype))


def scatter_rows_reference(k: torch.Tensor, v: torch.Tensor, k_out: torch.Tensor, v_out: torch.Tensor,
                           index: torch.Tensor) -> None:
    """PyTorch reference of :func:`scatter_rows`."""
    flat = (-1,) + tuple(k_out.shape[2:])
    k_out.view(flat).index_copy_(0, index, k.reshape(flat).to(k_out.dtype))
    v_out.view(flat).index_copy_(0, index, v.reshape(flat).to(v_out.dtype))


def scatter_rows(k: torch.Tensor, v: torch.Tensor, k_out: torch.Tensor, v_out: torch.Tensor,
                 index: torch.Tensor) -> None:
    """Rows of ``k``/``v`` into the cache buffers at ``index`` (module docstring); fused where enabled."""
    if not fused_enabled(k) or not all(t.is_contiguous() for t in (k, v, k_out, v_out)):
        scatter_rows_reference(k, v, k_out, v_out, index)
        return

    def fused() -> None:
        from livestyle.models.kernels.triton_kv_write import scatter_rows_triton

        scatter_rows_triton(k, v, k_out, v_out, index)

    run_fused("scatter_rows", fused, lambda: scatter_rows_reference(k, v, k_out, v_out, index))
