"""EffectGenerator: compositing with the mask of the same input frame, also under pipeline delay."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from fractions import Fraction
from typing import Any

import numpy as np
import pytest

from livestyle.config import EffectsConfig
from livestyle.errors import ControlError, PipelineError
from livestyle.engine.commands import Reset, SetEffect, SetPrompt
from livestyle.effects.generator import EffectGenerator, composite
from livestyle.engine.frames import Frame
from livestyle.effects.masks.base import MaskResult, fit_mask
from livestyle.engine.passthrough import PassthroughGenerator

H, W = 48, 64
GREEN = (0, 177, 64)
SKIN = (224, 172, 140)
EXACT = dict(feather=0.0, smoothing=0.0, mask="chroma")


def green_frame(index: int) -> Frame:
    """Green screen with a subject bar whose column depends on the frame index."""
    img = np.empty((H, W, 3), np.uint8)
    img[:] = GREEN
    x = 4 + 5 * (index % 10)
    img[:, x : x + 4] = SKIN
    return Frame(image=img, pts=index * 3000, time_base=Fraction(1, 90000), capture_time=float(index), index=index)


def bar(index: int) -> np.ndarray:
    m = np.zeros((H, W), bool)
    x = 4 + 5 * (index % 10)
    m[:, x : x + 4] = True
    return m


class DelayedInverter:
    """Stands in for a stream-batch pipeline: styles (inverts) frames and returns them `delay` chunks late."""

    name = "delayed-inverter"

    def __init__(self, chunk: int = 4, delay: int = 2) -> None:
        self.chunk, self.delay = chunk, delay
        self.queue: list[list[Frame]] = []
        self.seen_extras: list[dict[str, Any]] = []
        self.commands: list[object] = []

    def frames_needed(self) -> int:
        return self.chunk

    def process(self, frames: Sequence[Frame]) -> list[Frame]:
        self.seen_extras += [dict(f.extras) for f in frames]
        self.queue.append([f.with_image(255 - f.image) for f in frames])
        return self.queue.pop(0) if len(self.queue) > self.delay else []

    def apply(self, command: object) -> None:
        self.commands.append(command)

    def reset(self) -> None:
        self.queue.clear()

    def stats(self) -> dict[str, Any]:
        return {"name": self.name}


def run(gen: EffectGenerator, n: int, make=green_frame) -> list[Frame]:
    out: list[Frame] = []
    i = 0
    while i < n:
        k = gen.frames_needed()
        out += gen.process([make(j) for j in range(i, i + k)])
        i += k
    return out


@pytest.mark.parametrize("keep_hint", [False, True], ids=["masks-beside-generator", "masks-before-generator"])
@pytest.mark.parametrize("mode", ["background", "person"])
def test_frame_n_is_composited_with_frame_n_mask_under_delay(mode, keep_hint):
    inner = DelayedInverter(chunk=4, delay=2)
    gen = EffectGenerator(inner, EffectsConfig(mode=mode, keep_hint=keep_hint, **EXACT))
    out = run(gen, 24)
    assert [f.index for f in out] == list(range(16))  # two chunks still in flight
    for f in out:
        src = green_frame(f.index)
        subject = bar(f.index)
        styled_region = ~subject if mode == "background" else subject
        assert np.array_equal(f.image[styled_region], 255 - src.image[styled_region])
        assert np.array_equal(f.image[~styled_region], src.image[~styled_region])
        assert f.pts == src.pts and f.capture_time == src.capture_time
    assert gen.stats()["masks_pending"] == 8


def test_a_failing_mask_surfaces_from_the_worker_thread():
    class Broken:
        name = "broken"

        def compute(self, image):
            raise PipelineError("mask provider 'broken' failed")

        def reset(self) -> None:
            """Stateless."""

    gen = EffectGenerator(DelayedInverter(delay=0), EffectsConfig(mode="background", **EXACT), Broken())
    with pytest.raises(PipelineError, match="mask provider 'broken' failed"):
        run(gen, 4)


def test_keep_mask_goes_to_the_inner_generator():
    inner = DelayedInverter(chunk=2, delay=0)
    gen = EffectGenerator(inner, EffectsConfig(mode="background", keep_hint=True, **EXACT))
    run(gen, 2)
    keep = inner.seen_extras[1]["keep_mask"]
    assert keep.dtype == np.float32 and keep.shape == (H, W)
    assert np.array_equal(keep, bar(1).astype(np.float32))  # background effect keeps the person
    inner2 = DelayedInverter(chunk=2, delay=0)
    run(EffectGenerator(inner2, EffectsConfig(mode="background", keep_hint=False, **EXACT)), 2)
    assert "keep_mask" not in inner2.seen_extras[0]


def test_no_key_colour_background_keeps_camera_person_styles_all():
    def plain(i: int) -> Frame:
        f = green_frame(i)
        return f.with_image(np.full((H, W, 3), SKIN, np.uint8))

    out_bg = run(EffectGenerator(DelayedInverter(delay=0), EffectsConfig(mode="background", **EXACT)), 4, plain)
    assert all(np.array_equal(f.image, plain(f.index).image) for f in out_bg)
    out_p = run(EffectGenerator(DelayedInverter(delay=0), EffectsConfig(mode="person", **EXACT)), 4, plain)
    assert all(np.array_equal(f.image, 255 - plain(f.index).image) for f in out_p)


class FixedProvider:
    """A custom provider returning a given mask (any size) for every frame."""

    name = "fixed"

    def __init__(self, mask: np.ndarray) -> None:
        self.mask = mask

    def compute(self, image: np.ndarray) -> MaskResult:
        return MaskResult(subject=self.mask)

    def reset(self) -> None:
        """Stateless."""


def test_no_person_background_effect_styles_the_whole_frame():
    gen = EffectGenerator(DelayedInverter(delay=1), EffectsConfig(mode="background", **EXACT), FixedProvider(np.zeros((H, W), np.float32)))
    out = run(gen, 12)
    assert len(out) == 8 and all(np.array_equal(f.image, 255 - green_frame(f.index).image) for f in out)


def test_wrong_size_mask_is_resized_or_rejected():
    half = np.zeros((H // 2, W // 2), np.uint8)
    half[:, W // 4 :] = 255
    gen = EffectGenerator(DelayedInverter(delay=0), EffectsConfig(mode="person", **EXACT), FixedProvider(half))
    out = run(gen, 4)
    assert np.array_equal(out[0].image[:, W // 2 + 2 :], 255 - green_frame(0).image[:, W // 2 + 2 :])
    assert np.array_equal(out[0].image[:, : W // 2 - 2], green_frame(0).image[:, : W // 2 - 2])
    square = np.ones((10, 10), np.float32)
    gen = EffectGenerator(DelayedInverter(delay=0), EffectsConfig(mode="person", **EXACT), FixedProvider(square))
    with pytest.raises(PipelineError) as err:
        run(gen, 4)
    assert str(err.value) == (
        "mask provider 'fixed' returned a 10x10 mask for a 64x48 frame: the aspect ratio differs; "
        "return a mask of the frame's size (or a scaled copy of it)"
    )
    with pytest.raises(PipelineError) as err:
        fit_mask(np.ones((4, 4, 3)), 4, 4)
    assert str(err.value) == "mask provider returned a mask of shape (4, 4, 3), expected a 2-D array [H, W]"


def test_styled_frame_of_another_size_is_composited_at_its_size():
    class Shrinker(DelayedInverter):
        def process(self, frames):
            return [f.with_image(255 - f.image[::2, ::2].copy()) for f in frames]

    gen = EffectGenerator(Shrinker(delay=0), EffectsConfig(mode="background", **EXACT))
    out = run(gen, 4)
    assert out[0].image.shape == (H // 2, W // 2, 3)


def test_set_effect_between_chunks_and_reset():
    inner = DelayedInverter(chunk=4, delay=1)
    gen = EffectGenerator(inner, EffectsConfig(mode="full", **EXACT))
    out = run(gen, 8)
    assert np.array_equal(out[0].image, 255 - green_frame(0).image)  # full: all styled
    gen.apply(SetEffect("person"))
    out = gen.process([green_frame(i) for i in range(8, 12)])
    # frames 4..7 went in under "full" and have no mask: they come out fully styled
    assert [f.index for f in out] == [4, 5, 6, 7]
    assert np.array_equal(out[0].image, 255 - green_frame(4).image)
    out = gen.process([green_frame(i) for i in range(12, 16)])
    assert np.array_equal(out[0].image[~bar(8)], green_frame(8).image[~bar(8)])
    gen.apply(SetPrompt("forest"))
    gen.apply(Reset())
    assert gen.stats()["masks_pending"] == 0 and isinstance(inner.commands[-1], Reset)
    assert SetEffect("person") in inner.commands  # the inner generator hears it too
    with pytest.raises(ControlError) as err:
        gen.apply(SetEffect("sky"))  # type: ignore[arg-type]
    assert str(err.value) == "unknown effect 'sky'; choose one of: full, background, person"


def test_switching_to_an_effect_without_weights_is_rejected_cleanly(tmp_path):
    from livestyle.config import PersonMaskConfig

    cfg = EffectsConfig(mode="full", mask="person-hq", person=PersonMaskConfig(checkpoint=str(tmp_path / "none.ckpt")))
    gen = EffectGenerator(PassthroughGenerator(), cfg)
    with pytest.raises(ControlError) as err:
        gen.apply(SetEffect("background"))
    assert str(err.value).startswith("cannot switch to effect 'background': person mask checkpoint ")
    assert gen.effect == "full"


def test_output_without_its_mask_is_an_error():
    class Renumber(DelayedInverter):
        def process(self, frames):
            return [replace(f, index=f.index + 1000) for f in frames]

    gen = EffectGenerator(Renumber(delay=0), EffectsConfig(mode="background", **EXACT))
    with pytest.raises(PipelineError) as err:
        run(gen, 4)
    assert str(err.value).startswith("styled frame 1000 has no mask: the generator 'delayed-inverter' must keep")


def test_pending_masks_are_bounded():
    gen = EffectGenerator(DelayedInverter(chunk=4, delay=100), EffectsConfig(mode="background", max_pending=10, **EXACT))
    run(gen, 40)
    stats = gen.stats()
    assert stats["masks_pending"] == 10 and stats["masks_evicted"] == 30


def test_preview_with_passthrough_tints_the_screen():
    gen = EffectGenerator(PassthroughGenerator(chunk_frames=2), EffectsConfig(mode="full", preview=True, **EXACT))
    out = run(gen, 2)
    img = out[0].image
    assert img[0, 0, 1] < 120 and img[0, 0, 0] > 100  # green screen turned magenta-ish
    assert np.array_equal(img[bar(0)], green_frame(0).image[bar(0)])  # subject untouched


def test_composite_blends_linearly():
    styled = np.full((2, 2, 3), 200, np.uint8)
    camera = np.full((2, 2, 3), 100, np.uint8)
    subject = np.array([[0, 0.5], [1, 0.25]], np.float32)
    out = composite(styled, camera, subject, "person")
    assert out[:, :, 0].tolist() == [[100, 150], [200, 125]]
    assert composite(styled, camera, subject, "full") is styled
