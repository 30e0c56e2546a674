"""What the stage processes and the front share: the spawn spec, the stream view, small helpers."""

from __future__ import annotations

import queue
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from livestyle.config import Config
from livestyle.planning.stage_split import StageSpan

__all__ = ["PeerLost", "WorkerSpec", "drain", "stream_view"]


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a stage process needs (picklable: it crosses the spawn)."""

    config: Config
    model: str
    spans: tuple[StageSpan, ...]
    rank: int
    init_method: str  # "tcp://ADDR:PORT" (spawned by the command) or "env://" (torchrun's variables)
    backend: str
    device: str
    parent_pid: int
    threads: int = 0  # torch intra-op threads (0: leave torch's default)
    opener: Callable[[Config, str], Any] | None = None
    """Builds the stage's ``StreamPipeline`` from ``(config, model)``; picklable (a module-level
    function or an instance of a module-level class). None: ``livestyle.diffusion.open``'s."""

    @property
    def span(self) -> StageSpan:
        return self.spans[self.rank]

    @property
    def world(self) -> int:
        return len(self.spans)


class PeerLost(Exception):
    """A neighbouring stage went away (its own error is the one to report)."""


def stream_view(pipe: Any) -> dict[str, Any]:
    """What the front mirrors of rank 0's stream (frames per chunk, bypass, resets, limits)."""
    plan = pipe.state.plan
    return {"first_frames": plan.frames_needed(first=True), "frames": plan.frames_needed(first=False),
            "bypass": pipe.controls.bypass, "resets": pipe.counters["resets"], "max_steps": pipe.max_steps,
            "family": pipe.family, "label": pipe.models.label}


def drain(q: queue.Queue, into: deque) -> None:
    """Move everything waiting in ``q`` to ``into`` without blocking."""
    while True:
        try:
            into.append(q.get_nowait())
        except queue.Empty:
            return
