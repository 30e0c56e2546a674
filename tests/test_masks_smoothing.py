"""Temporal smoothing removes edge shimmer; feathering softens hard edges; preview tints."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from livestyle.errors import ConfigError
from livestyle.effects.masks.overlay import PREVIEW_TINT, mask_overlay
from livestyle.effects.masks.smoothing import TemporalSmoother, edge_flicker, feather


def jittering_disc(n: int, seed: int = 0, h: int = 96, w: int = 128) -> list[np.ndarray]:
    """A still disc whose segmented edge jitters by up to ±2 px each frame, plus speckle noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    r = np.hypot(yy - h / 2, xx - w / 2)
    masks = []
    for _ in range(n):
        radius = 30 + rng.uniform(-2, 2)
        m = np.clip(radius - r + 0.5, 0, 1).astype(np.float32)
        speckle = rng.random((h, w)) < 0.01
        m[speckle] = 1 - m[speckle]
        masks.append(m)
    return masks


def test_smoothing_reduces_edge_flicker_by_a_measured_factor():
    masks = jittering_disc(60)
    smoother = TemporalSmoother(history=0.6)
    smoothed = [smoother.update(m).copy() for m in masks]
    raw, smooth = edge_flicker(masks[10:]), edge_flicker(smoothed[10:])
    factor = raw / smooth
    print(f"edge flicker raw={raw:.5f} smoothed={smooth:.5f} factor={factor:.2f}")
    assert factor >= 2.3
    # and it stays on the disc: the average mask is unchanged within a small tolerance
    assert abs(np.mean(smoothed[10:]) - np.mean(masks[10:])) < 0.01


def test_off_and_scene_cut_pass_the_new_mask_through():
    off = TemporalSmoother(history=0.0)
    a = np.zeros((8, 8), np.float32)
    b = np.full((8, 8), 0.1, np.float32)
    off.update(a)
    assert np.array_equal(off.update(b), b)
    s = TemporalSmoother(history=0.5, cut_threshold=0.25)
    s.update(a)
    assert np.allclose(s.update(b), 0.05)  # small change: averaged
    ones = np.ones((8, 8), np.float32)
    assert np.array_equal(s.update(ones), ones)  # a person walked in: no ghost of the empty frame
    s.reset()
    assert np.array_equal(s.update(a), a)


def test_bad_smoothing_values():
    with pytest.raises(ConfigError) as err:
        TemporalSmoother(history=1.0)
    assert str(err.value) == "effects.smoothing must be in [0, 1), got 1.0"


def test_feather_softens_only_the_edge():
    m = np.zeros((40, 40), np.float32)
    m[:, 20:] = 1
    f = feather(m, 2.0)
    assert f[:, :10].max() < 1e-3 and f[:, 30:].min() > 1 - 1e-3
    assert 0.3 < f[5, 20] < 0.7 and 0.3 < f[5, 19] < 0.7
    assert feather(m, 0) is m


def test_overlay_tints_background_only():
    img = np.full((10, 10, 3), 100, np.uint8)
    subject = np.zeros((10, 10), np.float32)
    subject[:, 5:] = 1
    out = mask_overlay(img, subject, opacity=1.0)
    assert out[0, 0].tolist() == list(PREVIEW_TINT)
    assert out[0, 9].tolist() == [100, 100, 100]
    assert cv2.absdiff(out[:, 5:], img[:, 5:]).max() == 0
