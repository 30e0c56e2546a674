"""CUDA graphs for the DiT's steady-state cached step (one launch per forward instead of ~1000),
and for other fixed-shape steps with in-place state (``CallGraphs``: the tiny codec's chunks).

An eager 1.3B forward launches ~1000 kernels; at batch 1-2 the GPU waits on the host (57 ms wall
vs 32 ms GPU on the H100, benchmarks/NOTES.md). Every tensor the cached step touches already lives
at a fixed address (the ``KVCache`` buffers, the ``BlockSlots`` handle that ``begin_block``
rewrites in place, the cross-attention K/V), so the step can be captured once and replayed:

- eligible calls (``StepGraphs.eligible``): CUDA, grad off, a cache that is ``full`` (no key mask),
  a filled cross-attention cache (``context`` is then unused), no block-causal mask, no KV bias;
- per key (input shapes/dtypes, block handle) the first ``warmup_calls`` run eagerly (cuDNN/cuBLAS
  pick their kernels), the next call is captured and replayed, later ones only replay;
- inputs are copied into static tensors, the output is cloned out of the graph's pool;
- all graphs belong to one cache: a call with another cache (a reset or a new stream batch) drops
  them first. A capture that fails logs a warning and turns graphs off for good (eager fallback).

Replaying the graph reads the K/V cache, block slots and positions at call time, so prompt changes
(``encode_prompt`` refills the cross buffers in place) and ``begin_block`` updates are seen.
"""

from __future__ import annotations

import logging
import weakref
from dataclasses import dataclass
from collections.abc import Callable
from typing import Any, Protocol

import torch

from livestyle.models.kv_cache import BlockSlots, KVCache

__all__ = ["CachedStep", "CallGraphs", "StepGraphs"]

log = logging.getLogger(__name__)


class CachedStep(Protocol):
    """What a graph captures: the model's cached forward (``CausalWanDiT.__call__``).

    Called as ``step(x, timestep, None, cache=cache, block=block)``; this module needs nothing else
    of the model, so it does not import ``livestyle.models.dit`` (which imports it).
    """

    def __call__(self, x: torch.Tensor, timestep: torch.Tensor, context: torch.Tensor | None, *,
                 cache: KVCache, block: BlockSlots) -> torch.Tensor: ...


@dataclass
class _Graph:
    graph: torch.cuda.CUDAGraph
    x: torch.Tensor
    timestep: torch.Tensor
    out: torch.Tensor


class StepGraphs:
    """Captured steady-state steps of one model's ``CachedStep`` (see the module docstring)."""

    def __init__(self, warmup_calls: int = 2) -> None:
        self.warmup_calls = max(int(warmup_calls), 1)
        self.capturing = False
        self.failed = False
        self.captures = 0
        self.replays = 0
        self._seen: dict[tuple[Any, ...], int] = {}
        self._graphs: dict[tuple[Any, ...], _Graph] = {}
        self._cache: weakref.ReferenceType[KVCache] | None = None
        self._pool: Any = None

    def eligible(self, x: torch.Tensor, cache: KVCache, causal_block_frames: int | None, kv_bias: float | None,
                 frame_positions: torch.Tensor | None) -> bool:
        """Whether this call may be served from a graph (module docstring)."""
        return (
            not self.failed
            and x.is_cuda
            and not torch.is_grad_enabled()
            and cache.full
            and cache.cross.filled
            and causal_block_frames is None
            and (kv_bias is None or kv_bias == 1.0)
            and frame_positions is None
            and not torch.cuda.is_current_stream_capturing()
        )

    def reset(self) -> None:
        """Drop every graph and its memory pool."""
        self._graphs.clear()
        self._seen.clear()
        self._cache = None
        self._pool = None

    def run(self, model: CachedStep, x: torch.Tensor, timestep: torch.Tensor, cache: KVCache,
            block: BlockSlots) -> torch.Tensor:
        """The forward for an eligible call: eager while warming up, else a graph replay."""
        if self._cache is None or self._cache() is not cache:
            self.reset()
            self._cache = weakref.ref(cache)
        key = (tuple(x.shape), x.dtype, tuple(timestep.shape), timestep.dtype, id(block), x.device)
        g = self._graphs.get(key)
        if g is None:
            seen = self._seen.get(key, 0)
            if seen < self.warmup_calls:
                self._seen[key] = seen + 1
                return self._eager(model, x, timestep, cache, block)
            g = self._capture(model, x, timestep, cache, block)
            if g is None:
                return self._eager(model, x, timestep, cache, block)
            self._graphs[key] = g
        with torch.inference_mode():
            g.x.copy_(x)
            g.timestep.copy_(timestep)
            g.graph.replay()
        self.replays += 1
        return g.out.clone()

    def _eager(self, model: CachedStep, x: torch.Tensor, timestep: torch.Tensor, cache: KVCache,
               block: BlockSlots) -> torch.Tensor:
        self.capturing = True
        try:
            return model(x, timestep, None, cache=cache, block=block)
        finally:
            self.capturing = False

    def _capture(self, model: CachedStep, x: torch.Tensor, timestep: torch.Tensor, cache: KVCache,
                 block: BlockSlots) -> _Graph | None:
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        graph = torch.cuda.CUDAGraph()
        self.capturing = True
        try:
            # capture_begin/end on a side stream, not ``torch.cuda.graph``: that one runs a device
            # sync, gc.collect() and empty_cache() first (a visible stall in a live stream)
            with torch.inference_mode():
                static_x = x.clone()
                static_t = timestep.clone()
                side = torch.cuda.Stream(device=x.device)
                side.wait_stream(torch.cuda.current_stream(x.device))
                with torch.cuda.stream(side):
                    graph.capture_begin(pool=self._pool, capture_error_mode="thread_local")
                    try:
                        out = model(static_x, static_t, None, cache=cache, block=block)
                    finally:
                        graph.capture_end()
                torch.cuda.current_stream(x.device).wait_stream(side)
        except Exception as exc:  # noqa: BLE001 - capture is an optimisation: any failure falls back to eager, loudly
            log.warning("CUDA graph capture of the DiT step failed (%s: %s); running eagerly", type(exc).__name__, exc)
            self.failed = True
            self.reset()
            return None
        finally:
            self.capturing = False
        self.captures += 1
        log.info("captured a CUDA graph for the DiT step x=%s", tuple(x.shape))
        return _Graph(graph, static_x, static_t, out)


@dataclass
class _CallGraph:
    graph: torch.cuda.CUDAGraph
    x: torch.Tensor
    out: torch.Tensor


class CallGraphs:
    """CUDA graphs of a one-tensor function whose other state lives at fixed addresses.

    Made for the tiny codec's steady-state chunk steps (``StreamingTAEHV``): a TAEHV chunk is
    ~100 small convolutions and activations, and eagerly the GPU waits on their launches (on the
    H100 a 1.3B chunk's encode + decode spanned 7.9 ms for ~4 ms of kernels). Per ``key`` (the
    caller's: shapes, dtype, state identity) the first ``warmup_calls`` run eagerly, the next is
    captured on a side stream and replayed from then on; ``x`` is copied into the graph's static
    input, the output cloned out of its pool. The caller guarantees that ``fn``'s state (e.g. the
    codec's frame memory) is updated in place, never reallocated, while the graph lives. One pool
    serves every graph of one ``CallGraphs``: they replay one at a time, in stream order. A capture
    that fails logs a warning and leaves this object eager for good.
    """

    def __init__(self, name: str, warmup_calls: int = 2) -> None:
        self.name = name
        self.warmup_calls = max(int(warmup_calls), 1)
        self.failed = False
        self.captures = 0
        self.replays = 0
        self._seen: dict[tuple[Any, ...], int] = {}
        self._graphs: dict[tuple[Any, ...], _CallGraph] = {}
        self._pool: Any = None

    def eligible(self, x: torch.Tensor) -> bool:
        """Whether a call on ``x`` may be served from a graph (CUDA, grad off, not capturing)."""
        return (not self.failed and x.is_cuda and not torch.is_grad_enabled()
                and not torch.cuda.is_current_stream_capturing())

    def run(self, key: tuple[Any, ...], fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """``fn(x)``: eager while ``key`` warms up or when not ``eligible``, else a graph replay."""
        if not self.eligible(x):
            return fn(x)
        key = (*key, tuple(x.shape), x.dtype, x.device)
        g = self._graphs.get(key)
        if g is None:
            seen = self._seen.get(key, 0)
            if seen < self.warmup_calls:
                self._seen[key] = seen + 1
                return fn(x)
            g = self._capture(fn, x)
            if g is None:
                return fn(x)
            self._graphs[key] = g
        g.x.copy_(x)
        g.graph.replay()
        self.replays += 1
        return g.out.clone()

    def _capture(self, fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> _CallGraph | None:
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        graph = torch.cuda.CUDAGraph()
        try:  # on a side stream without ``torch.cuda.graph``'s device sync (see StepGraphs._capture)
            static_x = x.clone()
            side = torch.cuda.Stream(device=x.device)
            side.wait_stream(torch.cuda.current_stream(x.device))
            with torch.cuda.stream(side):
                graph.capture_begin(pool=self._pool, capture_error_mode="thread_local")
                try:
                    out = fn(static_x)
                finally:
                    graph.capture_end()
            torch.cuda.current_stream(x.device).wait_stream(side)
        except Exception as exc:  # noqa: BLE001 - an optimisation: any failure falls back to eager, loudly
            log.warning("CUDA graph capture of %s failed (%s: %s); running it eagerly", self.name, type(exc).__name__, exc)
            self.failed = True
            self._graphs.clear()
            self._pool = None
            return None
        self.captures += 1
        log.info("captured a CUDA graph for %s x=%s", self.name, tuple(x.shape))
        return _CallGraph(graph, static_x, out)
