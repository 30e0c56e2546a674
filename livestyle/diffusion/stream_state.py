"""What a :class:`~livestyle.diffusion.stream.StreamPipeline` is made of and remembers.

:class:`StreamModels` (the networks, built by ``livestyle.diffusion.open`` or
``livestyle.diffusion.random_models``), :class:`Controls` (the live settings), :class:`StreamState`
(everything a stream remembers between chunks: caches, stream-batch slots, encoder/decoder caches,
motion controller, noise generator, clean-latent history; ``reset()`` replaces it) and
:func:`schedule_for` (a chunk's denoising timesteps).
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from livestyle.models.dit import CausalWanDiT
from livestyle.models.kv_cache import KVCache
from livestyle.models.scheduler import krea_steps, warp_steps
from livestyle.models.vae import StreamingAutoencoder
from livestyle.diffusion.chunking import ChunkPlan
from livestyle.engine.commands import LoraRef
from livestyle.diffusion.family import FamilyConfig
from livestyle.engine.frames import Frame
from livestyle.diffusion.loras import LoraLibrary
from livestyle.diffusion.noise import MotionController, NoiseSource, sdv2_first_step

__all__ = ["ChunkEntry", "Controls", "InFlight", "PromptEncoder", "StreamModels", "StreamState", "schedule_for"]


class PromptEncoder(Protocol):
    """Text → embedding ``[1, L, text_dim]`` (umT5 output, padding zeroed), cached per text."""

    def __call__(self, text: str) -> torch.Tensor: ...


@dataclass
class StreamModels:
    """The networks a stream runs, already on the device and in the compute dtype.

    ``codecs`` maps a decoder choice (``"wan"``, ``"tiny-decoder"``, ``"tiny"``) to
    ``(encoder, decoder)`` factories of fresh streaming autoencoders (their caches are stream state);
    ``encode_image`` encodes one picture ``[1, 3, 1, H, W]`` on its own (Krea's first-frame
    re-encode); the encoder's latent space must match the family (``raw`` for SDV2).
    ``prompt_cached(text)`` says whether ``prompt_encoder`` answers ``text`` from its cache (cheap
    enough to run between chunks); None: never assume so, every new prompt is encoded on the
    prompt worker thread (:mod:`livestyle.diffusion.prompt_worker`). ``loras``: where ``SetLora``
    names resolve (None: the default LoRA folder). ``prompt_cache``: the encoder's
    :class:`~livestyle.models.text.PromptEmbeddingCache`, for its ``stats()`` (None: no disk cache).
    """

    dit: CausalWanDiT
    prompt_encoder: PromptEncoder
    codecs: dict[str, tuple[Callable[[], StreamingAutoencoder], Callable[[], StreamingAutoencoder]]]
    encode_image: Callable[[torch.Tensor], torch.Tensor] | None = None
    label: str = ""
    prompt_cached: Callable[[str], bool] | None = None
    loras: LoraLibrary | None = None
    prompt_cache: Any = None


@dataclass
class Controls:
    """Live settings; every change is validated by :meth:`StreamPipeline.apply`."""

    prompt: str
    strength: float
    steps: int
    seed: int
    width: int
    height: int
    decoder: str = "wan"
    bypass: bool = False
    effect: str = "full"
    loras: tuple[LoraRef, ...] = ()


@dataclass
class InFlight:
    """Input frames whose styled versions are still in flight (stream-batch slots)."""

    frames: list[Frame]


@dataclass
class ChunkEntry:
    """A chunk on its way into the DiT (``StreamPipeline._enter``): ``noisy`` latents
    ``[1, 16, F, h, w]`` at ``timesteps`` (``first_step``, a 0-d device tensor, replaces the first
    when set: SDV2's motion controller), the text context ``ctx`` ``[1, L, text_dim]`` and the
    prompt version it belongs to (``PromptState.version``)."""

    noisy: torch.Tensor
    timesteps: list[float]
    first_step: torch.Tensor | None
    ctx: torch.Tensor
    prompt_version: int


@dataclass
class StreamState:
    """Everything a stream remembers between chunks; ``StreamPipeline.reset`` makes a new one."""

    plan: ChunkPlan
    encoder: StreamingAutoencoder
    decoder: StreamingAutoencoder
    noise: NoiseSource
    motion: MotionController
    cache: KVCache | None = None
    kv_positions: tuple[list[int], list[int]] | None = None
    """``(next_frame, next_pos)`` of ``cache`` per batch row after the last chunk, read on the
    generator thread, so that ``stats()`` (the status thread) never waits on the GPU."""
    chunks: int = 0
    source_size: tuple[int, int] | None = None
    last_pixel: torch.Tensor | None = None
    prompt_version: int = -1
    # stream batch
    hidden: torch.Tensor | None = None
    slot_t: torch.Tensor | None = None
    in_flight: deque[InFlight] = field(default_factory=deque)
    # clean history (rerun: LongLive re-cache; recompute: Krea context)
    clean: deque[torch.Tensor] = field(default_factory=deque)
    decoded: deque[torch.Tensor] = field(default_factory=deque)
    first_latent: torch.Tensor | None = None


def schedule_for(family: FamilyConfig, steps: int, strength: float) -> list[float]:
    """The chunk's denoising timesteps (floats in 0..1000) before any per-chunk first-step change.

    ``sdv2``: the first ``steps`` entries of ``family.timesteps`` (warped if the family warps) with
    the first replaced by ``int(1000*strength) - 100`` (700 at 0.8); ``schedule``: Krea's warped
    ``linspace(1000*strength, 0, n)``. Memoised: the same settings give the same list every chunk.
    """
    return list(_schedule(family, int(steps), float(strength)))


@functools.lru_cache(maxsize=256)
def _schedule(family: FamilyConfig, steps: int, strength: float) -> tuple[float, ...]:
    if family.noise == "schedule":
        s = max(strength, 1e-3)
        if family.final_zero_step:
            return tuple(krea_steps(s, max(steps, 2), family.shift))
        return tuple(krea_steps(s, steps + 1, family.shift)[:-1])
    ts = list(family.timesteps[:steps])
    if family.warp:
        ts = warp_steps(ts, family.shift)
    ts[0] = float(sdv2_first_step(strength))
    return tuple(ts)
