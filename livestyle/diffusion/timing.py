"""Per-stage timing of the generator without host syncs in the hot loop.

On CUDA each stage is bracketed by a pair of ``torch.cuda.Event(enable_timing=True)``; the
elapsed times are read only when :meth:`StageTimer.summary` is called (by ``stats()`` or a
benchmark), and only for events that have already completed (``Event.query()``), so timing never
stalls the stream. On CPU the work is synchronous and ``time.perf_counter`` is exact.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from livestyle.engine.metrics import Ring

__all__ = ["StageTimer"]


class StageTimer:
    """Milliseconds per named stage over the last ``capacity`` samples of each."""

    def __init__(self, device: torch.device | str, capacity: int = 512) -> None:
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.capacity = capacity
        self._rings: dict[str, Ring] = {}
        self._pending: deque[tuple[str, Any, Any]] = deque(maxlen=4 * capacity)

    def _ring(self, name: str) -> Ring:
        ring = self._rings.get(name)
        if ring is None:
            ring = self._rings[name] = Ring(self.capacity)
        return ring

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the enclosed work as stage ``name``."""
        if self.cuda:
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            try:
                yield
            finally:
                end.record()
                self._pending.append((name, start, end))
        else:
            t0 = time.perf_counter()
            try:
                yield
            finally:
                self._ring(name).add((time.perf_counter() - t0) * 1000.0)

    def _drain(self) -> None:
        while self._pending:
            name, start, end = self._pending[0]
            if not end.query():
                break
            self._pending.popleft()
            self._ring(name).add(float(start.elapsed_time(end)))

    def summary(self) -> dict[str, dict[str, float]]:
        """``{stage: {"p50", "p95", "mean", "max", "count"}}`` in milliseconds."""
        self._drain()
        out: dict[str, dict[str, float]] = {}
        for name, ring in self._rings.items():
            out[name] = {**ring.summary(), "count": float(ring.total)}
        return out
