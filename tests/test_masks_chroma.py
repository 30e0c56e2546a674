"""Chroma keying on synthetic green/blue-screen frames with known key regions."""

from __future__ import annotations

import numpy as np
import pytest

from livestyle.config import ChromaKeyConfig
from livestyle.errors import ConfigError
from livestyle.effects.masks.chroma import KEY_COLORS, ChromaKeyer, parse_key_color

SKIN = (224, 172, 140)
SHIRT = (40, 40, 160)


def screen_frame(key=(0, 177, 64), h=120, w=160, seed=0, subject=True) -> np.ndarray:
    """A noisy, unevenly lit screen with a subject rectangle (rows 30..89, cols 50..109)."""
    rng = np.random.default_rng(seed)
    light = np.linspace(0.8, 1.1, w)[None, :, None]
    img = np.clip(np.array(key, np.float32) * light + rng.normal(0, 4, (h, w, 3)), 0, 255)
    if subject:
        img[30:90, 50:80] = SKIN
        img[30:90, 80:110] = SHIRT
    return img.astype(np.uint8)


def test_interior_is_pixel_exact():
    img = screen_frame()
    subject = ChromaKeyer().compute(img).subject
    assert subject.shape == (120, 160) and subject.dtype == np.float32
    truth = np.zeros((120, 160), bool)
    truth[30:90, 50:110] = True
    assert np.array_equal(subject[truth], np.ones(truth.sum(), np.float32))
    assert np.array_equal(subject[~truth], np.zeros((~truth).sum(), np.float32))


def test_soft_edge_error_is_bounded():
    # An anti-aliased boundary: column 80 is half screen, half skin.
    img = screen_frame(subject=False)
    truth = np.zeros((120, 160), np.float32)
    truth[:, :60] = 1.0
    img[:, :60] = SKIN
    cov = np.linspace(1.0, 0.0, 6)[1:-1]  # 4 mixed columns 60..63
    key = np.array(KEY_COLORS["green"], np.float32)
    for i, c in enumerate(cov):
        img[:, 60 + i] = (c * np.array(SKIN) + (1 - c) * key).astype(np.uint8)
        truth[:, 60 + i] = c
    subject = ChromaKeyer().compute(img).subject
    interior = np.ones_like(truth, bool)
    interior[:, 58:66] = False
    assert np.array_equal(subject[interior], truth[interior])
    edge_err = np.abs(subject[:, 58:66] - truth[:, 58:66])
    assert edge_err.max() <= 0.6
    assert edge_err.mean() <= 0.25
    # monotone across the edge, as coverage is
    row = subject[60, 58:66]
    assert np.all(np.diff(row) <= 1e-6)


def test_blue_screen_and_named_colours():
    img = screen_frame(key=KEY_COLORS["blue"])
    img[30:90, 80:110] = (200, 60, 40)  # no blue shirt in front of a blue screen
    subject = ChromaKeyer(ChromaKeyConfig(key_color="blue")).compute(img).subject
    assert subject[60, 60] == 1.0 and subject[60, 90] == 1.0 and subject[5, 5] == 0.0
    assert parse_key_color("#00b140") == (0, 177, 64)
    assert parse_key_color("0, 71, 187") == KEY_COLORS["blue"]


def test_no_key_colour_gives_all_subject():
    rng = np.random.default_rng(1)
    img = np.full((64, 96, 3), SKIN, np.uint8)
    img[:, 48:] = rng.integers(0, 256, (64, 48, 1), dtype=np.uint8)  # greys from black to white
    img[:16, :48] = SHIRT
    img[16:32, :48] = (200, 30, 30)
    subject = ChromaKeyer().compute(img).subject
    assert np.array_equal(subject, np.ones((64, 96), np.float32))


def test_spill_suppression_touches_subject_not_screen():
    img = screen_frame()
    img[40, 60] = (150, 200, 140)  # green light bounced onto skin
    result = ChromaKeyer(ChromaKeyConfig(spill=1.0)).compute(img)
    assert result.camera is not None
    a = float(result.subject[40, 60])
    assert 0.5 < a <= 1.0
    r, g, b = result.camera[40, 60]
    assert (r, b) == (150, 140)
    assert g == int(200 - a * (200 - 150) + 0.5)  # green pulled towards max(r, b), weighted by the mask
    assert result.camera[60, 60].tolist() == list(SKIN)  # no spill: unchanged
    screen = result.subject == 0
    assert np.array_equal(result.camera[screen], img[screen])
    assert ChromaKeyer(ChromaKeyConfig(spill=0.0)).compute(img).camera is None


@pytest.mark.parametrize(
    "value, message",
    [
        ("purple", "effects.chroma.key_color 'purple' is not green, blue, #rrggbb or r,g,b"),
        ("#zz0000", "effects.chroma.key_color '#zz0000' is not a #rrggbb hex colour"),
        ("0,300,0", "effects.chroma.key_color '0,300,0' must be three values in 0..255"),
    ],
)
def test_bad_key_colour(value, message):
    with pytest.raises(ConfigError) as err:
        ChromaKeyer(ChromaKeyConfig(key_color=value))
    assert str(err.value) == message
