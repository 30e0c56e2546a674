"""The Generator the engine runs for a ``--gpus N`` stream: it fronts the stage processes.

:class:`ParallelStream` implements :class:`~livestyle.engine.frames.Generator`. ``process`` sends
the chunk to rank 0 and returns the styled frames that have come back since (in order; each keeps
the pts, capture time and index of its input, as in one process). It waits only while two chunks
are already queued at rank 0, so the engine's pace is the slowest stage's. Calls (``apply``,
``precondition``, ``stats``, ...) are answered by rank 0 in order with the chunks; a refused
command raises the same error it would in one process.

One thread here watches every stage: rank 0's pipe, the other stages' report pipes and the
processes themselves. A stage that dies or fails ends the stream: every stage is stopped and the
next call raises :class:`~livestyle.errors.StageFailedError` with one line naming the stage
(``stage 2 of 3 (blocks 20-29) died: killed by signal 9``), and the runner finalizes the sinks.
:meth:`close` (also at interpreter exit) stops the stages and waits for them.
"""

from __future__ import annotations

import atexit
import itertools
import threading
import time
from collections import deque
from collections.abc import Sequence
from fractions import Fraction
from multiprocessing.connection import wait
from typing import Any

import numpy as np

from livestyle import errors
from livestyle.config import Config
from livestyle.engine.commands import Reset
from livestyle.engine.frames import Frame
from livestyle.errors import StageFailedError
from livestyle.parallel.launch import LaunchPlan, spawn_stage, stop_processes
from livestyle.planning.stage_split import StageSpan

__all__ = ["ParallelStream"]

QUEUED_CHUNKS = 2
"""Chunks sent to rank 0 but not planned yet before ``process`` waits."""
GRACE_S = 0.5
"""After a first failure, how long the watcher gathers the others' reports to name the stage that died."""


class ParallelStream:
    """A stream over the stages of ``plan`` (``launch.launch_plan``); blocks until all are ready."""

    def __init__(self, config: Config, model: str, plan: LaunchPlan, spans: tuple[StageSpan, ...], *,
                 ready_timeout: float | None = None) -> None:
        from livestyle.diffusion.loras import LoraLibrary

        self.name = model
        self.spans = spans
        self.config = config
        self.loras = LoraLibrary(config.model.lora_dir)
        self._lock = threading.Condition()
        self._send_lock = threading.Lock()
        self._procs: list[Any] = []
        self._conns: dict[Any, int] = {}
        self._ready: set[int] = set()
        self._reports: list[tuple[int, str, bool]] = []
        self._failure: str | None = None
        self._closing = False
        self._view: dict[str, Any] = {}
        self._replies: dict[int, tuple[bool, Any]] = {}
        self._calls = itertools.count(1)
        self._chunks = itertools.count(1)
        self._sent = self._entered = 0
        self._pending: dict[int, list[Frame]] = {}
        self._out: deque[tuple[int, np.ndarray, bool]] = deque()
        self._chunks_since_reset = 0
        self._size: tuple[int, int] | None = None
        self._discard_below = 0
        self._stats: dict[str, Any] = {}
        for spec in plan.specs:
            process, conn = spawn_stage(spec)
            self._procs.append(process)
            self._conns[conn] = spec.rank
            if spec.rank == 0:
                self._rank0 = conn
        self._expected = {s.rank for s in plan.specs}
        atexit.register(self.close)
        self._watcher = threading.Thread(target=self._watch, name="livestyle-stages", daemon=True)
        self._watcher.start()
        self._wait(lambda: self._ready >= self._expected, ready_timeout, "the stages to load the model")
        self._view = self._call("view")

    # ------------------------------------------------------------------ Generator protocol
    @property
    def family(self) -> Any:
        return self._view.get("family")

    @property
    def max_steps(self) -> int:
        return int(self._view["max_steps"])

    def frames_needed(self) -> int:
        v = self._view
        if v["bypass"]:
            return 1
        return int(v["first_frames"] if self._chunks_since_reset == 0 else v["frames"])

    def process(self, frames: Sequence[Frame]) -> list[Frame]:
        """Send a chunk to the stages; the styled frames that are back (maybe an earlier chunk's).
        An empty chunk sends nothing and returns what has come back."""
        self._check()
        frames = list(frames)
        if not frames:
            return self._take()  # nothing to send: what has come back since
        if self._view["bypass"]:
            return frames
        size = (frames[-1].width, frames[-1].height)
        if self._size is not None and size != self._size:
            self._size = None
            self.reset()
            return frames  # cut for the old size; the next chunk starts the new stream
        self._size = size
        if len(frames) != self.frames_needed():
            raise errors.PipelineError(f"chunk has {len(frames)} frames but the pipeline asked for {self.frames_needed()}")
        chunk = next(self._chunks)
        with self._lock:
            self._pending[chunk] = frames
            self._sent += 1
        self._send(("chunk", chunk, frames))
        self._chunks_since_reset += 1
        self._wait(lambda: self._sent - self._entered < QUEUED_CHUNKS, None, "rank 0 to take the chunk")
        return self._take()

    def apply(self, command: object) -> None:
        """Apply ``command`` on rank 0 (and, in step order, on every stage that needs it)."""
        self._set_view(self._call("apply", command))

    def precondition(self, command: object) -> None:
        self._call("precondition", command)

    def warm_prompts(self, prompts: Sequence[str]) -> None:
        self._call("warm_prompts", list(prompts))

    def warm_loras(self, names: Sequence[str]) -> None:
        self._call("warm_loras", list(names))

    def wait_for_prompts(self, timeout: float | None = None) -> bool:
        return bool(self._call("wait_for_prompts", timeout))

    def reset(self) -> None:
        self.apply(Reset())

    def warmup(self, size: tuple[int, int], chunks: int | None = None) -> None:
        """Run synthetic chunks of ``size`` through every stage (``StreamPipeline.warmup``'s pictures),
        then start a fresh stream; their frames never come out, the counters stay as they were."""
        if self._view["bypass"]:
            return
        counters = {k: v for k, v in self.stats().items() if k in ("chunks", "frames_in", "frames_out", "resets")}
        family = self.family
        if chunks is None:
            fill = -(-family.kv_cache_frames // family.latents_per_chunk)
            chunks = fill + int(self.stats().get("steps", 1)) + 2
        width, height = size
        ys, xs = np.mgrid[0:height, 0:width]
        index = 0
        for i in range(chunks):
            image = np.stack([(xs + 5 * i) % 256, (ys + 3 * i) % 256, (xs + ys) % 256], axis=-1).astype(np.uint8)
            k = self.frames_needed()
            self.process([Frame(image, index + j, Fraction(1, 30), 0.0, index + j) for j in range(k)])
            index += k
        self.reset()
        self._discard_below = next(self._chunks)  # warm-up frames still in flight are dropped
        self._set_view(self._call("restore_counters", counters))

    def stats(self) -> dict[str, Any]:
        """Rank 0's stream stats plus the stages (answered within 2 s, else the last ones)."""
        if self._failure is not None:
            return {**self._stats, "last_error": self._failure}
        try:
            self._stats = dict(self._call("stats", timeout=2.0))
        except StageFailedError as exc:
            return {**self._stats, "last_error": str(exc)}
        except TimeoutError:
            pass
        return self._stats

    def close(self) -> None:
        """Stop every stage and wait for it (terminated after ``launch.STOP_S``). Idempotent."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
        try:
            self._send(("stop",))
        except (OSError, StageFailedError):
            pass
        stop_processes(self._procs)
        for conn in self._conns:
            conn.close()

    # ------------------------------------------------------------------ internals
    def _set_view(self, view: dict[str, Any]) -> None:
        if view["resets"] != self._view.get("resets"):
            self._chunks_since_reset = 0
        self._view = view

    def _take(self) -> list[Frame]:
        out: list[Frame] = []
        reset = False
        with self._lock:
            while self._out:
                chunk, array, finite = self._out.popleft()
                for stale in [c for c in self._pending if c < chunk]:
                    del self._pending[stale]  # dropped by a reset while in the stream batch
                frames = self._pending.pop(chunk, None)
                if frames is None or chunk < self._discard_below:
                    continue
                if not finite:
                    out.extend(frames)
                    reset = True
                    continue
                if len(array) != len(frames):
                    raise errors.PipelineError(f"the stages returned {len(array)} frames for {len(frames)} inputs")
                out.extend(fr.with_image(np.ascontiguousarray(img)) for fr, img in zip(frames, array))
        if reset:
            self.reset()  # NaN/Inf in the latents: as in one process, the stream starts over
        return out

    def _send(self, message: tuple) -> None:
        with self._send_lock:
            try:
                self._rank0.send(message)
            except (OSError, BrokenPipeError) as exc:
                broken = exc
            else:
                return
        try:  # rank 0 went away: let the watcher name the stage that failed first
            self._wait(lambda: self._failure is not None, GRACE_S + 2.0, "the stages' reports")
        except TimeoutError:
            raise StageFailedError(f"{self._describe(0)} is gone ({broken}); the stream stopped") from None

    def _call(self, method: str, *args: Any, timeout: float | None = None) -> Any:
        call = next(self._calls)
        self._send(("call", call, method, args))
        self._wait(lambda: call in self._replies, timeout, f"rank 0 to answer {method}")
        with self._lock:
            ok, value = self._replies.pop(call)
        if not ok:
            kind, message = value
            cls = getattr(errors, kind, None)
            raise (cls if isinstance(cls, type) and issubclass(cls, errors.LivestyleError) else errors.PipelineError)(message)
        return value

    def _check(self) -> None:
        if self._failure is not None:
            raise StageFailedError(self._failure)

    def _wait(self, done: Any, timeout: float | None, what: str) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while not done():
                self._check()
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError(f"timed out waiting for {what}")
                self._lock.wait(0.5 if left is None else min(left, 0.5))

    def _describe(self, rank: int) -> str:
        span = self.spans[rank]
        return f"stage {rank} of {len(self.spans)} (blocks {span.start}-{span.stop - 1})"

    def _watch(self) -> None:
        """The one thread reading the stages' pipes and watching the processes (module docstring)."""
        sentinels = {p.sentinel: (rank, p) for rank, p in zip(sorted(self._expected), self._procs)}
        conns = list(self._conns)
        failed_at: float | None = None
        while True:
            ready = wait([*conns, *sentinels], timeout=0.2 if failed_at is not None else None)
            for obj in ready:
                if obj in sentinels:
                    rank, process = sentinels.pop(obj)
                    process.join(0.1)
                    code = process.exitcode
                    if not self._closing:
                        why = f"killed by signal {-code}" if code is not None and code < 0 else f"exited with code {code}"
                        self._reports.append((rank, f"died: {why}", code is not None and code < 0))
                    continue
                try:
                    message = obj.recv()
                except (EOFError, OSError):
                    conns.remove(obj)
                    continue
                self._on_message(message)
            if self._reports and failed_at is None and not self._closing:
                failed_at = time.monotonic()
            if failed_at is not None and (time.monotonic() - failed_at >= GRACE_S or not sentinels):
                self._fail()
                return
            if not sentinels and not conns:
                with self._lock:
                    self._lock.notify_all()
                return

    def _on_message(self, message: tuple) -> None:
        kind = message[0]
        with self._lock:
            if kind == "ready":
                self._ready.add(int(message[1]))
            elif kind == "entered":
                self._entered += 1
                view = message[2]
                view["resets"] = self._view.get("resets", view["resets"])  # resets are learnt from apply
                self._view = {**self._view, **{k: view[k] for k in ("first_frames", "frames", "bypass")}}
            elif kind == "frames":
                _, chunk, array, finite = message
                self._out.append((int(chunk), array, bool(finite)))
            elif kind == "reply":
                _, call, ok, value = message
                self._replies[int(call)] = (bool(ok), value)
            elif kind == "error":
                _, rank, text, primary = message
                self._reports.append((int(rank), f"failed: {text}", bool(primary)))
            self._lock.notify_all()

    def _fail(self) -> None:
        """Name the stage to blame (its own error or death first, a neighbour's complaint last),
        stop every stage and wake every waiter."""
        primary = [r for r in self._reports if r[2]]
        rank, text, _ = (primary or self._reports)[0]
        with self._lock:
            self._failure = f"{self._describe(rank)} {text}; the stream stopped"
            self._closing = True
            self._lock.notify_all()
        for p in self._procs:
            if p.is_alive():
                p.terminate()
        stop_processes(self._procs, timeout=2.0)
