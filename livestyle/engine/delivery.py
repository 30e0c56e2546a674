"""When each output frame is shown: ``capture_time + D``, with D learned from recent chunks.

A chunked generator hands back several frames at once (4 per SDV2 chunk, 12 per Krea block), and
sometimes late. Showing them as they come makes the picture stutter; chaining each chunk to the
previous chunk's last release time (the first design) lets one late chunk set the latency of the
rest of the stream. Instead every frame is due at its own capture time plus one offset ``D``:

* a chunk's *delay* is ``ready_time - min(capture_time of its frames)``: the gather time of the
  chunk plus the wait for the generator plus the generator's time (plus, in a stream batch, the
  chunks the output lags behind the input);
* ``D`` is a high percentile (``quantile``, default p90) of the last ``window`` (48) chunk delays
  plus a small ``margin`` (half a frame period). p90 over 48 chunks ignores the rare slow chunk
  (a few per hundred on an H200: host hiccups), whose frames then go a little late, rather than
  letting every such chunk raise the latency of the next six seconds (p95 over 24 chunks did:
  H200 run 12, benchmarks/results/h200_delivery_run12.json). D moves toward that target by at most ``catchup`` frame periods per frame
  shown, both ways, so while it adapts the output runs at most ``1 + catchup`` times faster (or
  slower) than real time: no jump. A one-off stall stops counting once it leaves the percentile.
  While the first ``start_chunks`` chunks come, the margin is larger (up to
  ``start_margin_frames`` more): the first chunks say little about the spread, and a D set from
  them alone would leave the next, slightly slower chunk late;
* a frame already late goes at once, and the frames after it catch up on schedule at most
  ``1 + catchup`` times faster than real time, so motion stays smooth.

The schedule depends only on capture times and the measured delays, never on the previous
chunk's release times, so it cannot ratchet later. Pure: the clock is an argument (``now``),
so tests are exact. See docs/delivery.md for the measured effect.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from livestyle.errors import ConfigError
from livestyle.engine.metrics import percentile

__all__ = ["DeliveryScheduler"]


class DeliveryScheduler:
    """Due times for output frames from their capture times (seconds on the runner's clock).

    Args:
        fps: the nominal frame rate (output frames per second).
        window: how many recent chunk delays ``D`` is learned from.
        quantile: which percentile of them ``D`` covers (0..100).
        margin_frames: frame periods added to the percentile (sink write and thread wake-up).
        catchup: how much faster than real time frames may be shown while ``D`` falls or late
            frames catch up (0.25: gaps of at least ``period / 1.25``).
        start_margin_frames: extra margin (frame periods) with one delay seen, shrinking to 0
            over the first ``start_chunks`` chunks.
    """

    def __init__(self, fps: float, *, window: int = 48, quantile: float = 90.0,
                 margin_frames: float = 0.5, catchup: float = 0.25, start_margin_frames: float = 1.0,
                 start_chunks: int = 8) -> None:
        if fps <= 0:
            raise ConfigError(f"fps must be positive, got {fps}")
        if window < 1 or not 0.0 <= quantile <= 100.0 or margin_frames < 0 or catchup <= 0:
            raise ConfigError("delivery: window >= 1, quantile in [0, 100], margin >= 0, catchup > 0")
        self.period = 1.0 / fps
        self.quantile = quantile
        self.margin = margin_frames * self.period
        self.catchup = catchup
        self.start_margin = start_margin_frames * self.period
        self.start_chunks = max(1, start_chunks)
        self._seen = 0
        self._delays: deque[float] = deque(maxlen=window)
        self._history: deque[tuple[float, float]] = deque(maxlen=4096)  # (delay, D) per chunk, for stats
        self._offset: float | None = None
        self._last_due: float | None = None
        self.late_frames = 0

    @property
    def offset(self) -> float | None:
        """The current ``D`` in seconds (None before the first chunk)."""
        return self._offset

    def target(self) -> float:
        """The offset the recent delays ask for: their percentile plus the margin (plus the
        start margin while the window fills)."""
        filling = max(0.0, 1.0 - self._seen / self.start_chunks)
        return percentile(sorted(self._delays), self.quantile) + self.margin + self.start_margin * filling

    def schedule(self, captures: Sequence[float], now: float) -> list[float]:
        """Due times for the frames of one chunk, ready at ``now``, captured at ``captures``.

        ``captures`` are in output order. The due times are never before ``now`` and never closer
        than ``period / (1 + catchup)`` to the previous frame's; a frame whose ``capture + D`` has
        already passed is due at once (after that spacing) and counted in :attr:`late_frames`.
        """
        if not captures:
            return []
        self._delays.append(now - min(captures))
        self._seen += 1
        target = self.target()
        step = self.catchup * self.period  # the most D may move per frame shown
        offset = target if self._offset is None else self._offset
        min_gap = self.period / (1.0 + self.catchup)
        dues: list[float] = []
        prev = self._last_due
        for capture in captures:
            offset = min(target, offset + step) if target > offset else max(target, offset - step)
            due = capture + offset
            if due < now:
                self.late_frames += 1
                due = now
            if prev is not None and due < prev + min_gap:
                due = prev + min_gap
            dues.append(due)
            prev = due
        self._offset = offset
        self._last_due = prev
        self._history.append((self._delays[-1], offset))
        return dues

    def summary(self) -> dict[str, dict[str, float]]:
        """Where the glass to glass comes from, over the last chunks (ms): the chunk delays'
        p50/p90/p99/max and the offset D's p5/p50/p95/max. A p95 glass to glass well above the
        offset's p50 is either late chunks (delays above D) or D itself moving (its spread)."""
        if not self._history:
            return {}
        delays = sorted(1000.0 * d for d, _ in self._history)
        offsets = sorted(1000.0 * o for _, o in self._history)
        return {"delay_ms": {f"p{q}": round(percentile(delays, q), 1) for q in (50, 90, 99)} | {"max": round(delays[-1], 1)},
                "offset_spread_ms": {f"p{q}": round(percentile(offsets, q), 1) for q in (5, 50, 95)} | {"max": round(offsets[-1], 1)}}

    def reset(self) -> None:
        """Forget the learned delays (a new stream: another model, size or mode)."""
        self._delays.clear()
        self._history.clear()
        self._seen = 0
        self._offset = None
        self._last_due = None
