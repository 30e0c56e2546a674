"""Bringing a frame to the pipeline's picture size: :func:`resize_frame`."""

from __future__ import annotations

import numpy as np

from livestyle.engine.frames import Frame

__all__ = ["resize_frame"]


def resize_frame(frame: Frame, size: tuple[int, int], fit: str = "stretch") -> Frame:
    """``frame`` with its picture resized to ``size`` = ``(width, height)`` (area/linear filter).

    ``fit``: ``stretch`` scales each axis on its own (the working-size round trip, whose aspect
    barely changes); ``crop`` / ``pad`` keep the picture's aspect (:mod:`livestyle.engine.fit`),
    for a source of another shape. The image stays ``uint8`` ``[H, W, 3]`` RGB; timing fields are kept.
    """
    width, height = size
    if frame.width == width and frame.height == height:
        return frame
    if fit != "stretch":
        from livestyle.engine.fit import check_fit, fit_image

        return frame.with_image(np.ascontiguousarray(fit_image(frame.image, size, check_fit(fit))))
    import cv2

    shrink = width < frame.width and height < frame.height
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    image = cv2.resize(frame.image, (width, height), interpolation=interp)
    return frame.with_image(np.ascontiguousarray(image))
