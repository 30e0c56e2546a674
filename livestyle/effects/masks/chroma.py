"""Green/blue-screen keying: the subject is whatever is not the key colour. No model.

The distance of each pixel from the key colour is measured in the CbCr (chroma) plane of BT.601
YCbCr, so shadows and bright spots on the screen key alike. With ``d`` that distance in
``[0, 1]`` (units of 255): ``d <= tolerance`` is background (mask 0), ``d >= tolerance +
softness`` is subject (mask 1), linear in between (the soft edge). Spill suppression pulls the key
colour's dominant channel of subject pixels down towards the larger of the other two, so green
light bounced onto hair and shoulders does not show; it is weighted by the subject mask and so
leaves the screen itself untouched.

A frame without the key colour anywhere gives an all-ones subject mask: the background region is
empty, so ``--effect background`` keeps the whole camera frame and ``--effect person`` styles it all.
"""

from __future__ import annotations

import cv2
import numpy as np

from livestyle.config import ChromaKeyConfig
from livestyle.errors import ConfigError
from livestyle.effects.masks.base import MaskResult

__all__ = ["KEY_COLORS", "ChromaKeyer", "parse_key_color"]

KEY_COLORS: dict[str, tuple[int, int, int]] = {
    "green": (0, 177, 64),
    "blue": (0, 71, 187),
}
"""Named key colours (RGB): the usual chroma-key paints."""


def parse_key_color(value: str | tuple[int, int, int] | list[int]) -> tuple[int, int, int]:
    """``"green"``, ``"blue"``, ``"#00b140"``, ``"0,177,64"`` or an RGB triple → ``(r, g, b)``."""
    if isinstance(value, (tuple, list)):
        rgb = tuple(int(v) for v in value)
    elif value.lower() in KEY_COLORS:
        return KEY_COLORS[value.lower()]
    elif value.startswith("#") and len(value) == 7:
        try:
            rgb = tuple(int(value[i : i + 2], 16) for i in (1, 3, 5))
        except ValueError:
            raise ConfigError(f"effects.chroma.key_color {value!r} is not a #rrggbb hex colour") from None
    else:
        try:
            rgb = tuple(int(v) for v in value.split(","))
        except ValueError:
            raise ConfigError(f"effects.chroma.key_color {value!r} is not green, blue, #rrggbb or r,g,b") from None
    if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
        raise ConfigError(f"effects.chroma.key_color {value!r} must be three values in 0..255")
    return (rgb[0], rgb[1], rgb[2])


def _chroma(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cr and Cb planes (float32, 0..255, neutral 128) of a uint8 RGB image or colour."""
    ycrcb = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)
    return ycrcb[..., 1].astype(np.float32), ycrcb[..., 2].astype(np.float32)


class ChromaKeyer:
    """Mask provider ``chroma``: see the module docstring."""

    name = "chroma"

    def __init__(self, settings: ChromaKeyConfig | None = None) -> None:
        self.settings = settings or ChromaKeyConfig()
        key = np.array(parse_key_color(self.settings.key_color), dtype=np.uint8).reshape(1, 1, 3)
        cr, cb = _chroma(key)
        self._key_cr, self._key_cb = float(cr[0, 0]), float(cb[0, 0])
        self._dominant = int(np.argmax(key[0, 0]))
        self._others = [c for c in range(3) if c != self._dominant]

    def subject(self, image: np.ndarray) -> np.ndarray:
        """``uint8`` ``[H, W, 3]`` RGB → subject mask ``float32`` ``[H, W]`` in ``[0, 1]``."""
        s = self.settings
        cr, cb = _chroma(image)
        cr -= self._key_cr
        cb -= self._key_cb
        dist = cv2.magnitude(cr, cb)  # float32, 0..~360
        lo = 255.0 * s.tolerance
        scale = 1.0 / (255.0 * s.softness)
        return np.clip((dist - lo) * scale, 0.0, 1.0, out=dist)

    def despill(self, image: np.ndarray, subject: np.ndarray) -> np.ndarray:
        """Spill-suppressed copy of ``image`` (``uint8`` ``[H, W, 3]``), weighted by ``subject``."""
        k = self._dominant
        a, b = self._others
        channel = image[..., k].astype(np.float32)
        limit = np.maximum(image[..., a], image[..., b]).astype(np.float32)
        excess = np.maximum(channel - limit, 0.0)
        out = image.copy()
        out[..., k] = np.clip(channel - self.settings.spill * excess * subject + 0.5, 0, 255).astype(np.uint8)
        return out

    def compute(self, image: np.ndarray) -> MaskResult:
        assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8, f"{image.shape=} {image.dtype=}"
        subject = self.subject(image)
        camera = self.despill(image, subject) if self.settings.spill > 0 else None
        return MaskResult(subject=subject, camera=camera)

    def reset(self) -> None:
        """Keying looks at one frame at a time: there is nothing to forget."""
