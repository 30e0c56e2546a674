"""What one stage does with each record: its blocks over a micro-step, with its own KV caches.

:class:`StageExecutor` keeps the stage's caches (``KVCache`` with the stage's layers only): one
batch-1 cache for the warm-up and for steps in turn, and one batch-1 cache per stream-batch slot
(``Step.row``) once the stream batch starts (``Step.expand``: copies of the warm-up cache, as
``KVCache.expand_batch`` makes one row per slot in one process). All of them share one
cross-attention cache, refilled from the last context sent (``Step.ctx``) whenever it is stale (a
new context, a LoRA switch). Records other than steps: ``command`` (``SetLora``: merged into this
stage's copy of the weights; ``SetDecoder``: the last stage's decoder) and ``reset``.

Tensors of a step record: first stage in: ``x`` ``[1, 16, F, h, w]`` and ``t`` ``[1]`` (plus the
context ``[1, L, text_dim]`` when ``ctx``); between stages: ``tokens`` ``[1, F'*T, dim]``, ``x``,
``t`` (and the context). The last stage computes ``x0`` ``[1, 16, F, h, w]`` (``x - sigma * v``).
"""

from __future__ import annotations

import torch

from livestyle.models.kv_cache import BlockSlots, CrossAttnCache, KVCache
from livestyle.models.scheduler import sigma_for_timestep, x0_from_velocity
from livestyle.diffusion.stream import StreamPipeline
from livestyle.engine.commands import Reset, SetDecoder, SetLora
from livestyle.errors import PipelineError
from livestyle.parallel.stage_dit import StageDiT
from livestyle.planning.stage_split import StageSpan

__all__ = ["StageExecutor"]


class StageExecutor:
    """Stage ``span`` of a stream over the pipeline ``pipe`` (opened in this process; only its
    family, controls, LoRA merger, decoder and the DiT's modules of this stage are used)."""

    def __init__(self, pipe: StreamPipeline, span: StageSpan) -> None:
        self.pipe = pipe
        self.span = span
        self.dit = StageDiT(pipe.models.dit, span)
        self.family = pipe.family
        self.device = pipe.device
        self.dtype = pipe.dtype
        self.warm: KVCache | None = None
        self.rows: list[KVCache] = []
        self.handles: dict[int, BlockSlots] = {}
        self.cross = CrossAttnCache(self.dit.config, batch=1, device=self.device, dtype=self.dtype)
        self.ctx: torch.Tensor | None = None
        self.steps_run = 0

    # ------------------------------------------------------------------ records
    def reset(self) -> None:
        """A new stream: every cache forgotten (the next step allocates), the decoder restarted."""
        self.warm, self.rows, self.handles = None, [], {}
        self.ctx = None
        self.cross.reset()
        if self.span.last:
            self.pipe.apply(Reset())

    def command(self, command: object) -> None:
        """A stage-wide command, in step order: a LoRA switch (this stage's weights), a decoder change."""
        if isinstance(command, SetLora):
            self.pipe.apply(command)
            self.cross.reset()  # cross K/V come from text_embedding and cross_attn.k/v
        elif isinstance(command, tuple) and command[:1] == ("warm_loras",):
            self.pipe.warm_loras(command[1])  # operator-given LoRA paths allowed and read here too
        elif isinstance(command, SetDecoder):
            if self.span.last:
                self.pipe.apply(command)
        else:
            raise PipelineError(f"stage {self.span.rank} got a command it does not apply: {type(command).__name__}")

    # ------------------------------------------------------------------ steps
    def _allocate(self, tokens_per_frame: int, latents: int) -> KVCache:
        """A batch-1 cache of the stage's layers, as ``Denoiser._allocate_cache`` sizes the stream's."""
        f = self.family
        if f.kv_mode == "recompute":
            raise PipelineError("Krea's recompute mode does not run on pipeline stages")
        frames, n = f.kv_cache_frames, latents
        cache = KVCache.allocate(
            self.dit.config, batch=1, frames=frames, tokens_per_frame=tokens_per_frame,
            sink_frames=f.sink_frames, device=self.device, dtype=self.dtype,
            rope_refresh=f.rope_refresh_frames or None,
            rope_rebase=(frames - n) if f.rope_refresh_frames else None,
            adaptive_sink_threshold=f.adapt_sink_threshold if f.adapt_sink_threshold > -1 else None,
        )
        cache.cross = self.cross
        return cache

    def _cache(self, meta: dict, tokens_per_frame: int) -> KVCache:
        row = int(meta["row"])
        if meta["expand"]:
            if self.warm is None:
                raise PipelineError("the stream batch starts before its warm-up chunk reached this stage")
            self.rows = []
            for _ in range(int(meta["expand"])):
                row_cache = self.warm.expand_batch(1)
                row_cache.cross = self.cross
                self.rows.append(row_cache)
        if row < 0:
            if self.warm is None:
                self.warm = self._allocate(tokens_per_frame, int(meta["latents"]))
            return self.warm
        if row >= len(self.rows):
            raise PipelineError(f"step for stream-batch row {row} but this stage holds {len(self.rows)} rows")
        return self.rows[row]

    @torch.no_grad()
    def run(self, meta: dict, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
        """Run step ``meta`` on ``tensors`` (module docstring); returns the tensors for the next
        stage (``tokens, x, t``), or on the last stage ``[x0]``."""
        first, last = self.span.first, self.span.last
        if first:
            x, t = tensors[0], tensors[1]
            rest = tensors[2:]
            tokens = None
        else:
            tokens, x, t = tensors[0], tensors[1], tensors[2]
            rest = tensors[3:]
        ctx = rest[0] if meta["ctx"] else None
        if ctx is not None:
            self.ctx = ctx
            self.cross.reset()
        if not self.cross.filled:
            if self.ctx is None:
                raise PipelineError(f"stage {self.span.rank} has no text context to attend to")
            self.dit.encode_prompt(self.ctx, self.cross)
        grid = self.dit.grid(tuple(x.shape))
        cache = self._cache(meta, grid[1] * grid[2])
        row = int(meta["row"])
        if meta["begin"]:
            block = cache.begin_block(grid[0])
            self.handles[row] = block
        else:
            block = self.handles[row]
        if meta["hold"] is not None:  # a slot with no chunk yet: its next block lands where this one did
            cache.next_frame.fill_(int(meta["hold"]))
            cache.next_pos.fill_(int(meta["hold"]))
        timestep = t[:, None].expand(x.shape[0], grid[0])
        if tokens is None:
            tokens = self.dit.embed(x)
        tokens = self.dit.blocks_forward(tokens, timestep, grid, cache, block)
        self.steps_run += 1
        if not last:
            out = [tokens, x, t]
            if ctx is not None:
                out.append(ctx)
            return out
        v = self.dit.head(tokens, timestep, tuple(x.shape), x.dtype)
        return [x0_from_velocity(x, v, sigma_for_timestep(t, self.family.shift))]
