"""Frames, chunks and the source/sink/generator contracts every part of livestyle shares.

A :class:`Frame` is one RGB picture, ``uint8`` ``[H, W, 3]``, with its presentation timestamp
(``pts`` in units of ``time_base``) and the monotonic clock reading (seconds) at which it was
captured, so that glass-to-glass latency can be measured at the sink.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = [
    "AudioCallback",
    "AudioChunk",
    "AudioInfo",
    "AudioSink",
    "AudioSource",
    "Frame",
    "Generator",
    "Sink",
    "Source",
    "StreamInfo",
]


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


@dataclass(frozen=True, slots=True)
class AudioInfo:
    """What a source's audio is: sample rate (Hz) and channel count (1 mono, 2 stereo, ...)."""

    sample_rate: int
    channels: int


@dataclass(frozen=True, slots=True)
class AudioChunk:
    """A run of audio samples on the same timeline as the video frames' pts.

    Attributes:
        samples: ``float32`` array ``[channels, n]`` (planar), values in ``[-1, 1]``.
        sample_rate: samples per second.
        pts: presentation time of the first sample in ``time_base`` units, on the same clock as
            the source's :attr:`Frame.pts` (so a sink muxing both by pts keeps them in sync).
        time_base: seconds per pts tick.
        capture_time: ``time.monotonic()`` when the source produced the chunk.
    """

    samples: np.ndarray
    sample_rate: int
    pts: int
    time_base: Fraction
    capture_time: float

    @property
    def channels(self) -> int:
        return int(self.samples.shape[0])

    @property
    def frames(self) -> int:
        """Samples per channel."""
        return int(self.samples.shape[1])

    @property
    def seconds(self) -> float:
        """The pts in seconds."""
        return float(self.pts * self.time_base)

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


AudioCallback = Callable[[AudioChunk], None]
"""Where a source hands its audio: may block while the runner's audio queue is full (offline)."""


@runtime_checkable
class AudioSource(Protocol):
    """Optional source capability: audio next to the frames.

    After ``open()``, ``audio_info()`` says whether there is audio (None: none). The runner calls
    ``set_audio_callback(fn)`` before ``frames()``; the source then calls ``fn(chunk)`` with
    every :class:`AudioChunk`, in pts order, from any thread, until it is closed.
    """

    def audio_info(self) -> AudioInfo | None: ...

    def set_audio_callback(self, fn: AudioCallback | None) -> None: ...


@runtime_checkable
class AudioSink(Protocol):
    """Optional sink capability: an audio stream next to the video.

    The runner calls ``open_audio(info)`` *before* ``open()`` (containers need every stream
    before their header), then ``write_audio(chunk)`` from its audio thread, interleaved in time
    with ``write`` from the sink thread, and finally ``close()`` once both are done.
    ``open_audio`` returns False when the sink will not take audio after all.
    """

    def open_audio(self, info: AudioInfo) -> bool: ...

    def write_audio(self, chunk: AudioChunk) -> None: ...


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
