"""Source-side audio: decoded ``av.AudioFrame``s to :class:`AudioChunk`s on the video's timeline.

A source's video pts go through a :class:`~livestyle.ingest.timeline.Timeline` that makes them
start at 0 and only grow (files loop, live streams jump). Audio must land on that same output
timeline, or a sink muxing by pts would drift apart the moment a file loops.
:class:`AudioAligner` does it by following the video: each mapped video frame tells it the current
offset (output seconds minus source seconds); audio is shifted by the offset of its segment.
Audio that comes before the first video frame of a segment (a file's start, after a loop), or
that lies further than ``max_gap`` seconds from the video (a live stream's timestamps jumped and
the video has not shown the new offset yet), is held until the next video frame says where it
belongs.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np

from livestyle.engine.frames import AudioCallback, AudioChunk

__all__ = ["AudioAligner", "audio_samples"]


def audio_samples(frame: Any, resampler: Any) -> np.ndarray:
    """A decoded ``av.AudioFrame`` (any sample format) as ``float32 [channels, n]`` in [-1, 1].

    ``resampler`` is an ``av.AudioResampler(format="fltp")`` owned by the caller (it keeps the
    rate and layout, so it adds no delay).
    """
    if frame.format.name == "fltp":
        return np.ascontiguousarray(frame.to_ndarray(), dtype=np.float32)
    out = [f.to_ndarray() for f in resampler.resample(frame)]
    if not out:
        return np.zeros((frame.layout.nb_channels, 0), np.float32)
    return np.ascontiguousarray(np.concatenate(out, axis=1), dtype=np.float32)


class AudioAligner:
    """Shifts audio onto the output timeline of the video it came with.

    Args:
        time_base: the video's (and so the chunks') time base.
        emit: receives each placed chunk, in order.
        clock: ``time.monotonic``-like; stamps ``capture_time``.
        max_gap: seconds audio may lie from the last video frame before it waits for a new offset.
        max_held: chunks held at most while waiting (the oldest go first; counted in ``dropped``).
    """

    def __init__(
        self,
        time_base: Fraction,
        emit: AudioCallback,
        clock: Callable[[], float],
        *,
        max_gap: float = 5.0,
        max_held: int = 500,
    ) -> None:
        self.time_base = time_base
        self._emit = emit
        self._clock = clock
        self._max_gap = max_gap
        self._offset: float | None = None
        self._video_at: float | None = None
        self._next_src: float | None = None
        self._held: deque[tuple[float, np.ndarray, int]] = deque(maxlen=max_held)
        self.dropped = 0

    def video(self, src_seconds: float | None, out_seconds: float) -> None:
        """A video frame with source time ``src_seconds`` left at output time ``out_seconds``."""
        if src_seconds is not None:
            self._offset = out_seconds - src_seconds
        self._video_at = out_seconds
        held, self._held = self._held, deque(maxlen=self._held.maxlen)
        for src, samples, rate in held:
            if not self._place(src, samples, rate):
                self.dropped += 1  # still nowhere near the video: stale audio of an old segment

    def segment(self) -> None:
        """The source starts over (a file loops): wait for the new segment's first frame."""
        self._offset = None
        self._next_src = None

    def audio(self, src_seconds: float | None, samples: np.ndarray, rate: int) -> None:
        """Decoded audio at source time ``src_seconds`` (None: right after the previous chunk)."""
        if samples.shape[1] == 0:
            return
        if src_seconds is None:
            src_seconds = self._next_src if self._next_src is not None else 0.0
        self._next_src = src_seconds + samples.shape[1] / rate
        if self._offset is None or not self._place(src_seconds, samples, rate):
            if len(self._held) == self._held.maxlen:
                self.dropped += 1
            self._held.append((src_seconds, samples, rate))

    def _place(self, src_seconds: float, samples: np.ndarray, rate: int) -> bool:
        if self._offset is None:
            return False
        out = src_seconds + self._offset
        if self._video_at is not None and abs(out - self._video_at) > self._max_gap:
            return False
        pts = round(out / self.time_base)
        self._emit(AudioChunk(samples, rate, pts, self.time_base, self._clock()))
        return True
