"""How long this machine took to load a model and to warm it up, remembered between runs, so the
next start can say "about 40 s" instead of leaving a streamer in front of a black window.

One small JSON file in the user cache (``$LIVESTYLE_STARTUP_HISTORY`` when set, ``off`` to keep
none; else ``$LIVESTYLE_CACHE_DIR/startup.json``, else ``~/.cache/livestyle/startup.json``):
``{key: [seconds, ...]}`` with the last
:data:`KEEP` durations per key. A key names what changes the time: the phase (``load`` or
``warmup``), the model, the working size, the steps and the device. The estimate is the median of
what is kept. A missing, unreadable or corrupt file means "no estimate" and is rewritten; writing
is best effort (a read-only cache never stops a stream).
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
from pathlib import Path

__all__ = ["KEEP", "StartupHistory", "default_history_path", "startup_key"]

KEEP = 5
"""Durations kept per key: enough for a median that one slow start (a cold disk) does not move."""


def default_history_path() -> Path | None:
    """Where the history lives (None: ``LIVESTYLE_STARTUP_HISTORY=off``, keep none)."""
    chosen = os.environ.get("LIVESTYLE_STARTUP_HISTORY")
    if chosen:
        return None if chosen.lower() == "off" else Path(chosen)
    root = os.environ.get("LIVESTYLE_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "livestyle")
    return Path(root) / "startup.json"


def startup_key(phase: str, model: str, size: tuple[int, int], steps: int, device: str) -> str:
    """``"warmup|sdv2-1.3b|832x480|2|NVIDIA H200"``: one line per thing that changes the time."""
    return f"{phase}|{model}|{size[0]}x{size[1]}|{steps}|{device}"


class StartupHistory:
    """``estimate(key)`` -> seconds or None; ``record(key, seconds)`` after a start."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else default_history_path()

    def _read(self) -> dict[str, list[float]]:
        if self.path is None:
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {k: [float(x) for x in v if isinstance(x, (int, float)) and x >= 0]
                for k, v in data.items() if isinstance(v, list)}

    def estimate(self, key: str) -> float | None:
        """The median of the durations kept for ``key``, or None when this start is the first."""
        seen = self._read().get(key)
        return statistics.median(seen) if seen else None

    def record(self, key: str, seconds: float) -> None:
        """Keep ``seconds`` for ``key`` (the last :data:`KEEP`); silently does nothing when the
        cache cannot be written."""
        if self.path is None or not seconds >= 0:  # kept nowhere; or NaN/negative: nothing measured
            return
        data = self._read()
        data[key] = [*data.get(key, []), round(float(seconds), 2)][-KEEP:]
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".startup-", suffix=".json")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=1, sort_keys=True)
            os.replace(tmp, self.path)  # atomic: two runs finishing together never leave half a file
        except OSError:
            return
