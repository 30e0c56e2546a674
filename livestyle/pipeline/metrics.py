"""Live stream metrics: per-stage timers, fps in and out, drops per stage, glass-to-glass latency.

Everything lives in fixed-size ring buffers, so a stream that runs for days uses the same memory
as one that runs for a second. All methods are thread-safe (one short lock); the clock is a
parameter so tests are exact.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["Ring", "RateMeter", "Metrics", "percentile"]


def percentile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolated percentile ``q`` in ``[0, 100]`` of an ascending list (0.0 if empty)."""
    if not sorted_values:
        return 0.0
    if len(sorted_values) == 1:
        return float(sorted_values[0])
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    frac = pos - lo
    return float(sorted_values[lo] * (1.0 - frac) + sorted_values[hi] * frac)


class Ring:
    """The last ``capacity`` samples of one quantity, with summary statistics."""

    def __init__(self, capacity: int = 512) -> None:
        self._values: deque[float] = deque(maxlen=capacity)
        self.total = 0  # samples ever added

    def add(self, value: float) -> None:
        self._values.append(value)
        self.total += 1

    def __len__(self) -> int:
        return len(self._values)

    def summary(self, scale: float = 1.0) -> dict[str, float]:
        """``{"p50", "p95", "mean", "max"}`` of the kept samples, multiplied by ``scale``."""
        values = sorted(self._values)
        if not values:
            return {"p50": 0.0, "p95": 0.0, "mean": 0.0, "max": 0.0}
        return {
            "p50": round(percentile(values, 50) * scale, 3),
            "p95": round(percentile(values, 95) * scale, 3),
            "mean": round(sum(values) / len(values) * scale, 3),
            "max": round(values[-1] * scale, 3),
        }


class RateMeter:
    """Events per second over the last ``window`` seconds (at most ``capacity`` timestamps kept)."""

    def __init__(self, window: float = 2.0, capacity: int = 1024) -> None:
        self.window = window
        self._times: deque[float] = deque(maxlen=capacity)
        self.count = 0

    def tick(self, now: float, n: int = 1) -> None:
        for _ in range(n):
            self._times.append(now)
        self.count += n

    def rate(self, now: float) -> float:
        """Events per second: events in the window divided by the span they cover."""
        times = [t for t in self._times if now - t <= self.window]
        if len(times) < 2:
            return 0.0
        span = max(now - times[0], times[-1] - times[0])
        return (len(times) - 1) / span if span > 0 else 0.0


class Metrics:
    """What the runner measures while it streams.

    * ``frame_in`` / ``frame_out``: frames taken from the source / handed to the sinks.
    * ``stage(name, seconds)`` or ``with metrics.time(name)``: how long a stage took (e.g.
      ``"generate"`` per chunk, ``"sink:out.mp4"`` per write).
    * ``drop(stage)``: a frame thrown away at ``stage`` (``"input"``, ``"chunk_tail"``,
      ``"sink:<name>"``).
    * ``latency(seconds)``: glass to glass, sink time minus the frame's capture time.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic, capacity: int = 512) -> None:
        self._clock = clock
        self._capacity = capacity
        self._lock = threading.Lock()
        self._start = clock()
        self._in = RateMeter()
        self._out = RateMeter()
        self._stages: dict[str, Ring] = {}
        self._drops: dict[str, int] = {}
        self._latency = Ring(capacity)

    def frame_in(self, n: int = 1) -> None:
        now = self._clock()
        with self._lock:
            self._in.tick(now, n)

    def frame_out(self, n: int = 1) -> None:
        now = self._clock()
        with self._lock:
            self._out.tick(now, n)

    def drop(self, stage: str, n: int = 1) -> None:
        with self._lock:
            self._drops[stage] = self._drops.get(stage, 0) + n

    def stage(self, name: str, seconds: float) -> None:
        with self._lock:
            ring = self._stages.get(name)
            if ring is None:
                ring = self._stages[name] = Ring(self._capacity)
            ring.add(seconds)

    @contextmanager
    def time(self, name: str) -> Iterator[None]:
        start = self._clock()
        try:
            yield
        finally:
            self.stage(name, self._clock() - start)

    def latency(self, seconds: float) -> None:
        with self._lock:
            self._latency.add(seconds)

    @property
    def frames_in(self) -> int:
        with self._lock:
            return self._in.count

    @property
    def frames_out(self) -> int:
        with self._lock:
            return self._out.count

    def drops(self) -> dict[str, int]:
        with self._lock:
            return dict(self._drops)

    def snapshot(self) -> dict[str, Any]:
        """A JSON-able dict: counts, fps, drops, stage milliseconds and latency milliseconds."""
        now = self._clock()
        with self._lock:
            return {
                "elapsed_s": round(now - self._start, 3),
                "frames_in": self._in.count,
                "frames_out": self._out.count,
                "fps_in": round(self._in.rate(now), 2),
                "fps_out": round(self._out.rate(now), 2),
                "drops": dict(self._drops),
                "stage_ms": {k: v.summary(1000.0) for k, v in self._stages.items()},
                "latency_ms": self._latency.summary(1000.0),
            }
