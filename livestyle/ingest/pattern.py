"""``pattern``: an animated synthetic test pattern with exact timestamps.

Scrolling colour bars, a bouncing box and a frame counter: every frame differs from the last, so
motion-dependent logic (temporal consistency, latency measurement by frame number) can be
exercised without a camera. Frame ``i`` depends only on ``i`` and the size, so runs are
reproducible. ``pts = i`` in time base ``1/fps``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from fractions import Fraction

import numpy as np

from livestyle.errors import SourceError
from livestyle.ingest.pacing import Pacer
from livestyle.engine.frames import Frame, StreamInfo

__all__ = ["PatternSource", "render_pattern"]

DEFAULT_SIZE = (1280, 720)
DEFAULT_FPS = 30.0

# 75% colour bars (SMPTE order), RGB.
_BARS = np.array(
    [
        [191, 191, 191],
        [191, 191, 0],
        [0, 191, 191],
        [0, 191, 0],
        [191, 0, 191],
        [191, 0, 0],
        [0, 0, 191],
        [16, 16, 16],
    ],
    dtype=np.uint8,
)

# 3x5 bitmap digits, rows top to bottom.
_DIGITS = [
    "111101101101111",
    "010110010010111",
    "111001111100111",
    "111001111001111",
    "101101111001001",
    "111100111001111",
    "111100111101111",
    "111001001001001",
    "111101111101111",
    "111101111001111",
]
_COUNTER_DIGITS = 6


class _Painter:
    """Precomputed pieces of the pattern for one size; ``render`` does one copy plus pastes."""

    def __init__(self, width: int, height: int, fps: float) -> None:
        self.width, self.height = width, height
        bar_index = (np.arange(width) * len(_BARS)) // width
        bars = np.ascontiguousarray(np.broadcast_to(_BARS[bar_index], (height, width, 3)))
        # Two periods side by side: a scroll offset is one slice of this band.
        self.band = np.concatenate([bars, bars], axis=1)
        self.scroll_step = max(1, round(width / (4 * fps)))  # one period every 4 s
        self.box = max(2, min(width, height) // 6)
        self.box_step = max(1, round(height / (2 * fps)))
        self.scale = max(1, height // 90)
        s = self.scale
        self.glyphs = [
            np.kron(
                np.array([int(c) for c in bits], dtype=np.uint8).reshape(5, 3) * 255,
                np.ones((s, s), dtype=np.uint8),
            )[:, :, None].repeat(3, axis=2)
            for bits in _DIGITS
        ]
        self.plate_h = 7 * s
        self.plate_w = _COUNTER_DIGITS * 4 * s + s

    def render(self, index: int) -> np.ndarray:
        w, h, b = self.width, self.height, self.box
        offset = (index * self.scroll_step) % w
        image = self.band[:, offset : offset + w].copy()
        x = _bounce(index * self.box_step, w - b)
        y = _bounce(index * self.box_step * 3 // 4, h - b)
        image[y : y + b, x : x + b] = 255
        inner = b // 4
        image[y + inner : y + b - inner, x + inner : x + b - inner] = 0
        self._counter(image, index)
        return image

    def _counter(self, image: np.ndarray, index: int) -> None:
        s = self.scale
        if self.plate_h > self.height or self.plate_w > self.width:
            return
        image[: self.plate_h, : self.plate_w] = 0
        text = str(index % 10**_COUNTER_DIGITS).zfill(_COUNTER_DIGITS)
        for k, char in enumerate(text):
            x = s + 4 * s * k
            image[s : 6 * s, x : x + 3 * s] = self.glyphs[ord(char) - 48]


def _bounce(position: int, span: int) -> int:
    """Triangle wave over ``[0, span]``."""
    if span <= 0:
        return 0
    phase = position % (2 * span)
    return phase if phase <= span else 2 * span - phase


def render_pattern(index: int, width: int, height: int, fps: float = DEFAULT_FPS) -> np.ndarray:
    """Frame ``index`` of the pattern: ``uint8`` RGB ``[height, width, 3]``.

    A convenience that rebuilds the precomputed pieces on every call; sources keep them."""
    return _Painter(width, height, fps).render(index)


class PatternSource:
    """The animated test pattern as a :class:`~livestyle.engine.frames.Source`.

    Args:
        size: ``(width, height)``; default 1280x720.
        fps: frames per second; default 30.
        pace: release frames in real time (True) or as fast as they are taken (False).
        max_frames: stop after this many frames (None: never).
        clock, sleep: injectable time functions (tests); sleep defaults to a wait that ``close``
            interrupts.
    """

    def __init__(
        self,
        size: tuple[int, int] | None = None,
        fps: float | None = None,
        *,
        pace: bool = True,
        max_frames: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        width, height = size or DEFAULT_SIZE
        rate = DEFAULT_FPS if fps is None else fps
        if width < 2 or height < 2:
            raise SourceError(f"pattern size {width}x{height} is too small: use at least 2x2")
        if not rate > 0:
            raise SourceError(f"pattern fps must be positive, got {rate}")
        self.name = "pattern"
        self._width, self._height, self._fps = int(width), int(height), float(rate)
        self._time_base = 1 / Fraction(self._fps).limit_denominator(1001)
        self._pace = pace
        self._max_frames = max_frames
        self._clock = clock
        self._stop = threading.Event()
        self._sleep = sleep if sleep is not None else self._stop.wait
        self._painter: _Painter | None = None

    def open(self) -> StreamInfo:
        self._painter = _Painter(self._width, self._height, self._fps)
        self._stop.clear()
        return StreamInfo(self._width, self._height, self._fps, self._time_base)

    def frames(self) -> Iterator[Frame]:
        if self._painter is None:
            raise SourceError("pattern: call open() before frames()")
        pacer = Pacer(self._clock, self._sleep)
        index = 0
        while not self._stop.is_set() and (self._max_frames is None or index < self._max_frames):
            image = self._painter.render(index)
            if self._pace:
                pacer.wait(float(index * self._time_base))
                if self._stop.is_set():
                    return
            yield Frame(image, index, self._time_base, self._clock(), index)
            index += 1

    def close(self) -> None:
        """Stop ``frames()`` (safe from any thread; interrupts a pacing wait)."""
        self._stop.set()
