"""Temporal smoothing and feathering of subject masks, so that edges neither shimmer nor cut hard.

Both work on ``float32`` ``[H, W]`` masks in ``[0, 1]`` at frame size.
"""

from __future__ import annotations

import itertools

import cv2
import numpy as np

from livestyle.errors import ConfigError

__all__ = ["TemporalSmoother", "edge_flicker", "feather"]


class TemporalSmoother:
    """Exponential moving average of successive masks, restarted on a scene cut.

    ``history`` is the weight of the running average (0 = off, 0.5 default, < 1): with ``m`` the
    new mask, ``s <- history * s + (1 - history) * m``. When the mean absolute change of the whole
    mask exceeds ``cut_threshold`` (a person walked in, the camera switched), the average restarts
    from ``m`` so the old mask does not ghost. Feed masks in input-frame order.
    """

    def __init__(self, history: float = 0.5, cut_threshold: float = 0.25) -> None:
        if not 0.0 <= history < 1.0:
            raise ConfigError(f"effects.smoothing must be in [0, 1), got {history}")
        if not 0.0 < cut_threshold <= 1.0:
            raise ConfigError(f"effects.cut_threshold must be in (0, 1], got {cut_threshold}")
        self.history = history
        self.cut_threshold = cut_threshold
        self._state: np.ndarray | None = None

    def update(self, mask: np.ndarray) -> np.ndarray:
        """Fold in ``mask`` and return the smoothed mask (a new array the caller may keep)."""
        prev = self._state
        if (
            self.history == 0.0
            or prev is None
            or prev.shape != mask.shape
            or float(cv2.absdiff(prev, mask).mean()) > self.cut_threshold
        ):
            self._state = mask.astype(np.float32, copy=True)
        else:
            self._state = cv2.addWeighted(prev, self.history, mask, 1.0 - self.history, 0.0)
        return self._state

    def reset(self) -> None:
        self._state = None


def feather(mask: np.ndarray, radius: float) -> np.ndarray:
    """Gaussian-blur the mask edge; ``radius`` is the blur sigma in pixels (0 = no feathering)."""
    if radius <= 0:
        return mask
    return cv2.GaussianBlur(mask, (0, 0), sigmaX=radius, sigmaY=radius, borderType=cv2.BORDER_REPLICATE)


def edge_flicker(masks: list[np.ndarray]) -> float:
    """Mean absolute frame-to-frame change of a mask sequence (the shimmer the smoother removes)."""
    if len(masks) < 2:
        return 0.0
    return float(np.mean([np.abs(b - a).mean() for a, b in itertools.pairwise(masks)]))
