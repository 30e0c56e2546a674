"""The test pattern: exact timestamps, motion, determinism, pacing on an injected clock."""

from __future__ import annotations

import threading
from fractions import Fraction

import numpy as np
import pytest
from fakes import FakeClock

from livestyle.errors import SourceError
from livestyle.ingest import open_source
from livestyle.ingest.pacing import Pacer
from livestyle.ingest.pattern import PatternSource, render_pattern


def test_frames_have_exact_pts_and_size() -> None:
    source = open_source("pattern", size=(160, 96), fps=25, pace=False)
    info = source.open()
    assert (info.width, info.height, info.fps, info.time_base) == (160, 96, 25.0, Fraction(1, 25))
    frames = [f for _, f in zip(range(10), source.frames())]
    source.close()
    assert [f.pts for f in frames] == list(range(10))
    assert [f.index for f in frames] == list(range(10))
    assert all(f.time_base == Fraction(1, 25) for f in frames)
    assert all(f.image.shape == (96, 160, 3) and f.image.dtype == np.uint8 for f in frames)
    assert frames[9].seconds == pytest.approx(0.36)


def test_content_moves_and_is_deterministic() -> None:
    a, b = render_pattern(7, 128, 72), render_pattern(7, 128, 72)
    assert np.array_equal(a, b)
    consecutive = [render_pattern(i, 128, 72) for i in range(4)]
    for first, second in zip(consecutive, consecutive[1:]):
        changed = np.any(first != second, axis=2).mean()
        assert changed > 0.05  # bars scroll and the box moves: a real share of pixels changes
    # frames handed out are independent buffers (a sink may hold one while the next is drawn)
    source = PatternSource((64, 48), 30, pace=False, max_frames=2)
    source.open()
    first, second = list(source.frames())
    assert not np.shares_memory(first.image, second.image)


def test_frame_counter_reads_back() -> None:
    from livestyle.ingest.pattern import _DIGITS

    image = render_pattern(4071, 270, 180)  # scale 2: digit k is 3x5 blocks of 2 px at x=2+8k
    read = ""
    for k in range(6):
        cells = image[2:12:2, 2 + 8 * k:8 + 8 * k:2, 0] > 127
        bits = "".join("1" if c else "0" for c in cells.reshape(-1))
        read += str(_DIGITS.index(bits))
    assert read == "004071"


def test_pacing_on_injected_clock() -> None:
    clock = FakeClock(50.0)
    source = PatternSource((32, 24), 20, max_frames=5, clock=clock, sleep=clock.sleep)
    source.open()
    frames = list(source.frames())
    assert clock.sleeps == pytest.approx([0.05] * 4)
    assert [f.capture_time for f in frames] == pytest.approx([50 + 0.05 * k for k in range(5)])


def test_pacer_reanchors_after_a_stall_instead_of_bursting() -> None:
    clock = FakeClock(50.0)
    pacer = Pacer(clock, clock.sleep, max_lag=0.5)
    pacer.wait(0.0)
    clock.now += 0.01
    pacer.wait(0.1)
    assert clock.sleeps == pytest.approx([0.09])
    clock.now += 2.0  # the consumer stalled for 2 s
    pacer.wait(0.2)
    assert len(clock.sleeps) == 1  # no sleep: behind
    pacer.wait(0.3)  # re-anchored at the stall: the next frame is due 0.1 s later
    assert clock.sleeps[-1] == pytest.approx(0.1)


def test_close_interrupts_a_paced_wait() -> None:
    source = PatternSource((32, 24), 0.2)  # one frame per 5 s
    source.open()
    frames = source.frames()
    next(frames)
    timer = threading.Timer(0.1, source.close)
    timer.start()
    assert list(frames) == []  # the 5 s wait ended at close()
    timer.join()


def test_bad_pattern_arguments() -> None:
    with pytest.raises(SourceError) as err:
        PatternSource((1, 1))
    assert str(err.value) == "pattern size 1x1 is too small: use at least 2x2"
    with pytest.raises(SourceError) as err:
        PatternSource((8, 8), -1)
    assert str(err.value) == "pattern fps must be positive, got -1"
