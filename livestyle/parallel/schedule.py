"""The first stage's plan: which micro-steps go round the stages, in which order, with what input.

A micro-step (:class:`Step`) is one DiT pass of one latent chunk ``[1, 16, F, h, w]`` at one
timestep; every stage runs it through its blocks, the last stage turns it into ``x0``. The
:class:`Conductor` (rank 0) reproduces :class:`~livestyle.diffusion.denoise.Denoiser`'s arithmetic
for the one-process stream exactly, split into micro-steps that can be in flight on different
stages at once:

- **stream batch** (SDV2): the one-process call ``n`` advances the ``steps`` slots of a
  ``[steps, ...]`` batch at once; here each slot is its own micro-step with its own batch-1 cache
  row (``row``), in slot order. Slot ``r`` of call ``n`` needs slot ``r - 1`` of call ``n - 1``
  (re-noised with that call's noise to slot ``r``'s sigma), which entered the ring ``steps + 1``
  micro-steps earlier: with up to ``steps + 1`` stages every stage stays busy. Slot 0 takes the
  chunk's entry latents. Rows that hold no chunk yet (the first ``steps - 1`` calls) start at the
  warm-up's next frame (``hold``), as ``Denoiser._stream_batch_step`` does.
- **steps in turn** (SDV2 ``stream_batch: false``, Self-Forcing's ``rerun``): step ``i + 1`` needs
  step ``i``'s ``x0``; the next chunk's first step may enter as soon as this chunk's last step has
  left the first stage.

Noise is drawn from the stream's one generator in the one-process order (a chunk's entry noise,
then the noise its calls re-noise with), at the chunk's arrival, so a seed gives the same frames.
The steps of one stream (``epoch``) wait in :attr:`Conductor.plan` in order; a step leaves it when
its input is known (its predecessor's ``x0`` came back round: :meth:`Conductor.returned`).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import torch

from livestyle.models.scheduler import add_noise, sigma_for_timestep
from livestyle.diffusion.family import FamilyConfig
from livestyle.diffusion.stream_state import ChunkEntry
from livestyle.errors import PipelineError

__all__ = ["Conductor", "Control", "Step"]


@dataclass
class Step:
    """One micro-step. ``x`` (input latents) is None until ``wait``'s ``x0`` has come back and
    been re-noised with ``noise`` to ``sigma`` (None: taken as is)."""

    key: int
    row: int  # cache row: -1 the batch-1 cache (warm-up, steps in turn), else the stream-batch slot
    t: torch.Tensor  # [1] float32 timestep
    begin: bool  # claim a new block in the cache (else re-use the last one of this row)
    latents: int  # the stream's latent frames per chunk (the stages' cache geometry)
    x: torch.Tensor | None = None
    wait: int | None = None
    hold: int | None = None  # after claiming the block, set the row's next frame/position to this (no chunk yet)
    expand: int = 0  # replicate the batch-1 cache into this many rows first (the stream batch starts)
    returns: bool = False  # the last stage sends x0 back (another step's input)
    emit: int | None = None  # the chunk id whose frames this step's x0 decodes to
    source_size: tuple[int, int] | None = None
    ctx: torch.Tensor | None = None  # a new text context: the stages refill their cross-attention K/V
    renoise: tuple[torch.Tensor, torch.Tensor] | None = None  # (noise, sigma) applied to x0 for the next step

    def meta(self) -> dict[str, Any]:
        """The step's fields for a :class:`~livestyle.parallel.transport.Record` (tensors apart)."""
        return {"kind": "step", "key": self.key, "row": self.row, "begin": self.begin, "latents": self.latents,
                "hold": self.hold, "expand": self.expand, "returns": self.returns, "emit": self.emit,
                "source_size": self.source_size, "ctx": self.ctx is not None}


@dataclass
class Control:
    """A record for every stage, in step order: ``"command"`` (a LoRA switch, a decoder change:
    ``command``) or ``"reset"`` (a new stream: caches and decoder start over)."""

    kind: str
    command: object = None


@dataclass
class _Stream:
    """The stream-batch bookkeeping of one stream (``Denoiser``'s ``StreamState`` fields)."""

    slots: int = 0
    slot_t: torch.Tensor | None = None
    prev: list[int | None] = field(default_factory=list)  # keys of the last call's slots
    in_flight: deque[int] = field(default_factory=deque)  # chunk ids, newest first
    expand_next: bool = False


class Conductor:
    """Rank 0's plan of micro-steps (module docstring). ``stream_batched``: the family's stream
    batch is on. ``noise_like(t)`` draws the stream's next noise shaped like ``t``."""

    def __init__(self, family: FamilyConfig, *, stream_batched: bool) -> None:
        self.family = family
        self.stream_batched = stream_batched
        self.plan: deque[Step | Control] = deque()
        self._waiting: dict[int, Step] = {}
        self._producers: dict[int, Step] = {}
        self._next_key = 0
        self._stream = _Stream()
        self._sent_version = -1
        self._first_latents = 0
        self._early: dict[int, torch.Tensor] = {}  # inputs that came back before their step was planned
        self._orphans: set[int] = set()  # the last call's slots before a reset: nothing will wait on them

    # ------------------------------------------------------------------ input
    def add_chunk(self, chunk: int, entry: ChunkEntry, *, noise_like: Any, source_size: tuple[int, int],
                  latents: int, first_latents: int) -> None:
        """Plan chunk ``chunk``'s micro-steps from its entry (``StreamPipeline.enter_chunk``);
        ``latents``/``first_latents``: the stream's latent frames per chunk, and in its first chunk."""
        self._first_latents = int(first_latents)
        ctx = None
        if entry.prompt_version != self._sent_version:
            ctx, self._sent_version = entry.ctx, entry.prompt_version
        s = self._stream
        if self.stream_batched and s.slot_t is not None:
            self._stream_call(chunk, entry, ctx, noise_like, source_size, latents)
        else:
            self._in_turn(chunk, entry, ctx, noise_like, source_size, latents)

    def add_control(self, control: Control) -> None:
        """A record for the stages after the steps planned so far; ``reset`` also starts a new
        stream here (the steps already planned still run, as in one process they already had)."""
        self.plan.append(control)
        if control.kind == "reset":
            for k in self._stream.prev:
                if k is not None and self._early.pop(k, None) is None:
                    self._orphans.add(k)
            self._stream = _Stream()
            self._sent_version = -1

    def _key(self) -> int:
        self._next_key += 1
        return self._next_key

    def _add(self, step: Step) -> Step:
        if step.wait is not None:
            producer = self._producers.get(step.wait)
            if producer is None and step.wait in self._early:
                step.x = self._early.pop(step.wait)
            elif producer is None:
                raise PipelineError(f"micro-step {step.key} waits on {step.wait}, which was never planned")
            else:
                self._waiting[step.wait] = step
        if step.returns:
            self._producers[step.key] = step
        self.plan.append(step)
        return step

    def _in_turn(self, chunk: int, e: ChunkEntry, ctx: torch.Tensor | None, noise_like: Any,
                 source_size: tuple[int, int], latents: int) -> None:
        f = self.family
        ts = torch.tensor(e.timesteps, device=e.noisy.device, dtype=torch.float32)
        if e.first_step is not None:
            ts[0] = e.first_step
        n = len(e.timesteps)
        noises = [noise_like(e.noisy) for _ in range(n - 1)]  # Denoiser draws them after each step
        rerun = f.kv_mode == "rerun"
        prev: Step | None = None
        for i in range(n):
            last = i == n - 1
            step = Step(self._key(), -1, ts[i:i + 1].clone(), begin=i == 0, latents=latents,
                        returns=not last or rerun, emit=chunk if last else None, source_size=source_size)
            if prev is None:
                step.x, step.ctx = e.noisy, ctx
            else:
                step.wait = prev.key
            if not last:
                step.renoise = (noises[i], sigma_for_timestep(ts[i + 1], f.shift))
            self._add(step)
            prev = step
        if rerun:  # clean K/V overwrite the noisy ones at the same slots
            assert prev is not None
            t = torch.full((1,), float(f.context_noise), device=e.noisy.device)
            self._add(Step(self._key(), -1, t, begin=False, latents=latents, wait=prev.key))
        if self.stream_batched:  # this was the warm-up: the stream batch starts with the next chunk
            s = self._stream
            s.slots, s.slot_t, s.prev, s.expand_next = n, ts.clone(), [None] * n, True

    def _stream_call(self, chunk: int, e: ChunkEntry, ctx: torch.Tensor | None, noise_like: Any,
                     source_size: tuple[int, int], latents: int) -> None:
        s, f = self._stream, self.family
        assert s.slot_t is not None
        steps = s.slots
        if len(e.timesteps) != steps:
            raise PipelineError(f"a stream-batch chunk with {len(e.timesteps)} steps in a {steps}-slot stream")
        noise = noise_like(torch.empty((steps - 1, *e.noisy.shape[1:]), dtype=e.noisy.dtype, device=e.noisy.device)) \
            if steps > 1 else None
        s.slot_t[0] = e.timesteps[0] if e.first_step is None else e.first_step
        empty_rows = len(s.in_flight) + 1
        s.in_flight.appendleft(chunk)
        leaving = s.in_flight.pop() if len(s.in_flight) >= steps else None
        keys: list[int | None] = []
        for r in range(steps):
            step = Step(self._key(), r, s.slot_t[r:r + 1].clone(), begin=True, latents=latents,
                        returns=r < steps - 1, source_size=source_size)
            if r == 0:
                step.x, step.ctx = e.noisy, ctx
                if s.expand_next:
                    step.expand, s.expand_next = steps, False
            elif s.prev[r - 1] is None:  # the first call: the slots start from zeros
                step.x = torch.zeros_like(e.noisy)
            else:
                step.wait = s.prev[r - 1]
            if empty_rows < steps and r >= empty_rows:
                step.hold = self._first_latents
            if r < steps - 1:
                assert noise is not None
                step.renoise = (noise[r:r + 1], sigma_for_timestep(s.slot_t[r + 1:r + 2], f.shift))
            if r == steps - 1 and leaving is not None:
                step.emit = leaving
            self._add(step)
            keys.append(step.key)
        s.prev = keys

    # ------------------------------------------------------------------ the ring
    def returned(self, key: int, x0: torch.Tensor) -> None:
        """``x0`` of step ``key`` came back: the step waiting on it gets its input."""
        producer = self._producers.pop(key, None)
        if producer is None or key in self._orphans:
            self._orphans.discard(key)
            return  # nothing needs it (the last call before a reset)
        x = x0
        if producer.renoise is not None:
            noise, sigma = producer.renoise
            x = add_noise(x0, noise.to(x0.device), sigma)
        producer.renoise = None
        consumer = self._waiting.pop(key, None)
        if consumer is None:
            self._early[key] = x  # the next call is not planned yet
        else:
            consumer.x = x

    def next_ready(self) -> Step | Control | None:
        """The head of the plan if it can go now (a step whose input is known, or a record)."""
        if not self.plan:
            return None
        head = self.plan[0]
        if isinstance(head, Step) and head.x is None:
            return None
        return self.plan.popleft()

    @property
    def backlog(self) -> int:
        """Micro-steps planned but not yet sent into the ring."""
        return sum(1 for p in self.plan if isinstance(p, Step))
