"""A generator with a model's timing and no model: chunks in, the same frames out, after a delay.

It stands in for a GPU pipeline wherever the timing is what matters (runner delivery, the
governor, benchmarks of the plumbing on a CPU): it takes chunks of ``chunk_frames`` frames (the
first chunk may differ, like SDV2's 5 then 4), sleeps for the time a call would take, and gives
the frames back, optionally ``lag_chunks`` chunks late like a stream batch. The time per call is
``base_ms + ms_per_step * steps`` plus uniform ``± jitter_ms``; ``SetSteps`` changes ``steps``,
``SetDecoder("tiny")`` removes ``decoder_ms``. A first call on a thread that has not called it
before costs ``cold_thread_s`` extra (what cuDNN autotuning costs a cold thread on a GPU);
:meth:`warmup` pays it on the calling thread.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from livestyle.errors import ConfigError, ControlError
from livestyle.engine.commands import Reset, SetDecoder, SetSize, SetSteps
from livestyle.engine.frames import Frame

__all__ = ["SyntheticGenerator"]


class SyntheticGenerator:
    """A chunked generator that only takes time (see the module docstring).

    Args:
        chunk_frames: frames per chunk after the first.
        first_chunk_frames: frames in the first chunk of a stream (None: ``chunk_frames``).
        base_ms, ms_per_step, steps, decoder_ms: the call time model.
        jitter_ms: uniform random ± added to each call (seeded by ``seed``).
        lag_chunks: output is this many chunks behind the input (stream batch).
        cold_thread_s: extra seconds for the first call on each new thread.
        stalls: extra seconds for given calls (by 0-based call number: a one-off stall).
        max_steps: the most steps ``SetSteps`` accepts.
        sleep: how time passes (tests of the pure logic pass a fake).
    """

    name = "synthetic"

    def __init__(self, *, chunk_frames: int = 4, first_chunk_frames: int | None = None, base_ms: float = 20.0,
                 ms_per_step: float = 20.0, steps: int = 1, decoder_ms: float = 0.0, jitter_ms: float = 0.0,
                 lag_chunks: int = 0, cold_thread_s: float = 0.0, stalls: dict[int, float] | None = None,
                 max_steps: int = 4, seed: int = 0,
                 sleep: Callable[[float], object] = time.sleep) -> None:
        if chunk_frames < 1 or (first_chunk_frames is not None and first_chunk_frames < 1):
            raise ConfigError("synthetic generator: chunks need at least one frame")
        if lag_chunks < 0 or base_ms < 0 or ms_per_step < 0 or jitter_ms < 0 or cold_thread_s < 0:
            raise ConfigError("synthetic generator: times and lag must not be negative")
        self.chunk_frames = chunk_frames
        self.first_chunk_frames = first_chunk_frames or chunk_frames
        self.base_ms, self.ms_per_step, self.decoder_ms = base_ms, ms_per_step, decoder_ms
        self.steps, self.max_steps = steps, max_steps
        self.decoder = "wan"
        self.width: int | None = None
        self.height: int | None = None
        self.jitter_ms, self.lag_chunks, self.cold_thread_s = jitter_ms, lag_chunks, cold_thread_s
        self.stalls = dict(stalls or {})
        self._rng = random.Random(seed)
        self._sleep = sleep
        self._warm_threads: set[int] = set()
        self._in_flight: deque[list[Frame]] = deque()
        self.chunks = 0
        self.stream_chunks = 0
        self.calls_ms: list[float] = []
        self.applied: list[object] = []

    def call_ms(self) -> float:
        """The nominal (jitter-free) time of one call with the current settings."""
        decoder = 0.0 if self.decoder == "tiny" else self.decoder_ms
        return self.base_ms + self.ms_per_step * self.steps + decoder

    def frames_needed(self) -> int:
        return self.first_chunk_frames if self.stream_chunks == 0 else self.chunk_frames

    def process(self, frames: Sequence[Frame]) -> list[Frame]:
        seconds = self.call_ms() / 1000.0
        if self.jitter_ms:
            seconds += self._rng.uniform(-self.jitter_ms, self.jitter_ms) / 1000.0
        thread = threading.get_ident()
        if thread not in self._warm_threads:
            self._warm_threads.add(thread)
            seconds += self.cold_thread_s
        seconds += self.stalls.get(self.chunks, 0.0)
        self._sleep(max(0.0, seconds))
        self.calls_ms.append(1000.0 * seconds)
        if frames and self.width is None:
            self.width, self.height = frames[-1].width, frames[-1].height
        self.chunks += 1
        self.stream_chunks += 1
        self._in_flight.append(list(frames))
        if len(self._in_flight) > self.lag_chunks:
            return self._in_flight.popleft()
        return []

    def warmup(self, size: tuple[int, int]) -> None:
        """Pay the cold-thread cost on the calling thread (the runner's worker), then start afresh."""
        if threading.get_ident() not in self._warm_threads:
            self._warm_threads.add(threading.get_ident())
            self._sleep(self.cold_thread_s)
        self.reset()

    def apply(self, command: object) -> None:
        self.applied.append(command)
        if isinstance(command, SetSteps):
            if not 1 <= command.value <= self.max_steps:
                raise ControlError(f"steps {command.value} is not supported; use 1..{self.max_steps}")
            self.steps = int(command.value)
            if self.lag_chunks:
                self.reset()  # a stream batch is sized by steps
        elif isinstance(command, SetDecoder):
            self.decoder = command.value
        elif isinstance(command, SetSize):
            self.width, self.height = command.width, command.height
        elif isinstance(command, Reset):
            self.reset()

    def reset(self) -> None:
        self._in_flight.clear()
        self.stream_chunks = 0

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "chunks": self.chunks, "steps": self.steps, "decoder": self.decoder,
                               "call_ms": round(self.call_ms(), 2), "latency_chunks": self.lag_chunks + 1}
        if self.width is not None:
            out["size"] = f"{self.width}x{self.height}"
        return out
