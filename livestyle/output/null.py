"""``null``: a sink that discards frames (benchmarks, dry runs) but counts them."""

from __future__ import annotations

import time
from collections.abc import Callable

from livestyle.engine.frames import Frame, StreamInfo

__all__ = ["NullSink"]


class NullSink:
    """Discards every frame; ``frames_written`` and ``last_frame`` say what arrived.

    ``stamp=True`` also keeps ``(capture_time, write_time)`` of every frame in ``stamps`` (two
    floats a frame, at most ``max_stamps``): what ``livestyle bench`` measures the viewer's
    experience from (:func:`livestyle.engine.metrics.viewer_summary`).
    """

    def __init__(self, *, stamp: bool = False, clock: Callable[[], float] = time.monotonic,
                 max_stamps: int = 1_000_000) -> None:
        self.name = "null"
        self.frames_written = 0
        self.last_frame: Frame | None = None
        self.info: StreamInfo | None = None
        self.stamps: list[tuple[float, float]] = []
        self._stamp = stamp
        self._clock = clock
        self._max_stamps = max_stamps

    def open(self, info: StreamInfo) -> None:
        self.info = info

    def write(self, frame: Frame) -> None:
        self.frames_written += 1
        self.last_frame = frame
        if self._stamp and len(self.stamps) < self._max_stamps:
            self.stamps.append((frame.capture_time, self._clock()))

    def close(self) -> None:
        self.last_frame = None
