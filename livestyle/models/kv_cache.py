"""Preallocated KV caches for the causal Wan DiT: self-attention (sink + ring) and cross-attention.

The cache is an object you pass to ``CausalWanDiT.forward(..., cache=, block=)``; all of its state
(K/V buffers, slot bookkeeping, positions) lives in tensors on the model's device at fixed
addresses, and nothing in it calls ``.item()`` on the hot path, so compiled / CUDA-graphed
forwards stay valid.

Layout
------
Self-attention K/V: ``k``, ``v``: ``[num_layers, B, S * T, heads, head_dim]`` in the model dtype,
zero-initialised, where ``S`` = ``frames`` (capacity in latent frames) and ``T`` =
``tokens_per_frame`` ((H/16)·(W/16), 1560 at 480×832). Keys are stored *after* RoPE (their
temporal position is baked in), values raw. Slot ``s`` holds tokens ``[s*T, (s+1)*T)``.

Slots ``0 .. sink_frames-1`` are the sink: absolute frames ``0 .. sink_frames-1`` land there and
never move or roll. The other ``R = frames - sink_frames`` slots form a ring: absolute frame ``f``
(≥ sink) goes to slot ``sink + (f - sink) % R``, so writing a new frame evicts exactly the oldest
non-sink frame, and re-running a block writes the very same slots (Self-Forcing's clean re-run
overwrites the noisy K/V). Slots fill in order, so the valid keys are always a prefix.

Per batch item (StreamDiffusionV2 stream batch: each denoising-step slot owns its cache row and
its own positions): ``slot_frame [B, S]`` (absolute frame in each slot, -1 empty), ``slot_pos
[B, S]`` (its RoPE temporal position), ``next_frame [B]`` and ``next_pos [B]`` (the absolute
frame and the RoPE position the next ``begin_block`` starts each row at; public, and may be
written between blocks, e.g. to hold back stream-batch rows that carry no chunk yet).

RoPE positions stay bounded for streams of hours: a block whose start position reaches
``rope_refresh`` (SDV2: 50; default ``1024 - block frames``) restarts at ``rope_rebase``
(SDV2: ``frames - block frames`` = 5 for a 6-frame cache), cached keys keeping their positions —
StreamDiffusionV2's t_refresh re-base. Krea's bounded placement comes from recomputing the cache
every block (``reset`` + one block-causal pass over the context frames at positions 0..k-1, the
new block then lands at k). Positions are always clamped into the 1024-entry table.

Usage
-----
::

    cache = KVCache.allocate(model.config, batch=1, frames=6, tokens_per_frame=T, sink_frames=3,
                             device=dev, dtype=torch.bfloat16)
    model.encode_prompt(context, cache.cross)          # once per prompt (or lazily in forward)
    blk = cache.begin_block(num_frames=3)              # new block: claims slots, evicts the oldest
    v = model(x_t, t, cache=cache, block=blk)          # denoising step; writes K/V at blk's slots
    v = model(x0, torch.zeros_like(t), cache=cache, block=blk)  # clean re-run: same slots
    cache.cross.reset()                                # prompt changed: refill on the next call

    cache.reset(); blk = cache.begin_block(3)          # Krea recompute: context frames at 0..2,
    model(ctx_latents, zeros, cache=cache, block=blk, causal_block_frames=3)  # block-causal pass
    blk = cache.recent_block(9)                        # LongLive recache: rewrite last 9 frames
                                                       # at their positions (sinks untouched)

    cache.set_next_position(5)                         # manual RoPE re-base (SDV2 refresh is automatic)

    warm = KVCache.allocate(..., batch=1, ...)         # SDV2 stream batch: warm up with batch 1,
    cache = warm.expand_batch(num_steps)               # then one cache row per denoising step;
    blk = cache.begin_block(1)                         # every row advances one frame per call

``block`` handles are views of buffers owned by the cache (one set per block size), so a handle
stays valid for re-runs until the next ``begin_block``/``recent_block`` of the same size.

Adaptive sink (StreamDiffusionV2 ``adapt_sink_threshold``)
---------------------------------------------------------
With ``adaptive_sink_threshold=thr`` the cache reproduces ``CausalWanSelfAttention.forward`` of
the reference (``models/wan/causal_model.py``, streamdiffusionv2 0.1.1), whose per-layer, per-row
"evict list" holds the end offsets of the slots to overwrite next. Every write of a one-frame
block first compares the per-frame mean key and mean value of each sink slot (as the buffer
holds them *before* this write, zeros while unfilled) with the new frame's (cosine similarity,
averaged over K and V); when the minimum is below ``thr`` the least similar sink slot is pushed on
the *front* of that layer's list. Once the cache is full (the frame lies at or past slot ``S``),
a frame goes to the front entry: a queued sink slot (newest first) or else the oldest ring slot;
the entry is then popped (a ring slot rotates to the back, a sink slot is dropped), so a frame
stored in the sink does not advance the ring. While filling, frames are written contiguously and
queued sink slots wait. Device state, all ``[num_layers, B]``:

- ``sink_queue [L, B, Q]`` long (sink slot indices, a stack: the front is ``sink_queue[..., n-1]``)
  and ``sink_queued [L, B]`` (its length n);
- ``sink_refreshes [L, B]`` long: frames stored into a sink slot so far (the ring lags this many
  frames behind the plain ``sink + (f - sink) % R`` placement);
- ``pop_pending [L, B]`` bool: this block wrote a full-cache frame; its list entry is popped at the
  next ``begin_block``. Deferring the pop to the end of the block is exactly the reference's order
  (push, read front, pop) for one call per block, and equals its batch-1 multi-step rule (every
  step writes the front, only the last step pops) for repeated calls with the same handle.

Placement then differs per layer, so writes compute their own token indices; ``slot_frame`` /
``slot_pos`` keep the plain placement and still tell which slots hold keys (a prefix, then all),
which is all a SDV2 forward needs; ``recent_block`` and block-causal / ``kv_bias`` masks, which
need the exact placement, refuse this mode. ``Q`` (``sink_queue_capacity``, default 64) bounds the
queue: the reference's list only grows while the cache fills (at most one push per call, and
after that a push is matched by a pop every block), so a push onto a full queue is dropped only in
sequential multi-step use past ``Q`` unmatched pushes. Blocks of several frames never compare
(as upstream) and take the next ring slots after the lag.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import torch

from livestyle.models.attention import KeyMask
from livestyle.models.kernels.kv_write import frame_means, scatter_rows

__all__ = ["BlockSlots", "CrossAttnCache", "KVCache", "ModelDims"]


class ModelDims(Protocol):
    """The sizes a cache needs from a model config (``DiTConfig`` satisfies this)."""

    @property
    def num_layers(self) -> int: ...
    @property
    def num_heads(self) -> int: ...
    @property
    def head_dim(self) -> int: ...
    @property
    def text_len(self) -> int: ...
    @property
    def rope_max_frames(self) -> int: ...


@dataclass(frozen=True)
class BlockSlots:
    """Where one block of ``num_frames`` new latent frames lives in a ``KVCache``.

    ``frames``: ``[B, n]`` long absolute frame indices; ``slots``: ``[B, n]`` long cache slots;
    ``positions``: ``[B, n]`` long RoPE temporal positions; ``start_frame``: ``[B]`` long
    (``frames[:, 0]``); ``write_index``: ``[B*n*T]`` long flat token indices into the cache's
    ``[B*S*T]`` token axis, in the block's (batch, frame, token) order.
    """

    num_frames: int
    frames: torch.Tensor
    slots: torch.Tensor
    positions: torch.Tensor
    start_frame: torch.Tensor
    write_index: torch.Tensor


class CrossAttnCache:
    """Cross-attention K/V per layer, computed once per prompt from the text-embedded context.

    ``k``, ``v``: ``[num_layers, B, text_len, heads, head_dim]``. ``filled`` is a host-side flag
    (not device state): ``CausalWanDiT.encode_prompt`` fills the cache and sets it; ``reset()``
    clears it on a prompt change so the next forward with a context refills it.
    """

    def __init__(self, dims: ModelDims, *, batch: int, device: torch.device | str, dtype: torch.dtype) -> None:
        shape = (dims.num_layers, batch, dims.text_len, dims.num_heads, dims.head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.filled = False

    @property
    def batch(self) -> int:
        return int(self.k.shape[1])

    def reset(self) -> None:
        """Mark empty (prompt changed); the buffers are overwritten by the next fill."""
        self.filled = False


class KVCache:
    """Self-attention cache for every layer (sink + ring of latent frames) plus a ``CrossAttnCache``.

    Args:
        dims: model sizes (``DiTConfig``).
        batch: B (1, or the number of stream-batch slots).
        frames: capacity S in latent frames, *including* the block being generated
            (Self-Forcing: 21; LongLive: 12; SDV2: 6; Krea: 3 context + 3 block = 6).
        tokens_per_frame: T = (H/16)·(W/16).
        sink_frames: frames 0..sink-1 are kept forever (SDV2: 3, LongLive: 3, Krea: 1 — the first
            frame, which the KV attention bias leaves alone).
        rope_refresh: start position at which a new block is re-based (SDV2 ``t_refresh`` = 50);
            default: only when the table would overflow.
        rope_rebase: the position a re-based block starts at (default ``frames - n``).
        adaptive_sink_threshold: SDV2 adaptive sink refresh (0.2 upstream; module docstring);
            ``None`` = off.
        sink_queue_capacity: most sink refreshes that may wait in a layer's queue (module docstring).
    """

    def __init__(self, dims: ModelDims, *, batch: int, frames: int, tokens_per_frame: int, sink_frames: int = 0,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                 rope_refresh: int | None = None, rope_rebase: int | None = None,
                 adaptive_sink_threshold: float | None = None, sink_queue_capacity: int = 64) -> None:
        if batch < 1 or frames < 1 or tokens_per_frame < 1:
            raise ValueError(f"cache sizes must be positive, got {batch=} {frames=} {tokens_per_frame=}")
        if not 0 <= sink_frames < frames:
            raise ValueError(f"sink_frames must be in [0, frames), got {sink_frames=} {frames=}")
        if sink_queue_capacity < 1:
            raise ValueError(f"sink_queue_capacity must be positive, got {sink_queue_capacity=}")
        self.num_layers = dims.num_layers
        self.frames = frames
        self.tokens_per_frame = tokens_per_frame
        self.sink_frames = sink_frames
        self.max_positions = dims.rope_max_frames
        self.rope_refresh = rope_refresh
        self.rope_rebase = rope_rebase
        self.adaptive_sink_threshold = adaptive_sink_threshold
        shape = (dims.num_layers, batch, frames * tokens_per_frame, dims.num_heads, dims.head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.slot_frame = torch.full((batch, frames), -1, device=device, dtype=torch.long)
        self.slot_pos = torch.zeros((batch, frames), device=device, dtype=torch.long)
        self.next_frame = torch.zeros(batch, device=device, dtype=torch.long)
        self.next_pos = torch.zeros(batch, device=device, dtype=torch.long)
        lb = (dims.num_layers, batch)
        self.sink_queue = torch.zeros((*lb, sink_queue_capacity), device=device, dtype=torch.long)
        self.sink_queued = torch.zeros(lb, device=device, dtype=torch.long)
        self.sink_refreshes = torch.zeros(lb, device=device, dtype=torch.long)
        self.pop_pending = torch.zeros(lb, device=device, dtype=torch.bool)
        # adaptive sink: the token mean of every slot's K and V [L, B, S, heads*head_dim], kept up to
        # date by write(), so the per-chunk similarity reads 2*S vectors instead of re-averaging
        # the sink's K/V (3 frames x T tokens per layer and chunk: a third of a GB per 14B layer at B=4)
        mean_slots = frames if adaptive_sink_threshold is not None else 0
        means = (dims.num_layers, batch, mean_slots, dims.num_heads * dims.head_dim)
        self.slot_mean_k = torch.zeros(means, device=device, dtype=dtype)
        self.slot_mean_v = torch.zeros(means, device=device, dtype=dtype)
        self.cross = CrossAttnCache(dims, batch=batch, device=device, dtype=dtype)
        self._handles: dict[int, BlockSlots] = {}
        self._dims = dims
        self._full = False
        self._full_probe: tuple[torch.Tensor, torch.cuda.Event | None] | None = None

    @classmethod
    def allocate(cls, dims: ModelDims, *, batch: int, frames: int, tokens_per_frame: int, sink_frames: int = 0,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                 rope_refresh: int | None = None, rope_rebase: int | None = None,
                 adaptive_sink_threshold: float | None = None, sink_queue_capacity: int = 64) -> KVCache:
        """Same as the constructor (reads better at call sites)."""
        return cls(dims, batch=batch, frames=frames, tokens_per_frame=tokens_per_frame, sink_frames=sink_frames,
                   device=device, dtype=dtype, rope_refresh=rope_refresh, rope_rebase=rope_rebase,
                   adaptive_sink_threshold=adaptive_sink_threshold, sink_queue_capacity=sink_queue_capacity)

    # ------------------------------------------------------------------ sizes
    @property
    def batch(self) -> int:
        return int(self.k.shape[1])

    @property
    def ring_frames(self) -> int:
        return self.frames - self.sink_frames

    @property
    def device(self) -> torch.device:
        return self.k.device

    @property
    def dtype(self) -> torch.dtype:
        return self.k.dtype

    @property
    def adaptive_sink(self) -> bool:
        """Whether the SDV2 adaptive sink refresh is on (it needs sink frames)."""
        return self.adaptive_sink_threshold is not None and self.sink_frames > 0

    def sink_refresh_count(self) -> torch.Tensor:
        """``[num_layers, B]`` long: frames stored into a sink slot so far, the current block's
        included. Device tensor; reading it on the host syncs (not for the hot path)."""
        return self.sink_refreshes + (self.pop_pending & (self.sink_queued > 0)).long()

    @property
    def full(self) -> bool:
        """Host-side: every slot of every row has held a frame since the last ``reset`` (so the
        plain key mask is all zeros and attention can run unmasked).

        Never syncs: ``begin_block`` queues a device-side check (``slot_frame >= 0``, a
        non-blocking copy to pinned memory plus an event) and a later ``begin_block`` reads it once
        the event has completed. Filled slots only empty on ``reset``, so a late "full" is still
        true; the flag may turn on one or two blocks after the cache actually filled (the masked
        path covers those blocks, with the same result).
        """
        return self._full

    def _check_full(self) -> None:
        """Read a finished fullness probe, then queue a new one (``full``)."""
        if self._full:
            return
        probe = self._full_probe
        if probe is not None:
            value, event = probe
            if event is None or event.query():
                self._full_probe = None
                if bool(value):
                    self._full = True
                    return
        if self._full_probe is not None:
            return
        flag = (self.slot_frame >= 0).all()
        if self.device.type != "cuda":
            self._full = bool(flag)
            return
        host = torch.empty((), dtype=torch.bool, pin_memory=True)
        host.copy_(flag, non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        self._full_probe = (host, event)

    def nbytes(self) -> int:
        """Bytes held by the self- and cross-attention K/V buffers."""
        return sum(t.numel() * t.element_size() for t in (self.k, self.v, self.cross.k, self.cross.v))

    # ------------------------------------------------------------------ state changes
    def reset(self, *, zero: bool = True) -> None:
        """Forget every frame (positions restart at 0): the cache is then exactly a new one (K/V
        zeroed too, so masked slots hold what a fresh allocation holds; ``zero=False`` skips that
        for a caller that rewrites every slot it reads, e.g. Krea's per-chunk recompute). The
        cross-attention cache is kept."""
        if zero:
            self.k.zero_()
            self.v.zero_()
            self.slot_mean_k.zero_()
            self.slot_mean_v.zero_()
        self.slot_frame.fill_(-1)
        self.slot_pos.zero_()
        self.next_frame.zero_()
        self.next_pos.zero_()
        self.sink_queued.zero_()
        self.sink_refreshes.zero_()
        self.pop_pending.zero_()
        self._full = False
        self._full_probe = None

    def set_next_position(self, position: int | torch.Tensor) -> None:
        """Re-base by hand: the next new block starts at RoPE frame ``position`` (int or ``[B]``)."""
        self.next_pos.copy_(torch.as_tensor(position, device=self.device).expand_as(self.next_pos))

    def _slots_for(self, frames: torch.Tensor, lag: torch.Tensor | None = None) -> torch.Tensor:
        """Plain placement of absolute ``frames`` ``[B, n]``; ``lag`` ``[B]``: ring frames skipped
        (adaptive sink: frames that went into the sink instead)."""
        if self.ring_frames == 0:
            return frames.clamp(max=self.frames - 1)
        ring_frames = frames - self.sink_frames if lag is None else frames - self.sink_frames - lag[:, None]
        ring = self.sink_frames + ring_frames.remainder(self.ring_frames)
        return torch.where(frames < self.sink_frames, frames, ring)

    def _pop_sink_queue(self) -> None:
        """The deferred pop of the blocks just finished (module docstring): where the front entry
        was a queued sink slot, drop it and count the refresh; a ring entry needs nothing (the ring
        advances with the frame index)."""
        popped = self.pop_pending & (self.sink_queued > 0)
        self.sink_queued.sub_(popped.long())
        self.sink_refreshes.add_(popped.long())
        self.pop_pending.zero_()

    def _handle(self, n: int, frames: torch.Tensor, slots: torch.Tensor, positions: torch.Tensor) -> BlockSlots:
        t = self.tokens_per_frame
        b = self.batch
        tok = torch.arange(t, device=self.device)
        rows = torch.arange(b, device=self.device)[:, None] * self.frames
        write = ((rows + slots)[..., None] * t + tok).reshape(-1)
        handle = self._handles.get(n)
        if handle is None:
            handle = BlockSlots(n, frames.clone(), slots.clone(), positions.clone(), frames[:, 0].clone(), write.clone())
            self._handles[n] = handle
        else:  # same tensors every time: fixed addresses for CUDA graphs
            handle.frames.copy_(frames)
            handle.slots.copy_(slots)
            handle.positions.copy_(positions)
            handle.start_frame.copy_(frames[:, 0])
            handle.write_index.copy_(write)
        return handle

    def begin_block(self, num_frames: int) -> BlockSlots:
        """Claim slots for a new block of ``num_frames`` latent frames and advance every batch row.

        The block's frames go to the sink while it is not full, then to the ring, evicting the
        oldest non-sink frames. The handle is reused for every denoising step and the clean re-run
        of this block. No host sync.
        """
        n = int(num_frames)
        if n < 1:
            raise ValueError(f"a block needs at least one frame, got {num_frames=}")
        if self.ring_frames < n and self.frames < n:
            raise ValueError(f"a {n}-frame block does not fit a {self.frames}-frame cache")
        if 0 < self.ring_frames < n:
            raise ValueError(
                f"a {n}-frame block does not fit the {self.ring_frames}-frame ring "
                f"({self.frames} frames - {self.sink_frames} sink); make the cache larger"
            )
        if self.adaptive_sink:
            self._pop_sink_queue()
        ar = torch.arange(n, device=self.device)
        frames = self.next_frame[:, None] + ar
        refresh = min(self.rope_refresh if self.rope_refresh is not None else self.max_positions, self.max_positions - n)
        rebase = self.rope_rebase if self.rope_rebase is not None else max(self.frames - n, 0)
        start = torch.where(self.next_pos >= refresh, torch.full_like(self.next_pos, rebase), self.next_pos)
        positions = (start[:, None] + ar).clamp(max=self.max_positions - 1)
        slots = self._slots_for(frames)
        self.slot_frame.scatter_(1, slots, frames)
        self.slot_pos.scatter_(1, slots, positions)
        self.next_frame.add_(n)
        self.next_pos.copy_(start + n)
        self._check_full()
        return self._handle(n, frames, slots, positions)

    def recent_block(self, num_frames: int) -> BlockSlots:
        """A handle over the last ``num_frames`` frames already in the cache, at their own slots
        and positions (LongLive's KV re-cache on a prompt switch; the sink is never included).

        Not a hot-path call: it checks on the host that those frames are all still in the ring.
        """
        n = int(num_frames)
        if self.adaptive_sink:
            raise ValueError("recent_block needs the plain ring placement; it cannot be used with the adaptive sink")
        frames = self.next_frame[:, None] - n + torch.arange(n, device=self.device)
        if n < 1 or n > self.ring_frames or bool((frames[:, 0] < self.sink_frames).any()):
            raise ValueError(
                f"recent_block({n}) must name frames still in the {self.ring_frames}-frame ring "
                f"(and not the {self.sink_frames} sink frames)"
            )
        slots = self._slots_for(frames)
        positions = self.slot_pos.gather(1, slots)
        return self._handle(n, frames, slots, positions)

    def expand_batch(self, batch: int, out: KVCache | None = None) -> KVCache:
        """A cache with ``batch`` rows, each a copy of row 0 (SDV2: replicate the warmed-up cache to
        one row per denoising step). The cross-attention cache is copied too.

        ``out``: a cache of the same geometry with ``batch`` rows to write into instead of
        allocating one (a stream restarting reuses its buffers, so CUDA graphs captured on them
        stay valid).
        """
        if out is not None and (out.batch != batch or out.k.shape[2:] != self.k.shape[2:] or out.k.dtype != self.k.dtype):
            raise ValueError(f"expand_batch into a cache of another geometry: {out.k.shape=} vs {self.k.shape=}, {batch=}")
        new = out if out is not None else KVCache(
            self._dims, batch=batch, frames=self.frames, tokens_per_frame=self.tokens_per_frame,
            sink_frames=self.sink_frames, device=self.device, dtype=self.dtype,
            rope_refresh=self.rope_refresh, rope_rebase=self.rope_rebase,
            adaptive_sink_threshold=self.adaptive_sink_threshold,
            sink_queue_capacity=self.sink_queue.shape[-1])
        new._full_probe = None
        for dst, src in ((new.k, self.k), (new.v, self.v), (new.cross.k, self.cross.k), (new.cross.v, self.cross.v),
                         (new.sink_queue, self.sink_queue), (new.sink_queued, self.sink_queued),
                         (new.sink_refreshes, self.sink_refreshes), (new.pop_pending, self.pop_pending),
                         (new.slot_mean_k, self.slot_mean_k), (new.slot_mean_v, self.slot_mean_v)):
            dst.copy_(src[:, :1].expand_as(dst))
        for dst, src in ((new.slot_frame, self.slot_frame), (new.slot_pos, self.slot_pos),
                         (new.next_frame, self.next_frame), (new.next_pos, self.next_pos)):
            dst.copy_(src[:1].expand_as(dst))
        new.cross.filled = self.cross.filled
        new._full = self._full  # every row is a copy of row 0, which is full if all rows were
        return new

    # ------------------------------------------------------------------ used by the model
    def write(self, layer: int, block: BlockSlots, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write the block's ``k``/``v`` ``[B, n*T, heads, head_dim]`` at its slots; return the
        layer's full ``[B, S*T, heads, head_dim]`` buffers for attention."""
        kb, vb = self.k[layer], self.v[layer]
        if not self.adaptive_sink:
            index = block.write_index
        else:
            means = frame_means(k, v, self.tokens_per_frame, kb.dtype)  # [B, n, D]: each new frame's
            index, slots = self._adaptive_write_index(layer, block, *means)
            at = slots[..., None].expand(-1, -1, means[0].shape[-1])
            self.slot_mean_k[layer].scatter_(1, at, means[0])
            self.slot_mean_v[layer].scatter_(1, at, means[1])
        scatter_rows(k, v, kb, vb, index)
        return kb, vb

    def _adaptive_write_index(self, layer: int, block: BlockSlots, k_mean: torch.Tensor,
                              v_mean: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Adaptive sink: queue a sink refresh if the new frame is unlike a sink frame, then place
        the block for this layer (module docstring). ``k_mean``/``v_mean``: the block's per-frame
        token means ``[B, n, D]`` in the cache dtype. Returns ``[B*n*T]`` token indices and the
        ``[B, n]`` slots. Device-side selection only; no host sync."""
        b, t, s, n = self.batch, self.tokens_per_frame, self.sink_frames, block.num_frames
        queue, queued = self.sink_queue[layer], self.sink_queued[layer]  # [B, Q], [B]
        if n == 1:
            sim = 0.5 * (  # [B, s]; the reference's means (kept per slot) and cosines, in the cache dtype
                torch.cosine_similarity(self.slot_mean_k[layer][:, :s], k_mean, dim=-1)
                + torch.cosine_similarity(self.slot_mean_v[layer][:, :s], v_mean, dim=-1)
            )
            push = (sim.min(dim=1).values < self.adaptive_sink_threshold) & (queued < queue.shape[1])
            at = queued.clamp(max=queue.shape[1] - 1)[:, None]
            queue.scatter_(1, at, torch.where(push[:, None], sim.argmin(dim=1, keepdim=True), queue.gather(1, at)))
            queued.add_(push.long())
        lag = self.sink_refreshes[layer].remainder(max(self.ring_frames, 1))
        slots = self._slots_for(block.frames, lag)  # [B, n]
        if n == 1:
            full = block.frames[:, 0] >= self.frames  # [B]: the reference's "cache is full" branch
            front = queue.gather(1, (queued - 1).clamp(min=0)[:, None])  # [B, 1]
            slots = torch.where((full & (queued > 0))[:, None], front, slots)
            self.pop_pending[layer] |= full
        tok = torch.arange(t, device=self.device)
        rows = torch.arange(b, device=self.device)[:, None] * self.frames
        return ((rows + slots)[..., None] * t + tok).reshape(-1), slots

    def key_mask(self, block: BlockSlots, *, causal_block_frames: int | None = None,
                 kv_bias: float | None = None, dtype: torch.dtype = torch.float32) -> KeyMask:
        """The keys the block's queries may see, built once per forward and shared by all layers.

        Plain call: every filled slot (a prefix of the buffer) — ``bias`` ``[B, 1, 1, S*T]``.
        ``causal_block_frames=k``: block-causal among the block's own frames (blocks of k frames
        counted from ``block.start_frame``; earlier cached frames stay visible) — ``[B, 1, n*T, S*T]``.
        ``kv_bias`` (Krea, in (0, 1]): adds ``log(kv_bias)`` to keys of past frames that are not
        sink frames and not in the current block.
        """
        if self.adaptive_sink and (causal_block_frames is not None or (kv_bias is not None and kv_bias != 1.0)):
            raise ValueError("block-causal and kv_bias masks need the plain ring placement; not with the adaptive sink")
        t = self.tokens_per_frame
        valid = self.slot_frame >= 0  # [B, S]
        zero = torch.zeros((), device=self.device, dtype=dtype)
        neg = torch.full((), float("-inf"), device=self.device, dtype=dtype)
        if causal_block_frames is None:
            allow = valid[:, None, :]  # [B, 1, S]
        else:
            kb = int(causal_block_frames)
            rel_k = self.slot_frame - block.start_frame[:, None]  # [B, S]
            rel_q = block.frames - block.start_frame[:, None]  # [B, n]
            blk_k = torch.div(rel_k, kb, rounding_mode="floor")
            allow = valid[:, None, :] & (blk_k[:, None, :] <= (rel_q // kb)[:, :, None])  # [B, n, S]
        bias = torch.where(allow, zero, neg)
        if kv_bias is not None and kv_bias != 1.0:
            if not 0.0 < kv_bias <= 1.0:
                raise ValueError(f"kv_bias must be in (0, 1], got {kv_bias=}")
            past = valid & (self.slot_frame >= self.sink_frames) & (self.slot_frame < block.start_frame[:, None])
            bias = bias + torch.where(past, torch.full((), math.log(kv_bias), device=self.device, dtype=dtype), zero)[:, None, :]
        frame_bias = bias  # [B, 1|n, S]
        bias = bias.repeat_interleave(t, dim=-1)  # [B, 1|n, S*T]
        if causal_block_frames is not None:
            bias = bias.repeat_interleave(t, dim=1)
        prefix = None
        if causal_block_frames is None and (kv_bias is None or kv_bias == 1.0):
            prefix = (valid.sum(1) * t).to(torch.int32)
        return KeyMask(bias=bias[:, None], prefix_len=prefix, frame_bias=frame_bias, tokens_per_frame=t)
