"""Mask preview: tint the background region so a user can see (and tune) what the key or model found."""

from __future__ import annotations

import numpy as np

__all__ = ["PREVIEW_TINT", "mask_overlay"]

PREVIEW_TINT: tuple[int, int, int] = (255, 0, 255)
"""RGB colour laid over the background region in preview (magenta: never a key colour)."""


def mask_overlay(image: np.ndarray, subject: np.ndarray, opacity: float = 0.6) -> np.ndarray:
    """``image`` ``uint8`` ``[H, W, 3]`` with the background (``1 - subject``) tinted ``PREVIEW_TINT``.

    ``subject`` is ``float32`` ``[H, W]`` in ``[0, 1]`` at the image's size; returns a new ``uint8`` image.
    """
    assert subject.shape == image.shape[:2], f"{subject.shape=} {image.shape=}"
    weight = (opacity * (1.0 - subject))[..., None]
    tint = np.asarray(PREVIEW_TINT, dtype=np.float32)
    out = image.astype(np.float32)
    out += weight * (tint - out)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
