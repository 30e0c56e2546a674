"""What a mask provider returns, and how a mask is brought to a frame's size.

Convention everywhere in livestyle: a *subject mask* is ``float32`` ``[H, W]`` in ``[0, 1]``,
1 where the subject is (the person, or whatever is not the green screen) and 0 on the background.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from livestyle.errors import PipelineError

__all__ = ["MaskProvider", "MaskResult", "fit_mask"]

_ASPECT_TOLERANCE = 0.02


@dataclass(frozen=True, slots=True)
class MaskResult:
    """One frame's mask.

    Attributes:
        subject: ``float32`` ``[h, w]`` in ``[0, 1]`` (1 = subject); any size with the frame's
            aspect ratio — :func:`fit_mask` brings it to the frame size.
        camera: a cleaned camera picture to show where the mask keeps the camera (``uint8``
            ``[H, W, 3]``, e.g. green spill removed), or ``None`` to show the input as it is.
    """

    subject: np.ndarray
    camera: np.ndarray | None = None


@runtime_checkable
class MaskProvider(Protocol):
    """Computes a subject mask from one input picture (``uint8`` ``[H, W, 3]`` RGB).

    ``compute`` is called once per input frame, in frame order; ``reset`` drops any state carried
    between frames (a new stream, a ``Reset`` command).
    """

    name: str

    def compute(self, image: np.ndarray) -> MaskResult: ...

    def reset(self) -> None: ...


def fit_mask(
    mask: np.ndarray, height: int, width: int, source: str = "mask provider", *, keep_smaller: bool = False
) -> np.ndarray:
    """Validate ``mask`` and resize it (bilinear) to ``[height, width]``; returns ``float32`` in ``[0, 1]``.

    A mask of another size with the same aspect ratio (within 2%) is resized — unless
    ``keep_smaller`` and it is smaller on both sides: then it keeps its size (so smoothing and
    feathering can run on fewer pixels before one enlargement). A different aspect ratio, a
    non-2-D array or a non-finite value is a :class:`PipelineError` naming ``source``.
    ``uint8`` masks are read as ``0..255``; ``bool`` masks as 0/1.
    """
    if not isinstance(mask, np.ndarray):
        raise PipelineError(f"{source} returned a {type(mask).__name__}, expected a numpy array [H, W]")
    if mask.ndim == 3 and mask.shape[2] == 1:
        mask = mask[:, :, 0]
    if mask.ndim != 2 or mask.size == 0:
        raise PipelineError(f"{source} returned a mask of shape {mask.shape}, expected a 2-D array [H, W]")
    h, w = mask.shape
    if abs((w / h) / (width / height) - 1.0) > _ASPECT_TOLERANCE:
        raise PipelineError(
            f"{source} returned a {w}x{h} mask for a {width}x{height} frame: the aspect ratio differs; "
            "return a mask of the frame's size (or a scaled copy of it)"
        )
    if mask.dtype == np.uint8:
        out = mask.astype(np.float32) * (1.0 / 255.0)
    elif mask.dtype == np.bool_:
        out = mask.astype(np.float32)
    else:
        out = mask.astype(np.float32, copy=False)
        if not np.isfinite(out).all():
            raise PipelineError(f"{source} returned a mask with NaN or infinite values")
    if (h, w) != (height, width) and not (keep_smaller and h < height and w < width):
        out = cv2.resize(out, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.clip(out, 0.0, 1.0)
