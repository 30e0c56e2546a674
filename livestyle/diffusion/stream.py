"""StreamPipeline: live frames in, styled frames out, chunk by chunk (StreamDiffusionV2 and Self-Forcing inference code; docs/models.md).

Per chunk: frames → pixels ``[1, 3, T, H, W]`` in [-1, 1] → streaming encode (Wan VAE or the tiny
encoder) → noise injection at the requested strength → causal DiT denoising with a KV cache →
streaming decode → frames that keep the pts / capture time / index of the inputs they came from.

One denoising loop serves every family (:class:`~livestyle.diffusion.denoise.Denoiser`: what each
``kv_mode`` keeps in the KV cache, and the reference code each reproduces).

Keep masks (issue 9, ``effects.keep_hint``): when a chunk's frames carry
``Frame.extras["keep_mask"]`` (``float32`` ``[H, W]`` in ``[0, 1]``, 1 = the camera will show
there; :class:`~livestyle.effects.generator.EffectGenerator` attaches them with
``extras["keep_strength"]`` = ``effects.keep_strength`` ``k``), the masks are area-averaged to a
latent map ``m`` ``[1, 1, F, h, w]`` (:func:`~livestyle.diffusion.noise.latent_keep_mask`) and the
chunk's entry noise is injected per latent pixel at ``s·(1 − k·m)`` instead of ``s``. The
transformer still gets one timestep per frame, so this is SDEdit-style *partial* noising: in keep
pixels the latent holds less noise than the timestep claims, the model removes noise that is not
there, and those pixels leave closer to the input (less restyled, possibly a little smoothed) —
which the compositor hides anyway, as the camera shows there. Per-token timesteps would match noise
and timestep exactly but change the transformer's modulation path; not done. Only the entry noise
changes: the re-noising between steps (sequential steps, and the stream-batch slots 1..steps-1)
stays uniform at the schedule's sigmas, so with stream batch only slot 0 (each chunk's first
step) sees the map, and SDV2's motion controller scales ``s`` before the map does. Frames without
masks (``keep_hint`` off, ``full`` effect) take the exact path they always took, bit for bit.

All streaming state (caches, stream-batch slots, encoder/decoder caches, motion controller, noise
generator, clean-latent history) lives in one :class:`~livestyle.diffusion.stream_state.StreamState`
that ``reset()`` replaces; the live controls (strength, steps, seed, bypass, decoder, size) live in
:class:`~livestyle.diffusion.stream_state.Controls`. Commands apply between chunks only.

No host syncs in the hot loop except the one per chunk that moves the decoded pixels to the host;
SDV2's motion controller and first step stay on the device, and the NaN/Inf check and the KV
cache positions ride on the pixel transfer (:mod:`~livestyle.diffusion.transfer`: frames go up as
one ``uint8`` copy from pinned staging, come down as ``uint8`` in one copy into pinned memory,
then one event wait).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import numpy as np
import torch

from livestyle.config import EffectsConfig
from livestyle.errors import ControlError, LivestyleError, PipelineError
from livestyle.models.kv_cache import KVCache
from livestyle.models.lora import LoraMerger, LoraSwitch, affects_cross_kv
from livestyle.models.vae import StreamingAutoencoder
from livestyle.diffusion.chunking import ChunkPlan, frames_to_pixels, pixels_to_uint8
from livestyle.engine.commands import (
    Reset,
    SetBypass,
    SetDecoder,
    SetEffect,
    SetLora,
    SetPrompt,
    SetSeed,
    SetSize,
    SetSteps,
    SetStrength,
    Stop,
)
from livestyle.diffusion.denoise import Denoiser
from livestyle.diffusion.family import FamilyConfig
from livestyle.engine.frames import Frame
from livestyle.diffusion.loras import LoraLibrary
from livestyle.diffusion.noise import (
    MotionController,
    NoiseSource,
    keep_scale,
    latent_keep_mask,
    mix,
    motion_distance,
)
from livestyle.diffusion.prompt_worker import PromptWorker
from livestyle.diffusion.prompts import PromptState
from livestyle.diffusion.stream_state import ChunkEntry, Controls, StreamModels, StreamState, schedule_for
from livestyle.diffusion.timing import StageTimer
from livestyle.diffusion.transfer import ChunkTransfer

__all__ = ["StreamPipeline"]

log = logging.getLogger(__name__)
_DEFAULT_KEEP_STRENGTH: float = EffectsConfig().keep_strength  # for keep masks that come without a strength


class StreamPipeline:
    """The generator stage for every causal Wan family (implements ``pipeline.frames.Generator``).

    Args:
        models: the networks (:class:`StreamModels`).
        family: the family's streaming settings.
        controls: starting live settings (prompt, strength, steps, seed, working size, decoder).
        device, dtype: where and in what precision the stream runs (``cuda``/``bfloat16`` for speed).
        transition_chunks: default prompt-blend length (None: the family's).
        name: the name reported in stats.
        lora_step_ms: the most LoRA merge work done before one chunk (a switch spreads over
            the chunks it needs: the 1.3B's ~18 ms in two, the 14B's ~125 ms in about ten).
    """

    def __init__(self, models: StreamModels, family: FamilyConfig, controls: Controls, *,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                 transition_chunks: int | None = None, name: str = "stream", lora_step_ms: float = 12.0) -> None:
        self.name = name
        self.models = models
        self.family = family
        self.device = torch.device(device)
        self.dtype = dtype
        self.controls = controls
        self._validate_strength(controls.strength)
        self._validate_steps(controls.steps)
        if controls.decoder not in models.codecs:
            raise PipelineError(f"decoder {controls.decoder!r} is not available for this model; use one of {', '.join(models.codecs)}")
        self.timer = StageTimer(self.device)
        self._transfer = ChunkTransfer(self.device)  # pinned staging on CUDA, reused across chunks and resets
        self._kv_read = False  # this chunk's download brought the KV positions along
        self.prompts = PromptState(
            controls.prompt, self._embed(controls.prompt), mode=family.transition,
            default_chunks=family.transition_chunks if transition_chunks is None else transition_chunks,
        )
        self.counters = {"chunks": 0, "frames_in": 0, "frames_out": 0, "resets": 0, "nonfinite_resets": 0, "oom": 0}
        self.last_error = ""
        self._codec_pair: tuple[str, StreamingAutoencoder, StreamingAutoencoder] | None = None
        self._state = self._new_state()
        self._prompt_worker: PromptWorker | None = None
        # KV caches kept across resets, by (batch, geometry): a restarted stream reuses the buffers,
        # so the DiT's CUDA graphs (captured on them) stay valid and no live chunk pays a re-capture
        self._caches: dict[tuple[Any, ...], KVCache] = {}
        self._denoiser = Denoiser(models, family, device=self.device, dtype=dtype, caches=self._caches)
        if models.loras is None:
            models.loras = LoraLibrary(None, models.dit.config, device=self.device)
        self._lora = LoraMerger(models.dit)
        self._lora_switch: LoraSwitch | None = None
        self._lora_refs: tuple[Any, ...] = ()
        self.lora_step_ms = lora_step_ms
        self.lora_ms: float | None = None

    # ------------------------------------------------------------------ Generator protocol
    def frames_needed(self) -> int:
        if self.controls.bypass:
            return 1
        return self._state.plan.frames_needed(first=self._state.chunks == 0)

    def process(self, frames: Sequence[Frame]) -> list[Frame]:
        """Style one chunk; returns the styled frames that are ready (maybe none, maybe an earlier chunk's)."""
        self._take_prompts()
        frames = list(frames)
        self.counters["frames_in"] += len(frames)
        if self.controls.bypass or not frames:
            self.counters["frames_out"] += len(frames)
            return frames
        size = (frames[-1].width, frames[-1].height)
        st = self._state
        if st.source_size is not None and size != st.source_size:
            log.info("input size changed from %dx%d to %dx%d; restarting the stream", *st.source_size, *size)
            self.reset()
            self.counters["frames_out"] += len(frames)
            return frames  # this chunk was cut for the old stream; the next one starts the new stream
        if len(frames) != self.frames_needed():
            raise PipelineError(f"chunk has {len(frames)} frames but the pipeline asked for {self.frames_needed()}")
        st.source_size = size
        self._kv_read = False
        try:
            with torch.no_grad():
                out = self._run_chunk(st, frames)
        except torch.OutOfMemoryError:
            out = self._out_of_memory(frames)
        if st.cache is not None and not self._kv_read:  # no frames came out: a small copy, after the chunk
            st.kv_positions = (st.cache.next_frame.tolist(), st.cache.next_pos.tolist())
        self.counters["chunks"] += 1
        self.counters["frames_out"] += len(out)
        return out

    def apply(self, command: object) -> None:
        """Apply a command between chunks; bad values raise ``ControlError`` and change nothing."""
        c = self.controls
        if isinstance(command, SetPrompt):
            cached = self.models.prompt_cached
            if cached is not None and cached(command.text):
                self._set_prompt(command, self._embed(command.text))
            else:  # encoded on the prompt worker; the blend starts at the first chunk after it is ready
                if self._prompt_worker is None:
                    self._prompt_worker = PromptWorker(self.models.prompt_encoder, self.device)
                self._prompt_worker.submit(command.text, command)
        elif isinstance(command, SetStrength):
            self._validate_strength(command.value)
            c.strength = float(command.value)
            self._state.motion.init_scale = c.strength
        elif isinstance(command, SetSteps):
            self._validate_steps(command.value)
            if command.value != c.steps:
                c.steps = int(command.value)
                if self._stream_batched:
                    self.reset()  # the slot batch is sized by steps
        elif isinstance(command, SetSeed):
            if command.value < 0:
                raise ControlError(f"seed must be >= 0, got {command.value}")
            c.seed = int(command.value)
            self._state.noise.reseed(c.seed)
        elif isinstance(command, SetBypass):
            c.bypass = (not c.bypass) if command.value is None else bool(command.value)
            self.reset()
        elif isinstance(command, SetDecoder):
            if command.value not in self.models.codecs:
                raise ControlError(f"decoder {command.value!r} is not available for this model; use one of {', '.join(self.models.codecs)}")
            c.decoder = command.value
            self.reset()
        elif isinstance(command, SetSize):
            if command.width <= 0 or command.height <= 0 or command.width % 16 or command.height % 16:
                raise ControlError(f"size {command.width}x{command.height} is not a positive multiple of 16; use e.g. 832x480")
            c.width, c.height = command.width, command.height
            self.reset()
        elif isinstance(command, SetEffect):
            c.effect = command.value
        elif isinstance(command, SetLora):
            self._set_loras(command)
        elif isinstance(command, Reset):
            self.reset()
        elif isinstance(command, Stop):
            return
        else:
            raise ControlError(f"{type(command).__name__} is not a command the {self.name} generator understands")

    @property
    def loras(self) -> LoraLibrary:
        """Where LoRA names resolve (the LoRA folder plus paths the operator allowed)."""
        assert self.models.loras is not None
        return self.models.loras

    def precondition(self, command: object) -> None:
        """Check, before it is queued, what ``apply`` could only refuse later: every LoRA of a
        ``SetLora`` is read and checked against the model now (off the generator thread; the parsed
        files are cached, so the switch itself only rewrites weights). ``ControlError`` if not."""
        if isinstance(command, SetLora):
            for ref in command.value:
                self.loras.load_checked(ref.name)

    def warm_loras(self, names: Sequence[str]) -> None:
        """Allow and load ``names`` (operator-given: ``--lora``, presets) now, so a bad file fails at
        start and a switch to one later reads nothing. Raises ``ModelLoadError`` / ``ControlError``."""
        for name in dict.fromkeys(names):
            self.loras.allow(name)
            self.loras.load(name)

    def _set_loras(self, command: SetLora) -> None:
        """Start merging exactly ``command``'s LoRAs in place: layers are rewritten between chunks,
        at most ``lora_step_ms`` of merge work before each (the rest at the next ones), so a large
        model's merge never holds one chunk back; the first share is done now."""
        files = [(self.loras.load_checked(ref.name), float(ref.scale)) for ref in command.value]
        try:
            self._lora_switch = self._lora.begin(files)
        except LivestyleError as exc:
            raise ControlError(f"cannot switch LoRA: {exc}") from None
        self._lora_refs = tuple(command.value)
        self.controls.loras = self._lora_refs
        self._advance_lora()

    def _advance_lora(self) -> None:
        """Rewrite the next share of a switch in progress; the cross-attention K/V are marked stale
        (refilled in place before the next DiT call) when a rewritten layer feeds them."""
        switch = self._lora_switch
        if switch is None:
            return
        sync = (lambda: torch.cuda.synchronize(self.device)) if self.device.type == "cuda" else None
        applied = switch.step(self.lora_step_ms / 1000.0, sync=sync)
        if any(affects_cross_kv(path) for path in applied):
            for cache in self._caches.values():  # cross K/V come from text_embedding and cross_attn.k/v
                cache.cross.reset()
            if self._state.cache is not None:
                self._state.cache.cross.reset()
        if switch.done:
            self._lora_switch = None
            self.lora_ms = 1000.0 * switch.seconds
            log.info("LoRA now %s (%.1f ms of merging over %d layers)", ", ".join(map(str, self._lora_refs)) or "none",
                     self.lora_ms, switch.total)

    @property
    def max_steps(self) -> int:
        """The most denoising steps per chunk this model family supports (``SetSteps`` limit)."""
        return self.family.max_steps

    def warm_prompts(self, prompts: Sequence[str]) -> None:
        """Embed ``prompts`` now, through the prompt encoder's cache, so switching to one later costs no encoder pass."""
        for text in dict.fromkeys(prompts):
            self.models.prompt_encoder(text)

    def warmup(self, size: tuple[int, int], chunks: int | None = None) -> None:
        """Run ``chunks`` chunks of a synthetic picture of ``size`` = ``(width, height)`` on the
        calling thread, then start a fresh stream. The default runs until the KV cache is full and
        the stream batch has cycled twice (every shape the live stream will meet: first chunk,
        filling cache, full cache)

        The runner calls this on its worker thread before the first live chunk: cuDNN autotuning,
        the current CUDA stream and compiled code paths are per-thread or per-shape state, and the
        first call on a cold thread costs 0.8-1.4 s on an H200. Counters are left as they were.
        """
        if self.controls.bypass:
            return
        width, height = size
        ys, xs = np.mgrid[0:height, 0:width]
        counters = dict(self.counters)
        if chunks is None:
            fill = -(-self.family.kv_cache_frames // self.family.latents_per_chunk)
            chunks = fill + self.controls.steps + 2
        n = chunks
        for i in range(n):
            image = np.stack([(xs + 5 * i) % 256, (ys + 3 * i) % 256, (xs + ys) % 256], axis=-1).astype(np.uint8)
            k = self.frames_needed()
            self.process([Frame(image, i * k + j, Fraction(1, 30), 0.0, i * k + j) for j in range(k)])
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.reset()
        self.counters = counters

    @property
    def prompt_pending(self) -> str | None:
        """The prompt being encoded off the generator thread (None when none is)."""
        return self._prompt_worker.pending if self._prompt_worker is not None else None

    def wait_for_prompts(self, timeout: float | None = None) -> bool:
        """Block until the prompt worker is idle (offline use and tests); the result is applied at
        the next chunk. False on timeout."""
        return self._prompt_worker.wait_idle(timeout) if self._prompt_worker is not None else True

    def reset(self) -> None:
        """Drop all temporal state; the next chunk starts a new stream (same prompt, seed, settings)."""
        self.counters["resets"] += 1
        self._state = self._new_state()

    def stats(self) -> dict[str, Any]:
        st = self._state
        out: dict[str, Any] = {
            "name": self.name,
            "model": self.models.label,
            "kv_mode": self.family.kv_mode,
            **self.counters,
            "prompt": self.controls.prompt,
            "prompt_pending": self.prompt_pending,
            "transition": self.prompts.progress,
            "strength": self.controls.strength,
            "steps": self.controls.steps,
            "seed": self.controls.seed,
            "bypass": self.controls.bypass,
            "decoder": self.controls.decoder,
            "loras": [str(r) for r in self.controls.loras],
            "lora_switch_ms": self.lora_ms,
            "lora_layers_left": self._lora_switch.remaining if self._lora_switch is not None else 0,
            "size": f"{self.controls.width}x{self.controls.height}",
            "latency_chunks": self.controls.steps if self._stream_batched else 1,
            "stream_batch": self._stream_batched,
            "stream_chunks": st.chunks,
            "stages_ms": self.timer.summary(),
            "last_error": self.last_error,
        }
        if st.cache is not None:
            if st.kv_positions is not None:  # as of the last chunk (no GPU read on this thread)
                out["kv_next_frame"], out["kv_next_position"] = st.kv_positions
            out["kv_cache_bytes"] = st.cache.nbytes()
        if self.device.type == "cuda":
            out["cuda_max_allocated"] = torch.cuda.max_memory_allocated(self.device)
        return out

    # ------------------------------------------------------------------ internals
    @property
    def _stream_batched(self) -> bool:
        """SDV2 stream batch on: chunks after the first share one call over ``steps`` slots."""
        return self._denoiser.stream_batched

    def _validate_strength(self, value: float) -> None:
        if not 0.0 <= float(value) <= 1.0:
            raise ControlError(f"strength {value} is outside [0, 1]; 0 keeps the input, 1 ignores it")

    def _validate_steps(self, value: int) -> None:
        if not 1 <= int(value) <= self.family.max_steps:
            raise ControlError(f"steps {value} is not supported by this model; use 1..{self.family.max_steps}")

    def _set_prompt(self, command: SetPrompt, emb: torch.Tensor) -> None:
        self.prompts.set_target(command.text, emb, command.transition_chunks)
        self.controls.prompt = command.text

    def _take_prompts(self) -> None:
        """Start the blend to every prompt the worker finished since the last chunk (the newest wins)."""
        if self._prompt_worker is None:
            return
        for result in self._prompt_worker.collect():
            if result.embedding is None:
                self.last_error = f"prompt {result.text[:60]!r} could not be encoded: {result.error}"
                log.warning("%s", self.last_error)
                continue
            emb = result.embedding if result.embedding.ndim == 3 else result.embedding[None]
            # clone on this thread's stream: the worker's side stream may reuse the original's memory
            self._set_prompt(result.request, emb.to(device=self.device, dtype=self.dtype).clone())

    def _embed(self, text: str) -> torch.Tensor:
        emb = self.models.prompt_encoder(text)
        if emb.ndim == 2:
            emb = emb[None]
        return emb.to(device=self.device, dtype=self.dtype)

    def _new_state(self) -> StreamState:
        c = self.controls
        plan = ChunkPlan.for_family(self.family, c.width, c.height)
        encoder, decoder = self._codecs(c.decoder)
        return StreamState(
            plan=plan,
            encoder=encoder,
            decoder=decoder,
            noise=NoiseSource(c.seed, self.device),
            motion=MotionController(init_scale=c.strength, scale=c.strength),
        )

    def _codecs(self, choice: str) -> tuple[StreamingAutoencoder, StreamingAutoencoder]:
        """The streaming encoder and decoder for ``choice``, reset: the same objects across resets
        while the choice stays (the tiny codec's CUDA graphs are captured on their state, as the
        DiT's are on the kept KV caches), fresh ones from the factories after a change."""
        kept = self._codec_pair
        if kept is not None and kept[0] == choice:
            kept[1].reset()
            kept[2].reset()
            return kept[1], kept[2]
        enc_factory, dec_factory = self.models.codecs[choice]
        pair = (enc_factory(), dec_factory())
        self._codec_pair = (choice, *pair)
        return pair

    def _keep_map(self, frames: list[Frame], latents: torch.Tensor) -> tuple[torch.Tensor, float] | None:
        """The chunk's latent keep map (``[1, 1, F, h, w]`` in the latents' dtype and device) and keep
        strength, or None when no frame carries ``extras["keep_mask"]`` or the strength is 0."""
        masks = [fr.extras.get("keep_mask") for fr in frames]
        if all(m is None for m in masks):
            return None
        k = next((fr.extras["keep_strength"] for fr in frames if "keep_strength" in fr.extras), _DEFAULT_KEEP_STRENGTH)
        if not 0.0 <= float(k) <= 1.0:
            raise PipelineError(f"keep_strength {k} is outside [0, 1]; set effects.keep_strength between 0 (off) and 1 (no noise where the camera shows)")
        if float(k) == 0.0:
            return None
        _, _, fr, h, w = latents.shape
        keep = latent_keep_mask(masks, fr, (h, w))
        assert keep is not None
        return keep.to(device=latents.device, dtype=latents.dtype, non_blocking=True), float(k)

    def _run_chunk(self, st: StreamState, frames: list[Frame]) -> list[Frame]:
        entry = self._enter(st, frames)
        with self.timer.stage("denoise"):
            out_latents, out_frames = self._denoiser.denoise(st, entry.noisy, entry.timesteps, entry.first_step,
                                                             entry.ctx, frames, entry.prompt_version)
        st.chunks += 1
        if out_latents is None:
            return []
        return self._leave(st, out_latents, out_frames)

    def _enter(self, st: StreamState, frames: list[Frame]) -> ChunkEntry:
        """A chunk's way in: frames -> pixels -> latents, the chunk's noise level (SDV2's motion
        controller), keep map, entry noise and the text context; everything before the DiT.
        A LoRA switch in progress rewrites its next share of layers first."""
        self._advance_lora()
        c, f = self.controls, self.family
        first = st.chunks == 0
        with self.timer.stage("encode"):
            pixels = frames_to_pixels(frames, c.width, c.height, self.device, self.dtype, self._transfer)
            latents = st.encoder.encode(pixels).to(self.dtype)  # [1, 16, F, h, w]
        # noise level for this chunk
        timesteps = schedule_for(f, c.steps, c.strength)
        first_step: torch.Tensor | None = None  # a device-side replacement of timesteps[0]
        scale: float | torch.Tensor
        if f.noise == "sdv2":
            scale = c.strength
            if not first and f.motion_control and st.last_pixel is not None:
                scale, first_step = st.motion.update(motion_distance(st.last_pixel, pixels))
                scale = scale.to(self.dtype)
        else:
            scale = timesteps[0] / 1000.0
        st.last_pixel = pixels[:, :, -1:]
        keep = self._keep_map(frames, latents)
        if keep is not None:
            scale = keep_scale(scale, keep[0], keep[1])
        noisy = mix(latents, self._denoiser.noise(st, latents), scale)
        ctx = self.prompts.advance()
        return ChunkEntry(noisy, timesteps, first_step, ctx, self.prompts.version)

    def _decode(self, st: StreamState, out_latents: torch.Tensor) -> tuple[torch.Tensor, np.ndarray, torch.Tensor]:
        """Decode the latents leaving the stream; returns ``(decoded [1, 3, T, H, W], uint8 frames
        [T, H, W, 3] at the source size, host values: finite flag then the cache positions)``."""
        assert st.source_size is not None
        with self.timer.stage("decode"):
            decoded = st.decoder.decode(out_latents)
            values = [torch.isfinite(out_latents).all().reshape(1).long()]
            if st.cache is not None:
                values += [st.cache.next_frame.long(), st.cache.next_pos.long()]
            # the one host transfer (and sync) per chunk: uint8 frames and the small values together
            array, host = self._transfer.download(pixels_to_uint8(decoded, *st.source_size), torch.cat(values))
        assert host is not None
        return decoded, array, host

    def _leave(self, st: StreamState, out_latents: torch.Tensor, out_frames: list[Frame]) -> list[Frame]:
        f = self.family
        decoded, array, host = self._decode(st, out_latents)
        if st.cache is not None:
            b = st.cache.next_frame.shape[0]
            st.kv_positions = (host[1:1 + b].tolist(), host[1 + b:1 + 2 * b].tolist())
            self._kv_read = True
        images = list(array)
        if not bool(host[0]):
            self.counters["nonfinite_resets"] += 1
            self.last_error = "non-finite latents; stream state reset"
            log.warning("NaN/Inf in the denoised latents at chunk %d; resetting the stream state and continuing", st.chunks)
            self._state = self._new_state()
            return list(out_frames)
        if f.kv_mode == "recompute":
            st.decoded.extend(decoded[0].unbind(1))
            while len(st.decoded) > 1 + (f.recompute_frames - 1) * 4:
                st.decoded.popleft()
        if len(images) != len(out_frames):
            raise PipelineError(f"decoder returned {len(images)} frames for {len(out_frames)} inputs")
        return [fr.with_image(img) for fr, img in zip(out_frames, images)]

    # ------------------------------------------------------------------ pipeline-parallel stages
    @property
    def state(self) -> StreamState:
        """The current stream's state (``reset`` replaces it); ``livestyle.parallel``'s stages read it."""
        return self._state

    def noise_like(self, like: torch.Tensor) -> torch.Tensor:
        """The stream's next noise draw shaped like ``like`` ``[B, C, F, h, w]`` (the denoising loop's
        draw, frame-major; ``Denoiser.noise``), so a split pipeline draws the same sequence."""
        return self._denoiser.noise(self._state, like)

    def enter_chunk(self, frames: Sequence[Frame]) -> ChunkEntry:
        """The first half of :meth:`process` for a pipeline split over processes
        (``livestyle.parallel``): take finished prompts, encode the chunk and draw its entry noise;
        the caller runs the DiT. Counts the chunk; the size checks and bypass are the caller's."""
        self._take_prompts()
        frames = list(frames)
        st = self._state
        self.counters["frames_in"] += len(frames)
        st.source_size = (frames[-1].width, frames[-1].height)
        with torch.no_grad():
            entry = self._enter(st, frames)
        st.chunks += 1
        self.counters["chunks"] += 1
        return entry

    def decode_chunk(self, latents: torch.Tensor, source_size: tuple[int, int]) -> tuple[np.ndarray, bool]:
        """The last half of :meth:`process` for a split pipeline: decode ``latents`` ``[1, 16, F, h, w]``
        (the chunk leaving the stream) with this stream's decoder; returns ``(uint8 frames [T, H, W, 3]
        at ``source_size`` = (width, height), whether the latents were finite)``."""
        st = self._state
        st.source_size = source_size
        with torch.no_grad():
            _, array, host = self._decode(st, latents)
        self.counters["frames_out"] += len(array)
        return array, bool(host[0])

    def _out_of_memory(self, frames: list[Frame]) -> list[Frame]:
        self.counters["oom"] += 1
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        c = self.controls
        if c.steps > 1:
            c.steps -= 1
            self.last_error = f"CUDA out of memory; stepped down to {c.steps} steps"
        else:
            c.bypass = True
            self.last_error = "CUDA out of memory at 1 step; showing the raw input (bypass) — lower the size or use the tiny decoder"
        log.warning(self.last_error)
        self._state = self._new_state()
        return frames
