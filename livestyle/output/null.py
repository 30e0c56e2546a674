"""``null``: a sink that discards frames (benchmarks, dry runs) but counts them."""

from __future__ import annotations

from livestyle.pipeline.frames import Frame, StreamInfo

__all__ = ["NullSink"]


class NullSink:
    """Discards every frame; ``frames_written`` and ``last_frame`` say what arrived."""

    def __init__(self) -> None:
        self.name = "null"
        self.frames_written = 0
        self.last_frame: Frame | None = None
        self.info: StreamInfo | None = None

    def open(self, info: StreamInfo) -> None:
        self.info = info

    def write(self, frame: Frame) -> None:
        self.frames_written += 1
        self.last_frame = frame

    def close(self) -> None:
        self.last_frame = None
