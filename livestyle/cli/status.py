"""The live status line of ``run``, ``serve`` and ``demo``: :func:`format_status` and :class:`StatusLine`.

One line from :meth:`~livestyle.engine.runner.Runner.stats` (plus the controls' and the model's
part): fps in and written, frames lost, judder, glass-to-glass latency, stage times, bypass,
the preset or prompt, failed sinks, the warm-up. Redrawn in place on a terminal (cut to its width),
logged every ``runner.log_interval`` seconds otherwise.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import IO, Any

__all__ = ["LOG_INTERVAL_S", "StatusLine", "format_status"]


LOG_INTERVAL_S = 10.0
"""Seconds between status lines when stderr is not a terminal (a log file, a service journal)."""

def _brief(text: str, limit: int = 24) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _unstyled(stats: dict[str, Any]) -> bool:
    """A stream without a model (passthrough): ``stats["model"]["styles"]`` is False."""
    return (stats.get("model") or {}).get("styles") is False


def _compact_status(stats: dict[str, Any], width: int) -> str:
    """The status line for a narrow terminal: the most important fields that fit in ``width``.

    Priority: warm-up/bypass/failed sinks, frames the viewer gets (``fps_written`` when the runner
    reports it, else fps out), frames lost (``frames_lost``, else input drops), glass-to-glass p95
    (``g2g_p95_ms``, else the latency p95), fps in, then the preset or prompt.
    """
    lat = stats.get("latency_ms", {})
    lost = stats.get("frames_lost", stats.get("drops", {}).get("input", 0))
    p95 = stats.get("g2g_p95_ms", lat.get("p95", 0.0)) or 0.0
    parts: list[str] = []
    if stats.get("warming"):
        parts.append(_warming_text(stats, short=True))
    if stats.get("bypass"):
        parts.append("BYPASS")
    failed = [name for name, s in stats.get("sinks", {}).items() if s.get("state") == "failed"]
    if failed:
        parts.append("failed: " + ", ".join(failed))
    parts += [f"out {stats.get('fps_written', stats.get('fps_out', 0.0)):.1f} fps", f"lost {lost}",
              f"p95 {p95:.0f} ms", f"in {stats.get('fps_in', 0.0):.1f} fps"]
    params = (stats.get("controls") or {}).get("params") or {}
    if _unstyled(stats):
        parts.append("passthrough")
    elif params.get("preset"):
        parts.append(f"preset {params['preset']}")
    elif params.get("prompt"):
        parts.append(f"{_brief(params['prompt'], 16)!r}")
    line = ""
    for part in parts:
        candidate = f"{line} | {part}" if line else part
        if len(candidate) > width:
            break
        line = candidate
    return line or parts[0][:width]


def format_status(stats: dict[str, Any], width: int | None = None) -> str:
    """One status line from :meth:`Runner.stats`: fps in/out, drops, per-stage ms, latency, and
    from ``stats["controls"]`` (when present) the preset or prompt and the OBS bridge state.

    ``width``: the terminal's columns; a line that would not fit is replaced by a shorter form
    (:func:`_compact_status`), so it never wraps.
    """
    full = _full_status(stats)
    if width is None or len(full) <= width:
        return full
    return _compact_status(stats, width)


def _full_status(stats: dict[str, Any]) -> str:
    drops = stats.get("drops", {})
    d_in = drops.get("input", 0)
    d_out = sum(v for k, v in drops.items() if k.startswith("sink:"))
    stages = stats.get("stage_ms", {})
    gen = stages.get("generate", {}).get("p50")
    sink_ms = max(
        (v.get("p50", 0.0) for k, v in stages.items() if k.startswith("sink:")), default=None
    )
    lat = stats.get("latency_ms", {})
    gap = stats.get("gap_ms", {})
    written = stats.get("fps_written", stats.get("fps_out", 0.0))
    parts = [
        f"in {stats.get('fps_in', 0.0):5.1f} fps",
        f"written {written:5.1f} fps",
        f"frames {stats.get('frames_out', 0)}",
        f"lost {stats.get('frames_lost', d_in + d_out)}",
        f"judder p95 {gap.get('p95', 0.0):.0f} max {gap.get('max', 0.0):.0f} ms",
        f"g2g p50 {lat.get('p50', 0.0):.0f} p95 {lat.get('p95', 0.0):.0f} ms",
        f"gen {gen:.1f} ms" if gen is not None else "gen -",
        f"sink {sink_ms:.1f} ms" if sink_ms is not None else "sink -",
    ]
    governor = stats.get("governor") or {}
    if governor.get("index"):
        parts.append(f"governor: {governor.get('level')}")
    if stats.get("bypass"):
        parts.append("BYPASS")
    controls = stats.get("controls") or {}
    params = controls.get("params") or {}
    if _unstyled(stats):  # no prompt or preset of a model that is not there (it showed the default prompt)
        parts.append("passthrough: no styling")
    elif params.get("preset"):
        parts.append(f"preset {params['preset']}")
    elif params.get("prompt"):
        parts.append(f"prompt {_brief(params['prompt'])!r}")
    obs = controls.get("obs")
    if obs:
        parts.append(f"obs {obs.get('state', '?')}")
    failed = [name for name, s in stats.get("sinks", {}).items() if s.get("state") == "failed"]
    if failed:
        parts.append("failed: " + ", ".join(failed))
    if stats.get("warming"):
        parts.append(_warming_text(stats))
    return " | ".join(parts)


def _warming_text(stats: dict[str, Any], *, short: bool = False) -> str:
    """``warming up 3 s of about 8 s``: the elapsed warm-up against what it took last time on
    this machine (``stats["model"]["warmup_estimate_s"]``, see :mod:`livestyle.planning.startup_history`)."""
    elapsed = stats.get("elapsed_s")
    estimate = (stats.get("model") or {}).get("warmup_estimate_s")
    done = f" {elapsed:.0f} s" if isinstance(elapsed, (int, float)) else ""
    if estimate is not None:
        return f"warming up{done} of about {estimate:.0f} s"
    return f"warming up{done}" if short else f"warming up the model{done} (first frames follow)"


class StatusLine:
    """Writes status lines to a stream: redrawn in place on a terminal (cut to its width, so it
    never wraps), otherwise one line at most every ``log_interval`` seconds plus the last one."""

    def __init__(self, out: IO[str] | None = None, *, log_interval: float = LOG_INTERVAL_S,
                 clock: Callable[[], float] | None = None) -> None:
        import time

        self._out = out if out is not None else sys.stderr
        self._tty = bool(getattr(self._out, "isatty", lambda: False)())
        self._drawn = False
        self._interval = log_interval
        self._clock = clock or time.monotonic
        self._last_write: float | None = None
        self._pending: dict[str, Any] | None = None

    def _width(self) -> int:
        import shutil

        return max(20, shutil.get_terminal_size((100, 24)).columns - 1)

    def __call__(self, stats: dict[str, Any]) -> None:
        if self._tty:
            self._out.write("\r" + format_status(stats, self._width()) + "\x1b[K")
            self._drawn = True
            self._out.flush()
            return
        now = self._clock()
        if self._last_write is not None and now - self._last_write < self._interval:
            self._pending = stats
            return
        self._write(stats, now)

    def _write(self, stats: dict[str, Any], now: float) -> None:
        self._out.write(format_status(stats) + "\n")
        self._out.flush()
        self._last_write, self._pending = now, None

    def finish(self) -> None:
        """End the in-place line (terminal) or log the last status held back (not a terminal)."""
        if self._drawn:
            self._out.write("\n")
            self._out.flush()
            self._drawn = False
        if self._pending is not None:
            self._write(self._pending, self._clock())
