"""Wan 2.1 3-D rotary position embedding (Wan 2.1 wan/modules/model.py, Wan-Video/Wan2.1).

A head of ``head_dim`` real channels is rotated as ``head_dim // 2`` complex pairs of adjacent
(even, odd) channels. The pairs are split between three axes — temporal
``(head_dim - 4 * (head_dim // 6)) // 2`` pairs, height and width ``head_dim // 6`` pairs each
(22 / 21 / 21 for head_dim 128) — and each axis has its own frequency table
``omega_j = 10000 ** (-2 j / D_axis)`` over positions ``0 .. max_positions - 1`` (1024 in Wan).

Temporal positions are latent-frame indices (``[B, F]`` long, so batch items of a stream batch
can sit at different positions); height/width positions always start at 0. Positions are clamped
into the table on the device (never an out-of-range index, never a host sync); keeping them
meaningfully bounded is the KV cache's job (``livestyle.models.kv_cache``).

Tables are computed in float64 (as the original) and kept as float32 cos/sin; rotation runs in
float32 and is cast back to the input dtype.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["RopeAngles", "RopeTables", "apply_rope", "apply_rope_freqs", "build_rope_tables", "rope_axis_pairs", "rope_cos_sin", "rope_freqs"]


def rope_axis_pairs(head_dim: int) -> tuple[int, int, int]:
    """Complex pairs per axis (temporal, height, width) for ``head_dim`` (even, >= 6)."""
    if head_dim % 2 or head_dim < 6:
        raise ValueError(f"RoPE needs an even head_dim >= 6, got {head_dim=}")
    hw = head_dim // 6
    return (head_dim // 2 - 2 * hw, hw, hw)


class RopeTables:
    """Per-axis cos/sin tables, each ``[max_positions, pairs_axis]`` float32, on one device."""

    def __init__(self, cos: tuple[torch.Tensor, ...], sin: tuple[torch.Tensor, ...]) -> None:
        self.cos = cos
        self.sin = sin

    @property
    def max_positions(self) -> int:
        return int(self.cos[0].shape[0])

    def to(self, device: torch.device | str) -> RopeTables:
        return RopeTables(tuple(c.to(device) for c in self.cos), tuple(s.to(device) for s in self.sin))


@dataclass(frozen=True)
class RopeAngles:
    """One forward's rotation angles: ``cos``/``sin`` ``[B, L, 1, head_dim // 2]`` float32
    (``rope_cos_sin``) and, for the unfused path, ``freqs`` = ``rope_freqs(cos, sin)`` (complex64,
    built once per forward) or ``None`` where only the fused kernel reads them."""

    cos: torch.Tensor
    sin: torch.Tensor
    freqs: torch.Tensor | None = None


def build_rope_tables(head_dim: int, max_positions: int = 1024, theta: float = 10000.0,
                      device: torch.device | str = "cpu") -> RopeTables:
    """Build the three axis tables exactly as Wan's ``rope_params`` (float64, then float32)."""
    cos, sin = [], []
    for pairs in rope_axis_pairs(head_dim):
        dim = 2 * pairs
        freqs = 1.0 / theta ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim)
        angles = torch.outer(torch.arange(max_positions, dtype=torch.float64), freqs)
        cos.append(torch.cos(angles).float().to(device))
        sin.append(torch.sin(angles).float().to(device))
    return RopeTables(tuple(cos), tuple(sin))


def rope_cos_sin(tables: RopeTables, frame_pos: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin for every token of a ``[B, F, height, width]`` token grid.

    ``frame_pos``: ``[B, F]`` long temporal positions (clamped into the table).
    Returns two ``[B, F*height*width, 1, head_dim // 2]`` float32 tensors (token order frame-major,
    then row, then column — Wan's patch order), ready to broadcast over heads.
    """
    if frame_pos.ndim != 2:
        raise ValueError(f"frame positions must be [B, F], got {frame_pos.shape=}")
    b, f = frame_pos.shape
    pos = frame_pos.clamp(0, tables.max_positions - 1)
    out = []
    for table in (tables.cos, tables.sin):
        t = table[0][pos]  # [B, F, Pt]
        h = table[1][:height]  # [H, Ph]
        w = table[2][:width]  # [W, Pw]
        full = torch.cat(
            [
                t[:, :, None, None, :].expand(b, f, height, width, t.shape[-1]),
                h[None, None, :, None, :].expand(b, f, height, width, h.shape[-1]),
                w[None, None, None, :, :].expand(b, f, height, width, w.shape[-1]),
            ],
            dim=-1,
        )
        out.append(full.reshape(b, f * height * width, 1, -1))
    return out[0], out[1]


def rope_freqs(cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """``cos + i·sin`` as one complex64 ``[B, L, 1, head_dim // 2]`` tensor (built once per forward)."""
    return torch.complex(cos, sin)


def apply_rope_freqs(x: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """Rotate adjacent channel pairs of ``x`` ``[B, L, heads, head_dim]`` by complex ``freqs``
    ``[B, L, 1, head_dim/2]`` (``rope_freqs``): one complex multiply in float32, cast back to ``x``'s dtype.

    Same math as the (even, odd) rotation ``(x0·cos - x1·sin, x0·sin + x1·cos)``, in 3 kernels
    instead of ~9 (it runs for q and k in every layer)."""
    xf = x.float()
    if xf.stride(-1) != 1:
        xf = xf.contiguous()
    xc = torch.view_as_complex(xf.unflatten(-1, (-1, 2)))
    return torch.view_as_real(xc * freqs).flatten(-2).to(x.dtype)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate adjacent channel pairs of ``x`` ``[B, L, heads, head_dim]`` by ``cos/sin`` ``[B, L, 1, head_dim/2]``."""
    return apply_rope_freqs(x, rope_freqs(cos, sin))
