"""How a run ended: :class:`RunReport`, what :meth:`livestyle.engine.runner.Runner.run` returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["RunReport"]


@dataclass(frozen=True)
class RunReport:
    """How a run ended.

    ``stop_reason`` is one of ``"max_frames"``, ``"source_ended"``, ``"stopped"`` (``stop()`` or a
    ``Stop`` command), ``"signal"`` (Ctrl-C, SIGTERM or SIGHUP; ``signal`` says which),
    ``"sinks_failed"`` or ``"error"``.
    """

    frames_in: int
    frames_out: int
    drops: dict[str, int]
    duration_s: float
    stop_reason: str
    sink_errors: dict[str, str]
    latency_ms: dict[str, float]
    stats: dict[str, Any] = field(default_factory=dict)
    signal: int | None = None

    @classmethod
    def from_stats(cls, stats: dict[str, Any], *, stop_reason: str, sink_errors: dict[str, str],
                   signal: int | None) -> RunReport:
        """The report for a run whose last ``Runner.stats()`` snapshot is ``stats``."""
        return cls(
            frames_in=stats["frames_in"],
            frames_out=stats["frames_out"],
            drops=stats["drops"],
            duration_s=stats["elapsed_s"],
            stop_reason=stop_reason,
            sink_errors=sink_errors,
            latency_ms=stats["latency_ms"],
            stats=stats,
            signal=signal,
        )
