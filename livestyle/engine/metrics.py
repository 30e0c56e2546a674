"""Live stream metrics: what the viewer sees, and the per-stage timers that explain it.

Viewer-side (what counts): frames *written* by each sink per second, frames lost between the
source and each sink (input drops + that sink's drops), the gaps between consecutive writes at
each sink (judder: p95 and max), stalls (a gap longer than two frame periods) and glass-to-glass
latency p50/p95/p99 (sink write done minus the frame's capture time). Producer-side: fps in/out of
the generator, drops per stage, per-stage milliseconds.

Everything lives in fixed-size ring buffers, so a stream that runs for days uses the same memory
as one that runs for a second. All methods are thread-safe (one short lock); the clock is a
parameter so tests are exact.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["LOST_STAGES", "Metrics", "RateMeter", "Ring", "SinkMeter", "percentile"]

LOST_STAGES = ("input",)
"""Drop stages that are frames a viewer never sees (besides each sink's own ``sink:<name>``).
``warmup`` (frames that arrived before the generator was warm) and ``chunk_tail`` (the half chunk
at the end of a stream) are counted but are not losses of a running stream."""


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
        """``{"p50", "p95", "p99", "mean", "max"}`` of the kept samples, multiplied by ``scale``."""
        values = sorted(self._values)
        if not values:
            return {"p50": 0.0, "p95": 0.0, "p99": 0.0, "mean": 0.0, "max": 0.0}
        return {
            "p50": round(percentile(values, 50) * scale, 3),
            "p95": round(percentile(values, 95) * scale, 3),
            "p99": round(percentile(values, 99) * scale, 3),
            "mean": round(sum(values) / len(values) * scale, 3),
            "max": round(values[-1] * scale, 3),
        }

    def clear(self) -> None:
        self._values.clear()


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


class SinkMeter:
    """What one sink's viewer gets: writes per second, gaps between writes (judder), stalls.

    ``period`` is the nominal frame period in seconds; a gap longer than ``2 * period`` is a stall.
    Not thread-safe on its own: :class:`Metrics` calls it under its lock.
    """

    def __init__(self, period: float, capacity: int) -> None:
        self.period = period
        self.written = 0
        self.stalls = 0
        self.rate = RateMeter(window=2.0, capacity=256)
        self.gaps = Ring(capacity)
        self.last: float | None = None

    def wrote(self, now: float) -> None:
        if self.last is not None:
            gap = now - self.last
            self.gaps.add(gap)
            if gap > 2.0 * self.period:
                self.stalls += 1
        self.last = now
        self.written += 1
        self.rate.tick(now)

    def restart(self) -> None:
        """Forget the gap history (after warm-up, or when measuring starts)."""
        self.gaps.clear()
        self.stalls = 0
        self.last = None

    def summary(self, now: float, elapsed: float) -> dict[str, Any]:
        gaps = self.gaps.summary(1000.0)
        return {
            "written": self.written,
            "fps_written": round(self.rate.rate(now), 2),
            "fps_written_avg": round(self.written / elapsed, 2) if elapsed > 0 else 0.0,
            "gap_ms": {"p95": gaps["p95"], "max": gaps["max"]},
            "stalls": self.stalls,
        }


class Metrics:
    """What the runner measures while it streams.

    * ``frame_in`` / ``frame_out``: frames taken from the source / handed to the sinks.
    * ``stage(name, seconds)`` or ``with metrics.time(name)``: how long a stage took (e.g.
      ``"generate"`` per chunk, ``"sink:out.mp4"`` per write).
    * ``drop(stage)``: a frame thrown away at ``stage`` (``"input"``, ``"chunk_tail"``,
      ``"sink:<name>"``).
    * ``latency(seconds)``: glass to glass, sink time minus the frame's capture time.
    * ``written(sink)``: a sink finished writing a frame (written fps, gaps, stalls per sink).

    ``capacity`` samples are kept per ring (4096: over two minutes at 30 fps, so a one-minute
    measurement's percentiles cover the whole minute); ``fps`` is the nominal frame rate used to
    call a gap a stall.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic, capacity: int = 4096, fps: float = 30.0) -> None:
        self._clock = clock
        self._capacity = capacity
        self._lock = threading.Lock()
        self._start = clock()
        self._in = RateMeter()
        self._out = RateMeter()
        self._stages: dict[str, Ring] = {}
        self._drops: dict[str, int] = {}
        self._drop_log: deque[tuple[float, str, int]] = deque(maxlen=256)
        self._latency = Ring(capacity)
        self._period = 1.0 / fps
        self._sinks: dict[str, SinkMeter] = {}

    def frame_in(self, n: int = 1) -> None:
        now = self._clock()
        with self._lock:
            self._in.tick(now, n)

    def frame_out(self, n: int = 1) -> None:
        now = self._clock()
        with self._lock:
            self._out.tick(now, n)

    def drop(self, stage: str, n: int = 1) -> None:
        now = self._clock()
        with self._lock:
            self._drops[stage] = self._drops.get(stage, 0) + n
            self._drop_log.append((now, stage, n))

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

    def written(self, sink: str, now: float | None = None) -> None:
        """``sink`` finished writing one frame at ``now`` (default: the clock)."""
        now = self._clock() if now is None else now
        with self._lock:
            meter = self._sinks.get(sink)
            if meter is None:
                meter = self._sinks[sink] = SinkMeter(self._period, self._latency_capacity())
            meter.wrote(now)

    def restart_viewer(self) -> None:
        """Start the viewer-side figures afresh (gaps, stalls, latency), e.g. once warm-up is over."""
        with self._lock:
            self._latency.clear()
            for meter in self._sinks.values():
                meter.restart()

    def _latency_capacity(self) -> int:
        return self._capacity

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

    def drop_log(self) -> list[tuple[float, str, int]]:
        """The last 256 drops as ``(clock time, stage, frames)``, oldest first: when each loss happened."""
        with self._lock:
            return list(self._drop_log)

    def snapshot(self, sinks: list[str] | None = None) -> dict[str, Any]:
        """A JSON-able dict: counts, fps, drops, stage ms, latency ms and the viewer's figures.

        ``sinks``: the sinks whose viewers count (default: every sink that wrote). The top-level
        viewer figures are the worst over them: ``fps_written`` (lowest), ``frames_lost`` (input
        drops + the most any of them dropped), ``gap_ms`` (largest), ``stalls`` (most).
        """
        now = self._clock()
        with self._lock:
            elapsed = now - self._start
            drops = dict(self._drops)
            names = list(self._sinks) if sinks is None else sinks
            per_sink = {
                n: self._sinks[n].summary(now, elapsed) if n in self._sinks else SinkMeter(self._period, 1).summary(now, elapsed)
                for n in names
            }
            lost_in = sum(drops.get(k, 0) for k in LOST_STAGES)
            for n, summary in per_sink.items():
                summary["lost"] = lost_in + drops.get(f"sink:{n}", 0)
            viewer = list(per_sink.values())
            return {
                "elapsed_s": round(elapsed, 3),
                "frames_in": self._in.count,
                "frames_out": self._out.count,
                "fps_in": round(self._in.rate(now), 2),
                "fps_out": round(self._out.rate(now), 2),
                "fps_written": min((v["fps_written"] for v in viewer), default=0.0),
                "frames_lost": max((v["lost"] for v in viewer), default=lost_in),
                "gap_ms": {
                    "p95": max((v["gap_ms"]["p95"] for v in viewer), default=0.0),
                    "max": max((v["gap_ms"]["max"] for v in viewer), default=0.0),
                },
                "stalls": max((v["stalls"] for v in viewer), default=0),
                "drops": drops,
                "stage_ms": {k: v.summary(1000.0) for k, v in self._stages.items()},
                "latency_ms": self._latency.summary(1000.0),
                "viewer": per_sink,
            }


def viewer_summary(stamps: list[tuple[float, float]], fps: float, *, since: float | None = None) -> dict[str, Any]:
    """What a viewer saw, from ``(capture_time, write_time)`` pairs (seconds) in write order.

    ``since``: only writes at or after this time count (e.g. the end of warm-up). Returns frames
    written, the written rate (frames over the span of the writes), inter-write gaps p95/max in
    ms (judder), stalls (gaps over two frame periods) and glass to glass p50/p95/p99/max in ms.
    """
    rows = [r for r in stamps if since is None or r[1] >= since]
    if len(rows) < 2:
        return {"written": len(rows), "fps_written": 0.0, "seconds": 0.0, "gap_ms": {"p95": 0.0, "max": 0.0},
                "stalls": 0, "g2g_ms": {"p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0}}
    writes = [w for _, w in rows]
    span = writes[-1] - writes[0]
    gaps = sorted(b - a for a, b in itertools.pairwise(writes))
    g2g = sorted(w - c for c, w in rows)
    return {
        "written": len(rows),
        "fps_written": round((len(rows) - 1) / span, 3) if span > 0 else 0.0,
        "seconds": round(span, 3),
        "gap_ms": {"p95": round(1000 * percentile(gaps, 95), 2), "max": round(1000 * gaps[-1], 2)},
        "stalls": sum(1 for g in gaps if g > 2.0 / fps),
        "g2g_ms": {q: round(1000 * percentile(g2g, v), 1) for q, v in (("p50", 50), ("p95", 95), ("p99", 99))}
        | {"max": round(1000 * g2g[-1], 1)},
    }
