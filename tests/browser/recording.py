"""A generator wrapper that records what the wrapped generator was given and gave back, and the
page's probe applied to a picture in Python (to compare what a page shows with those frames)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from livestyle.engine.frames import Frame, Generator

__all__ = ["PROBE_POINTS", "Call", "RecordingGenerator", "probe_samples"]

# server/static/common.js PROBE_POINTS: 16 points along the top band, then four patch centres
PROBE_POINTS = [((i + 0.5) / 16, 0.05) for i in range(16)] + [(0.25, 0.4), (0.75, 0.4), (0.25, 0.8), (0.75, 0.8)]


@dataclass
class Call:
    """One ``process`` call (``inputs``/``outputs``: copies), or an ``apply``/``reset`` event."""

    kind: str
    inputs: list[Frame] = field(default_factory=list)
    outputs: list[Frame] = field(default_factory=list)
    command: object = None


class RecordingGenerator:
    """Delegates every call to ``inner`` and appends it to :attr:`calls` (thread-safe), so a test
    can replay the exact same sequence offline on a fresh generator."""

    def __init__(self, inner: Generator) -> None:
        self.inner = inner
        self.name = getattr(inner, "name", type(inner).__name__)
        self.calls: list[Call] = []
        self._lock = threading.Lock()

    def frames_needed(self) -> int:
        return self.inner.frames_needed()

    def process(self, frames: Sequence[Frame]) -> list[Frame]:
        inputs = [f.with_image(f.image.copy()) for f in frames]
        outputs = self.inner.process(frames)
        with self._lock:
            self.calls.append(Call("process", inputs, [f.with_image(f.image.copy()) for f in outputs]))
        return outputs

    def apply(self, command: object) -> None:
        with self._lock:
            self.calls.append(Call("apply", command=command))
        self.inner.apply(command)

    def reset(self) -> None:
        with self._lock:
            self.calls.append(Call("reset"))
        self.inner.reset()

    def stats(self) -> dict[str, Any]:
        return self.inner.stats()

    def __getattr__(self, name: str) -> Any:  # anything else the runner may look up
        return getattr(self.inner, name)

    def snapshot(self) -> list[Call]:
        with self._lock:
            return list(self.calls)


def probe_samples(image: np.ndarray) -> np.ndarray:
    """What the page's ``FrameProbe.record`` reads from a picture: drawn at 160x120 (a 2x2 average
    for 320x240), RGB at ``PROBE_POINTS``; ``[20, 3]`` float."""
    small = cv2.resize(image, (160, 120), interpolation=cv2.INTER_AREA).astype(np.float64)
    return np.stack([small[min(119, int(fy * 120)), min(159, int(fx * 160))] for fx, fy in PROBE_POINTS])
