"""``effects.fill = blur``: the effect's region shows the camera blurred (the video-call background blur)."""

from __future__ import annotations

from fractions import Fraction

import cv2
import numpy as np
import pytest

from livestyle.config import EffectsConfig
from livestyle.effects.generator import EffectGenerator, blurred
from livestyle.engine.frames import Frame
from livestyle.effects.masks.base import MaskResult

H, W = 96, 128


def textured(index: int, h: int = H, w: int = W) -> Frame:
    rng = np.random.default_rng(index)
    img = cv2.resize(rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8), (w, h), interpolation=cv2.INTER_CUBIC)
    return Frame(image=img, pts=index, time_base=Fraction(1, 30), capture_time=float(index), index=index)


class LeftHalf:
    """A provider whose subject is the left half of every frame."""

    name = "left-half"

    def compute(self, image: np.ndarray) -> MaskResult:
        subject = np.zeros(image.shape[:2], np.float32)
        subject[:, : image.shape[1] // 2] = 1.0
        return MaskResult(subject=subject)

    def reset(self) -> None:
        """Stateless."""


class Inverter:
    """A generator whose output differs from any blur of the input: proves blur does not use it."""

    name = "inverter"

    def frames_needed(self) -> int:
        return 2

    def process(self, frames):
        return [f.with_image(255 - f.image) for f in frames]

    def apply(self, command: object) -> None:
        """Nothing to change."""

    def reset(self) -> None:
        """Stateless."""

    def stats(self) -> dict:
        return {}


def test_cheap_blur_is_close_to_a_full_size_gaussian() -> None:
    image = textured(0, 480, 640).image
    for sigma in (6.0, 12.0, 24.0):
        exact = cv2.GaussianBlur(image, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REPLICATE)
        diff = cv2.absdiff(blurred(image, sigma), exact)
        m = int(2 * sigma)  # the borders differ a little more (up to 19 levels at 24 px)
        assert diff.mean() < 1.0 and diff[m:-m, m:-m].max() <= 3, (sigma, diff.mean(), diff[m:-m, m:-m].max())
    small = cv2.GaussianBlur(image, (0, 0), sigmaX=2.0, sigmaY=2.0, borderType=cv2.BORDER_REPLICATE)
    assert np.array_equal(blurred(image, 2.0), small)  # below 6 px: the exact blur


@pytest.mark.parametrize("mode", ["background", "person"])
def test_blur_fill_keeps_the_camera_and_blurs_the_effect_region(mode: str) -> None:
    cfg = EffectsConfig(mode=mode, fill="blur", blur=8.0, feather=0.0, smoothing=0.0)
    gen = EffectGenerator(Inverter(), cfg, LeftHalf())
    frames = [textured(i) for i in range(2)]
    out = gen.process(frames)
    assert [o.index for o in out] == [0, 1]
    for frame, o in zip(frames, out):
        blur = blurred(frame.image, 8.0)
        keep, fill = (slice(W // 2, None), slice(None, W // 2)) if mode == "person" else (slice(None, W // 2), slice(W // 2, None))
        assert np.array_equal(o.image[:, keep], frame.image[:, keep])  # the camera, untouched
        assert np.abs(o.image[:, fill].astype(int) - blur[:, fill]).max() <= 1  # blurred camera, not the inverter's pixels
        assert o.image[:, fill].std() < 0.5 * frame.image[:, fill].std()


def test_styled_fill_is_the_default_and_uses_the_generator() -> None:
    cfg = EffectsConfig(mode="background", feather=0.0, smoothing=0.0)
    assert cfg.fill == "styled"
    frame = textured(3)
    out = EffectGenerator(Inverter(), cfg, LeftHalf()).process([frame, textured(4)])[0]
    assert np.array_equal(out.image[:, W // 2 :], 255 - frame.image[:, W // 2 :])
