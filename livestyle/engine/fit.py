"""Aspect-ratio fit: how a source picture of one shape becomes a frame of another.

The pipeline works at one size (``stream.size``, 832x480 by default: about 16:9). A 4:3 camera
scaled straight to it would come out 30% wider (a circle becomes an ellipse), so every source
that scales (camera, WebRTC/WHIP, files and streams) goes through :func:`fit_image`:

- ``crop`` (default): scale until the picture covers the target, then cut the overflow evenly
  from both sides (centre crop). Nothing is distorted; the edges of a 4:3 picture are lost.
- ``pad``: scale until the picture fits inside the target and fill the rest with black bars
  (letterbox / pillarbox). Nothing is lost or distorted; the model styles the bars too.
- ``stretch``: scale each axis on its own (the behaviour before ``--fit`` existed).

The working-size rule (:func:`working_size`): the pipeline keeps the requested size when the
user asked for one; otherwise it takes the source's aspect ratio at about the requested number
of pixels, in multiples of 16, within the model's bound. Output frames are written at the working
size, so a recording or virtual camera shows exactly what the model produced. Without a model
(passthrough, effects alone) `livestyle run` and `serve` keep the source's own size.

All functions are pure: ``uint8 [H, W, 3]`` RGB arrays in, new arrays out.
"""

from __future__ import annotations

import math
from typing import Literal, get_args

import numpy as np

from livestyle.errors import ConfigError

__all__ = ["DEFAULT_FIT", "FIT_MODES", "FitMode", "check_fit", "fit_box", "fit_image", "working_size"]

FitMode = Literal["crop", "pad", "stretch"]
FIT_MODES: tuple[str, ...] = get_args(FitMode)
DEFAULT_FIT: FitMode = "crop"


def check_fit(mode: str) -> FitMode:
    """``mode`` as a :data:`FitMode`; :class:`ConfigError` naming the valid ones otherwise."""
    if mode not in FIT_MODES:
        raise ConfigError(f"unknown fit {mode!r}; choose one of {', '.join(FIT_MODES)}")
    return mode  # type: ignore[return-value]


def fit_box(src: tuple[int, int], dst: tuple[int, int], mode: FitMode) -> tuple[tuple[int, int, int, int], tuple[int, int]]:
    """Where the picture goes: ``((x, y, w, h) of the source region used, (w, h) it is scaled to))``.

    ``crop``: the centred source region with ``dst``'s aspect, scaled to ``dst``. ``pad``: the
    whole source, scaled to the largest size with its aspect inside ``dst``. ``stretch``: the
    whole source scaled to ``dst``. Sizes are ``(width, height)``.
    """
    sw, sh = src
    dw, dh = dst
    if min(sw, sh, dw, dh) <= 0:
        raise ConfigError(f"cannot fit {sw}x{sh} into {dw}x{dh}: sizes must be positive")
    if mode == "stretch" or sw * dh == sh * dw:
        return (0, 0, sw, sh), (dw, dh)
    if mode == "crop":
        if sw * dh > sh * dw:  # source wider than the target: cut the sides
            cw = max(1, round(sh * dw / dh))
            return ((sw - cw) // 2, 0, cw, sh), (dw, dh)
        ch = max(1, round(sw * dh / dw))
        return (0, (sh - ch) // 2, sw, ch), (dw, dh)
    scale = min(dw / sw, dh / sh)
    return (0, 0, sw, sh), (max(1, min(dw, round(sw * scale))), max(1, min(dh, round(sh * scale))))


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import cv2

    w, h = size
    if (image.shape[1], image.shape[0]) == (w, h):
        return image
    shrink = w < image.shape[1] and h < image.shape[0]
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def fit_image(image: np.ndarray, size: tuple[int, int], mode: FitMode = DEFAULT_FIT) -> np.ndarray:
    """``image`` (``uint8 [H, W, 3]``) fitted to ``size`` = ``(width, height)`` by ``mode``.

    Returns a C-contiguous ``uint8 [height, width, 3]`` array (``image`` itself when it already
    has that size).
    """
    assert image.ndim == 3 and image.dtype == np.uint8, f"{image.shape=} {image.dtype=}"
    (x, y, w, h), scaled = fit_box((image.shape[1], image.shape[0]), size, mode)
    picture = _resize(image[y:y + h, x:x + w], scaled)
    if scaled == tuple(size):
        return np.ascontiguousarray(picture)
    out = np.zeros((size[1], size[0], image.shape[2]), np.uint8)
    top, left = (size[1] - scaled[1]) // 2, (size[0] - scaled[0]) // 2
    out[top:top + scaled[1], left:left + scaled[0]] = picture
    return out


def working_size(
    source: tuple[int, int],
    requested: tuple[int, int],
    *,
    explicit: bool,
    bound: tuple[int, int] | None = None,
    multiple: int = 16,
) -> tuple[int, int]:
    """The pipeline's working size for a source of size ``source``.

    ``explicit`` (the user gave ``--size``): ``requested``. Otherwise the source's aspect ratio at
    about ``requested``'s pixel count, rounded down to ``multiple``, shrunk to fit ``bound``
    (``(w, h)``, the model's largest size) when one is given.
    """
    if explicit:
        return requested
    sw, sh = source
    area = requested[0] * requested[1]
    h = math.sqrt(area * sh / sw)
    w = h * sw / sh
    if bound is not None:
        scale = min(1.0, bound[0] / w, bound[1] / h)
        w, h = w * scale, h * scale
    return max(multiple, int(w) // multiple * multiple), max(multiple, int(h) // multiple * multiple)
