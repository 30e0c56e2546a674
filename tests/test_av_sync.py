"""A minute of live-like input through the real Runner into a real recording: the audio device's
clock runs off the video clock, and both streams lose input on the way, yet every click stays on
its white frame from the first second to the last.

The source is a capture as a live one is: video and audio stamped by one host clock (pts), the
audio device delivering 960-sample chunks labelled 48 kHz while its crystal runs ``skew`` fast or
slow, so a chunk holds a little more (or less) than the 20 ms its pts advance. Unpaced
(``backpressure``, ``--no-pace``), so the minute runs in a few seconds. Every 5 s the picture
flashes white and the audio clicks, at the same instant of the host clock. Without placement by
pts, a 0.1% skew alone drifts the click 60 ms off its frame by the end, and a lost run of audio
moves every later click by its length.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from media_helpers import read_audio_video, tone_with_clicks

from livestyle.output.audio import JITTER_S
from livestyle.output.media import MediaSink
from livestyle.engine.frames import (
    AudioCallback,
    AudioChunk,
    AudioInfo,
    Frame,
    StreamInfo,
)
from livestyle.engine.passthrough import PassthroughGenerator
from livestyle.engine.runner import Runner

av = pytest.importorskip("av")

FPS = 30
RATE = 48000
CHUNK = 960
SECONDS = 60.0
SIZE = (64, 48)
TB = Fraction(1, 90000)
CLICKS = [5.0 * k + 0.5 for k in range(12)]  # host-clock seconds: 0.5, 5.5, ..., 55.5
VIDEO_DROPS = set(range(400, 415)) | set(range(1203, 1206)) | {i for i in range(0, 1800, 97)}
AUDIO_DROPS = set(range(1000, 1010)) | {2222, 2223} | set(range(2700, 2702))


class SkewedLiveSource:
    """Video at 30 fps and audio from a device whose clock runs ``1 + skew`` times the host's,
    both stamped by the host clock; frames in ``VIDEO_DROPS`` and chunks in ``AUDIO_DROPS`` lost."""

    name = "skewed"

    def __init__(self, skew: float) -> None:
        self.device_rate = RATE * (1.0 + skew)  # samples the device really makes per host second
        self._emit: AudioCallback | None = None

    def open(self) -> StreamInfo:
        return StreamInfo(*SIZE, FPS, TB)

    def audio_info(self) -> AudioInfo:
        return AudioInfo(RATE, 1)

    def set_audio_callback(self, fn: AudioCallback | None) -> None:
        self._emit = fn

    def _chunk(self, k: int) -> AudioChunk:
        n0 = k * CHUNK  # device sample index; host time of sample n is n / device_rate
        wave = tone_with_clicks((n0 + np.arange(CHUNK)) / self.device_rate, CLICKS)
        return AudioChunk(wave.astype(np.float32)[None], RATE, round(n0 / self.device_rate / TB), TB, time.monotonic())

    def frames(self) -> Iterator[Frame]:
        white = {round(c * FPS) for c in CLICKS}
        k = 0
        for i in range(round(SECONDS * FPS)):
            while k * CHUNK / self.device_rate <= i / FPS:  # audio captured up to this frame goes first
                if k not in AUDIO_DROPS and self._emit is not None:
                    self._emit(self._chunk(k))
                k += 1
            if i in VIDEO_DROPS:
                continue
            image = np.full((SIZE[1], SIZE[0], 3), 255 if i in white else 60, np.uint8)
            yield Frame(image, round(i / FPS / TB), TB, time.monotonic(), i)

    def close(self) -> None:
        pass


def _read(path: Path) -> tuple[list[float], list[float], np.ndarray, float, int]:
    """The recording's video frame times and brightness, its audio (mono float), audio start and rate."""
    got = read_audio_video(str(path))
    assert got["audio_start"] is not None
    return got["times"], got["means"], got["audio"], got["audio_start"], got["rate"]


@pytest.mark.slow
@pytest.mark.parametrize("skew", [1e-3, -1e-3])
def test_a_minute_with_a_skewed_audio_clock_and_input_drops_stays_in_sync(tmp_path: Path, skew: float) -> None:
    out = tmp_path / "out.mkv"
    t0 = time.monotonic()
    report = Runner(SkewedLiveSource(skew), PassthroughGenerator(), [MediaSink(str(out), "matroska")],
                    size=SIZE, fps=FPS, backpressure=True).run()
    assert time.monotonic() - t0 < 30
    assert report.frames_out == 1800 - len(VIDEO_DROPS) and report.drops.get("audio", 0) == 0
    times, means, audio, start, rate = _read(out)
    assert len(times) == report.frames_out
    whites = [t for t, m in zip(times, means) if m > 200]
    assert len(whites) == len(CLICKS)
    origin = min(set(range(1800)) - VIDEO_DROPS) / FPS  # the recording starts at the first frame kept
    assert whites == pytest.approx([round(c * FPS) / FPS - origin for c in CLICKS], abs=1e-3)  # pts kept
    loud = np.flatnonzero(np.abs(audio) > 0.6)
    onsets = [start + loud[0] / rate]
    for i in loud[1:]:
        if start + i / rate > onsets[-1] + 1.0:
            onsets.append(start + i / rate)
    assert len(onsets) == len(CLICKS)
    errors = [onset - white for onset, white in zip(onsets, whites)]
    # each click within the sink's jitter allowance (plus a few ms of frame rounding) of its frame,
    # over the whole minute: the drift is corrected, not carried, and losses do not shift later audio
    assert max(abs(e) for e in errors) <= JITTER_S + 0.005, errors
    # the audio track runs the length of the video: gaps were filled, overlaps cut
    assert start + len(audio) / rate == pytest.approx(times[-1] + 1 / FPS, abs=0.05)
