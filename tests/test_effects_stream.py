"""EffectGenerator around the real StreamPipeline (tiny random model, stream batch): frame N's mask
composites frame N's styled output, although outputs lag their inputs by a chunk."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import torch
from pipeline_helpers import tiny_wan_pipeline

from livestyle.config import EffectsConfig
from livestyle.effects.generator import EffectGenerator
from livestyle.engine.frames import Frame

H, W = 32, 48
GREEN = (0, 177, 64)
SKIN = (224, 172, 140)


def frame(i: int) -> Frame:
    img = np.empty((H, W, 3), np.uint8)
    img[:] = GREEN
    x = 2 + 4 * (i % 10)
    img[:, x : x + 4] = SKIN
    return Frame(img, pts=i * 3000, time_base=Fraction(1, 90000), capture_time=float(i), index=i)


def bar(i: int) -> np.ndarray:
    m = np.zeros((H, W), bool)
    x = 2 + 4 * (i % 10)
    m[:, x : x + 4] = True
    return m


def test_person_region_shows_the_same_frames_camera_under_stream_batch_delay():
    gen = EffectGenerator(tiny_wan_pipeline(W, H), EffectsConfig(mode="background", mask="chroma", feather=0.0, smoothing=0.0))
    outputs: list[Frame] = []
    lags: list[int] = []
    i = 0
    with torch.no_grad():
        while i < 21:
            n = gen.frames_needed()
            got = gen.process([frame(j) for j in range(i, i + n)])
            i += n
            if got:
                lags.append(i - 1 - got[-1].index)
            outputs += got
    assert outputs and max(lags) >= 4  # the outputs really come a chunk late
    for out in outputs:
        cam = frame(out.index).image
        here = bar(out.index)
        assert np.array_equal(out.image[here], cam[here])  # person: this frame's camera pixels
        elsewhere = bar(out.index - 4) & ~here  # where the person stood a chunk earlier: styled now
        assert not np.array_equal(out.image[elsewhere], cam[elsewhere])
        assert out.pts == out.index * 3000
