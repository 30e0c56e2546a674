"""Frames, chunks and the source/sink/generator contracts every part of livestyle shares.

A :class:`Frame` is one RGB picture, ``uint8`` ``[H, W, 3]``, with its presentation timestamp
(``pts`` in units of ``time_base``) and the monotonic clock reading (seconds) at which it was
captured, so that glass-to-glass latency can be measured at the sink.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["Frame", "StreamInfo", "Source", "Sink", "Generator"]


@dataclass(frozen=True, slots=True)
class Frame:
    """One video frame.

    Attributes:
        image: ``uint8`` array ``[H, W, 3]``, RGB, C-contiguous.
        pts: presentation timestamp in ``time_base`` units.
        time_base: seconds per pts tick.
        capture_time: ``time.monotonic()`` when the source produced the frame.
        index: running number the source gave the frame (0, 1, 2, ...).
        extras: small per-frame side data (e.g. a mask); never large buffers shared by reference.
    """

    image: np.ndarray
    pts: int
    time_base: Fraction
    capture_time: float
    index: int = 0
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def seconds(self) -> float:
        """The pts in seconds."""
        return float(self.pts * self.time_base)

    def with_image(self, image: np.ndarray) -> Frame:
        """The same timing information around a different picture."""
        return replace(self, image=image)


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """What a source promises: picture size and nominal frame rate."""

    width: int
    height: int
    fps: float
    time_base: Fraction = Fraction(1, 90000)


@runtime_checkable
class Source(Protocol):
    """A producer of frames. ``frames()`` blocks until the next frame and stops at the end."""

    name: str

    def open(self) -> StreamInfo: ...

    def frames(self) -> Iterator[Frame]: ...

    def close(self) -> None: ...


@runtime_checkable
class Sink(Protocol):
    """A consumer of frames. ``write`` may block; the runner gives each sink its own thread."""

    name: str

    def open(self, info: StreamInfo) -> None: ...

    def write(self, frame: Frame) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class Generator(Protocol):
    """The runner's generator stage: chunks of input frames in, styled frames out.

    ``frames_needed()`` says how many input frames the next chunk takes (it may change after the
    first chunk, e.g. 5 then 4). ``process`` may return fewer frames than it got (pipeline
    warm-up, stream-batch delay); each output frame keeps the pts and capture time of the input
    frame it came from. ``apply`` receives commands between chunks, never during ``process``.
    """

    name: str

    def frames_needed(self) -> int: ...

    def process(self, frames: Sequence[Frame]) -> list[Frame]: ...

    def apply(self, command: object) -> None: ...

    def reset(self) -> None: ...

    def stats(self) -> dict[str, Any]: ...
