"""The one denoising loop: a chunk's noisy latents in, the clean latents leaving the stream out.

:class:`Denoiser` runs the causal DiT over a chunk for every family (StreamDiffusionV2 and
Self-Forcing inference code; docs/models.md); :class:`~livestyle.diffusion.family.FamilyConfig.kv_mode`
switches what the KV cache holds:

- ``stream_batch`` (StreamDiffusionV2): the first chunk runs every step sequentially; then the
  cache is replicated to one row per step and each chunk enters slot 0 of a ``[steps, 16, F, h, w]``
  batch; ONE transformer call advances every slot one step, slot ``i < steps-1`` is re-noised to
  step ``i+1``, the last slot leaves finished. Output lags the input by ``steps - 1`` chunks.
  With ``FamilyConfig.stream_batch`` false (SDV2's ``single-wo`` mode,
  ``CausalStreamInferencePipeline.inference_wo_batch``) every chunk takes the warm-up's path
  instead: its steps run in turn at batch 1 on the same ``BlockSlots``, each step's K/V overwriting
  the chunk's slots (the last step's stay; no clean re-run), and the chunk leaves at once.
- ``rerun`` (Self-Forcing, LongLive): sequential steps, then a call at ``context_noise`` on the
  result overwrites the block's cache slots with clean K/V.
- ``recompute`` (Krea): before each block after the first the cache is rebuilt by one
  block-causal t=0 pass over [first-frame latent, last k-1 clean latents] at positions 0..k-1, and
  the block is generated at k..; generation adds the KV attention bias.

Reference code each mode reproduces: StreamDiffusionV2 ``models/wan/causal_stream_inference.py``
(``prepare``, ``inference_stream``, ``inference_wo_batch``) and ``streamv2v/inference.py`` (``run_inference``,
``compute_noise_scale_and_step``) — checked frame for frame by ``tests/test_pipeline_parity.py``;
Self-Forcing ``pipeline/causal_inference.py`` (steps 3.1–3.3); Krea ``release_server.py``
(``get_clean_context_frames``, ``recompute_kv_cache``, ``generate_block_internal``). Noise is
drawn frame-major ``[B, F, C, h, w]`` as all three do, so a seed gives the authors' noise.

The streaming state it reads and writes (cache, stream-batch slots, clean history) is the
:class:`~livestyle.diffusion.stream_state.StreamState` the caller passes in; the KV caches are kept
across resets in ``caches`` (by batch and geometry) so the DiT's CUDA graphs stay valid.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import torch

from livestyle.models.kv_cache import BlockSlots, KVCache
from livestyle.models.scheduler import add_noise, sigma_for_timestep, x0_from_velocity
from livestyle.diffusion.chunking import ChunkPlan
from livestyle.diffusion.family import FamilyConfig
from livestyle.engine.frames import Frame
from livestyle.diffusion.stream_state import InFlight, StreamModels, StreamState

__all__ = ["Denoiser"]


class Denoiser:
    """The denoising loop of one :class:`~livestyle.diffusion.stream.StreamPipeline` (module docstring).

    ``caches``: the KV caches kept across resets, by ``(batch, tokens per frame, latents, first
    latents)``; the pipeline shares the dict (a LoRA switch resets their cross-attention K/V).
    """

    def __init__(self, models: StreamModels, family: FamilyConfig, *, device: torch.device, dtype: torch.dtype,
                 caches: dict[tuple[Any, ...], KVCache]) -> None:
        self.models = models
        self.family = family
        self.device = device
        self.dtype = dtype
        self.caches = caches

    @property
    def stream_batched(self) -> bool:
        """SDV2 stream batch on: chunks after the first share one call over ``steps`` slots."""
        return self.family.kv_mode == "stream_batch" and self.family.stream_batch

    def _new_cache(self, plan: ChunkPlan) -> KVCache:
        """A cleared batch-1 cache for ``plan``: the one kept from an earlier stream of the same
        geometry (``KVCache.reset``), else a new one."""
        key = (1, plan.tokens_per_frame, plan.latents, plan.first_latents)
        cache = self.caches.get(key)
        if cache is not None:
            cache.reset()
            return cache
        cache = self.caches[key] = self._allocate_cache(plan)
        return cache

    def _expanded_cache(self, cache: KVCache, steps: int, plan: ChunkPlan) -> KVCache:
        """``cache`` replicated to ``steps`` rows (stream batch), into the kept cache of that size."""
        key = (steps, plan.tokens_per_frame, plan.latents, plan.first_latents)
        kept = self.caches.get(key)
        out = cache.expand_batch(steps, out=kept)
        self.caches[key] = out
        return out

    def _allocate_cache(self, plan: ChunkPlan) -> KVCache:
        f = self.family
        n = plan.latents
        if f.kv_mode == "recompute":
            frames, sink = f.recompute_frames + max(plan.latents, plan.first_latents), f.sink_frames
        else:
            frames, sink = f.kv_cache_frames, f.sink_frames
        return KVCache.allocate(
            self.models.dit.config, batch=1, frames=frames, tokens_per_frame=plan.tokens_per_frame,
            sink_frames=sink, device=self.device, dtype=self.dtype,
            rope_refresh=f.rope_refresh_frames or None,
            rope_rebase=(frames - n) if f.rope_refresh_frames else None,
            adaptive_sink_threshold=f.adapt_sink_threshold if f.adapt_sink_threshold > -1 else None,
        )

    def noise(self, st: StreamState, like: torch.Tensor) -> torch.Tensor:
        """Noise shaped like ``like`` ``[B, C, F, h, w]``, drawn frame-major ``[B, F, C, h, w]`` (the
        reference's layout, so a seed reproduces the authors' noise) and permuted."""
        b, ch, fr, h, w = like.shape
        return st.noise.draw((b, fr, ch, h, w), like.dtype).permute(0, 2, 1, 3, 4)

    def dit(self, x: torch.Tensor, t: torch.Tensor, ctx: torch.Tensor, cache: KVCache, block: BlockSlots,
             kv_bias: float | None = None) -> torch.Tensor:
        """One transformer call on ``x`` ``[B, 16, F, h, w]`` at timesteps ``t`` ``[B]``; returns x0 (same layout).

        A cross-attention cache marked stale (a prompt change, a LoRA switch) is refilled in place
        first, in its own small call: a forward that had to fill it would be ineligible for the
        DiT's CUDA graph and run eagerly (the 1.3B: ~1.8x the graph's time) right when the look changes."""
        if not cache.cross.filled:
            self.models.dit.encode_prompt(ctx, cache.cross)
        v = self.models.dit(x, t, ctx, cache=cache, block=block, kv_bias=kv_bias)
        return x0_from_velocity(x, v, sigma_for_timestep(t, self.family.shift))

    def denoise(self, st: StreamState, noisy: torch.Tensor, timesteps: list[float], first_step: torch.Tensor | None,
                ctx: torch.Tensor, frames: list[Frame], prompt_version: int) -> tuple[torch.Tensor | None, list[Frame]]:
        """Denoise one chunk's noisy latents ``[1, 16, F, h, w]`` at ``timesteps`` (``first_step``, a
        0-d device tensor, replaces the first one when given: SDV2's motion controller) with the text
        context ``ctx``; ``prompt_version`` (``PromptState.version``) tells when the prompt changed.

        Returns ``(clean latents of the chunk now leaving the pipeline or None, its input frames)``.
        """
        f = self.family
        dev = self.device
        if st.cache is None:
            st.cache = self._new_cache(st.plan)
        cache = st.cache
        prompt_changed = prompt_version != st.prompt_version
        if prompt_changed:
            cache.cross.reset()
            if f.recache_on_prompt and st.prompt_version >= 0 and st.clean:
                self._recache(st, ctx)
            st.prompt_version = prompt_version

        if self.stream_batched and st.hidden is not None:
            return self._stream_batch_step(st, noisy, timesteps, first_step, ctx, frames)

        # sequential steps: SDV2 warm-up and single-wo (no stream batch), Self-Forcing/LongLive, Krea
        kv_bias = None
        if f.kv_mode == "recompute":
            if st.chunks > 0:
                self._recompute(st, ctx)
            kv_bias = f.attention_bias
        x = noisy
        ts = torch.tensor(timesteps, device=dev, dtype=torch.float32)
        if first_step is not None:
            ts[0] = first_step
        x0 = x
        block = cache.begin_block(x.shape[2])
        for i in range(len(timesteps)):
            x0 = self.dit(x, ts[i : i + 1], ctx, cache, block, kv_bias)
            if i + 1 < len(timesteps):
                x = add_noise(x0, self.noise(st, x0), sigma_for_timestep(ts[i + 1], f.shift))
        if f.kv_mode == "rerun":  # clean K/V overwrite the noisy ones at the same slots
            self.dit(x0, torch.full((1,), f.context_noise, device=dev), ctx, cache, block)
        if f.kv_mode == "recompute" or f.recache_on_prompt:
            self._remember_clean(st, x0)
        if self.stream_batched:
            steps = len(timesteps)
            st.cache = self._expanded_cache(cache, steps, st.plan)
            _, ch, _, h, w = x0.shape
            st.hidden = torch.zeros((steps, ch, st.plan.latents, h, w), device=dev, dtype=x0.dtype)
            st.slot_t = ts.clone()
            st.in_flight = deque()
        return x0, frames

    def _stream_batch_step(self, st: StreamState, noisy: torch.Tensor, timesteps: list[float],
                           first_step: torch.Tensor | None, ctx: torch.Tensor,
                           frames: list[Frame]) -> tuple[torch.Tensor | None, list[Frame]]:
        """SDV2 stream batch: one transformer call advances every slot one step (§4.3)."""
        assert st.hidden is not None and st.slot_t is not None and st.cache is not None
        f, cache = self.family, st.cache
        steps = st.hidden.shape[0]
        hidden = torch.cat([noisy, st.hidden[:-1]], dim=0)
        st.slot_t[0] = timesteps[0] if first_step is None else first_step
        f0 = st.plan.first_latents
        block = cache.begin_block(hidden.shape[2])
        # Rows that hold no chunk yet (the first steps-1 calls) must not advance: SDV2 starts every
        # row at the frame after the warm-up chunk, so a row's first real chunk overwrites the
        # slots its placeholder wrote (kv_cache_starts in causal_stream_inference.py).
        empty_rows = len(st.in_flight) + 1
        if empty_rows < steps:
            cache.next_frame[empty_rows:].fill_(f0)
            cache.next_pos[empty_rows:].fill_(f0)
        x0 = self.dit(hidden, st.slot_t, ctx, cache, block)
        if steps > 1:
            renoised = add_noise(x0[:-1], self.noise(st, x0[:-1]), sigma_for_timestep(st.slot_t[1:], f.shift))
            st.hidden = torch.cat([renoised, x0[-1:]], dim=0)
        else:
            st.hidden = x0
        st.in_flight.appendleft(InFlight(frames))
        if len(st.in_flight) < steps:
            return None, []
        done = st.in_flight.pop()
        return x0[-1:], done.frames

    def _remember_clean(self, st: StreamState, x0: torch.Tensor) -> None:
        f = self.family
        keep = f.recompute_frames if f.kv_mode == "recompute" else f.kv_cache_frames - f.sink_frames
        if st.first_latent is None:
            st.first_latent = x0[:, :, :1]
        st.clean.extend(x0.unbind(2))
        while len(st.clean) > keep:
            st.clean.popleft()

    def _recompute(self, st: StreamState, ctx: torch.Tensor) -> None:
        """Krea: rebuild the cache from clean context at t=0 with one block-causal pass (§5.1)."""
        f, cache = self.family, st.cache
        assert cache is not None
        k = f.recompute_frames
        recent = list(st.clean)[-(k - 1):] if k > 1 else []
        first = st.first_latent
        slid = (st.chunks - 1) * self.family.latents_per_chunk >= k
        if slid and self.models.encode_image is not None and st.decoded:
            first = self.models.encode_image(st.decoded[0][None, :, None]).to(self.dtype)
        assert first is not None
        context = torch.cat([first, *[z[:, :, None] for z in recent]], dim=2)
        cache.reset(zero=False)  # the block-causal pass below rewrites every slot it attends to
        cache.cross.reset()
        blk = cache.begin_block(context.shape[2])
        zeros = torch.zeros((1,), device=self.device)
        self.models.dit(context, zeros, ctx, cache=cache, block=blk, causal_block_frames=f.latents_per_chunk)

    def _recache(self, st: StreamState, ctx: torch.Tensor) -> None:
        """LongLive: re-run the cached clean frames at t=0 with the new prompt, at their own slots."""
        cache = st.cache
        assert cache is not None
        f = self.family
        generated = f.first_chunk_latents + (st.chunks - 1) * f.latents_per_chunk
        n = min(len(st.clean), cache.ring_frames, generated - cache.sink_frames)
        if n <= 0:
            return
        clean = torch.stack(list(st.clean)[-n:], dim=2)
        blk = cache.recent_block(n)
        zeros = torch.zeros((1,), device=self.device)
        self.models.dit(clean, zeros, ctx, cache=cache, block=blk, causal_block_frames=f.latents_per_chunk)
        cache.cross.reset()
