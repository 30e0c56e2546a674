"""Per-family streaming settings: the ``pipeline:`` mapping of ``configs/models/*.yaml``.

One frozen :class:`FamilyConfig` says how a checkpoint family turns chunks of frames into styled
frames (StreamDiffusionV2 and Self-Forcing inference code; docs/models.md): how many latent frames a chunk holds, which KV-cache semantics it needs,
how noise is injected, which timesteps it denoises at and how big its cache is.

KV modes (one denoising loop in :mod:`livestyle.diffusion.stream` switches on these):

- ``"stream_batch"`` — StreamDiffusionV2: the first chunk is denoised sequentially, then every
  chunk enters a batch of ``steps`` slots, one transformer call per chunk advances every slot by
  one step; each slot keeps its own cache; no clean re-run (§4.3). With ``stream_batch: false``
  (SDV2's ``single-wo`` mode, ``streamv2v/inference_wo_batch.py``) every chunk is denoised
  sequentially at batch 1 instead, each step re-writing the chunk's cache slots (the last step's
  K/V stay, no clean re-run): ``steps`` transformer calls per chunk, but no output lag.
- ``"rerun"`` — Self-Forcing / CausVid / LongLive: sequential steps, then one call at
  ``context_noise`` (0) on the result to overwrite the block's cache slots with clean K/V (§3.7).
- ``"recompute"`` — Krea Realtime: before each block after the first the cache is rebuilt with one
  block-causal pass at t=0 over the clean context frames; generation uses the KV attention bias (§5.1).

Noise modes:

- ``"sdv2"`` — ``noisy = eps*s + latents*(1-s)`` with ``s = strength``; chunks after the first
  start at ``int(1000*s') - 100`` where ``s'`` comes from the motion-aware controller (§4.2).
- ``"schedule"`` — Krea: strength picks the first timestep through the warped schedule
  (``linspace(1000*strength, 0, steps)`` → warp) and ``s = t_first / 1000`` (§3.6, §5.1).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, Literal, get_args

from livestyle.errors import ConfigError

__all__ = ["FAMILY_PRESETS", "FamilyConfig", "KvMode", "NoiseMode", "family_from_mapping"]

KvMode = Literal["stream_batch", "rerun", "recompute"]
NoiseMode = Literal["sdv2", "schedule"]
LatentSpace = Literal["raw", "normalized"]
Transition = Literal["linear", "slerp"]


@dataclass(frozen=True)
class FamilyConfig:
    """How one checkpoint family streams. Every field is a key of the YAML ``pipeline:`` mapping.

    Attributes:
        kv_mode: ``"stream_batch"``, ``"rerun"`` or ``"recompute"`` (module docstring).
        stream_batch: ``kv_mode: stream_batch`` only: denoise in a batch of ``steps`` slots (one
            call per chunk, output ``steps - 1`` chunks late; throughput) or, when false, the
            steps sequentially at batch 1 (``steps`` calls per chunk, no lag; latency).
        latents_per_chunk: latent frames per chunk after the first (SDV2 1, others 3).
        first_chunk_latents: latent frames of the first chunk (SDV2 2, others 3); the first chunk
            takes ``1 + 4 * (first_chunk_latents - 1)`` pixel frames, later ones ``4 * latents_per_chunk``.
        timesteps: nominal denoising timesteps in ``(0, 1000]``, largest first, without the trailing 0
            (SDV2 ``[700, 500, 400, 200]``; Self-Forcing ``[1000, 750, 500, 250]``); ``steps=N``
            uses the first N. Ignored by ``noise: schedule``.
        final_zero_step: ``noise: schedule`` only: whether the last model call is at t=0 (Krea).
        max_steps: the most denoising steps the family supports.
        warp: map nominal timesteps through the shifted schedule table (§3.6).
        shift: flow-matching timestep shift (SDV2/CausVid 8, Self-Forcing/Krea/LongLive 5).
        noise: ``"sdv2"`` or ``"schedule"`` (module docstring).
        motion_control: SDV2's motion-aware controller lowers noise for fast motion (§4.2).
        latents: ``"raw"`` reproduces SDV2's un-normalised encode (§4.1); ``"normalized"`` otherwise.
        kv_cache_frames: latent frames the self-attention cache holds (SDV2 6, LongLive 12).
        sink_frames: leading latent frames never evicted (SDV2 3, LongLive 3, else 0).
        adapt_sink_threshold: SDV2 adaptive sink refresh threshold (-1: off; SDV2 0.2, its upstream default).
        rope_refresh_frames: SDV2 ``t_refresh``: when a chunk would start at or past this latent
            frame, positions restart at ``kv_cache_frames - latents_per_chunk`` (0: never).
        context_noise: timestep of the clean re-run in ``"rerun"`` mode (0).
        attention_bias: Krea's KV-cache attention bias in ``(0, 1]`` (1: off).
        recompute_frames: ``"recompute"`` mode: clean context latent frames rebuilt before each block
            (the cache then holds these plus one chunk; ``sink_frames`` 1 keeps the first frame out
            of the attention bias).
        recache_on_prompt: LongLive: after a prompt change, re-run the cached clean frames with the
            new prompt so the self-attention K/V follow it.
        transition: ``"linear"`` or ``"slerp"`` prompt-embedding blend.
        transition_chunks: default number of chunks a prompt change blends over (0: instant).
        default_strength: strength used when the run config does not set one.
        fps: the frame rate the checkpoint was trained at (informational; the stream keeps its own).
        max_size: ``(width, height)`` bound on the working size, or ``None``; a larger stream is
            processed at the largest 16-multiple size that fits with its aspect ratio and the
            output is scaled back (the ``tiny`` test model uses it to stay quick on a CPU).
    """

    kv_mode: KvMode = "stream_batch"
    stream_batch: bool = True
    latents_per_chunk: int = 1
    first_chunk_latents: int = 2
    timesteps: tuple[float, ...] = (700.0, 500.0, 400.0, 200.0)
    final_zero_step: bool = False
    max_steps: int = 4
    warp: bool = False
    shift: float = 8.0
    noise: NoiseMode = "sdv2"
    motion_control: bool = True
    latents: LatentSpace = "raw"
    kv_cache_frames: int = 6
    sink_frames: int = 3
    adapt_sink_threshold: float = -1.0
    rope_refresh_frames: int = 50
    context_noise: float = 0.0
    attention_bias: float = 1.0
    recompute_frames: int = 3
    recache_on_prompt: bool = False
    transition: Transition = "linear"
    transition_chunks: int = 4
    default_strength: float = 0.8
    fps: float = 16.0
    max_size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def first_chunk_frames(self) -> int:
        """Pixel frames of the first chunk (the first latent frame encodes one pixel frame)."""
        return 1 + 4 * (self.first_chunk_latents - 1)

    @property
    def chunk_frames(self) -> int:
        """Pixel frames of every later chunk."""
        return 4 * self.latents_per_chunk

    def with_overrides(self, **changes: Any) -> FamilyConfig:
        """A copy with some fields replaced (validated again)."""
        return replace(self, **changes)


def _fail(key: str, what: str) -> ConfigError:
    return ConfigError(f"model pipeline setting {key!r} {what}")


def _validate(cfg: FamilyConfig) -> None:
    for name, allowed in (("kv_mode", KvMode), ("noise", NoiseMode), ("latents", LatentSpace), ("transition", Transition)):
        value = getattr(cfg, name)
        if value not in get_args(allowed):
            raise _fail(name, f"is {value!r}; use one of {', '.join(get_args(allowed))}")
    if not cfg.stream_batch and cfg.kv_mode != "stream_batch":
        raise _fail("stream_batch", f"false only applies to kv_mode stream_batch (kv_mode {cfg.kv_mode!r} already denoises sequentially); remove it")
    if cfg.latents_per_chunk < 1 or cfg.first_chunk_latents < 1:
        raise _fail("latents_per_chunk", "and first_chunk_latents must be >= 1")
    if not 1 <= cfg.max_steps <= 8:
        raise _fail("max_steps", f"is {cfg.max_steps}; use 1..8")
    if cfg.noise == "sdv2":
        if len(cfg.timesteps) < cfg.max_steps:
            raise _fail("timesteps", f"lists {len(cfg.timesteps)} entries but max_steps is {cfg.max_steps}")
        if any(not 0 < t <= 1000 for t in cfg.timesteps):
            raise _fail("timesteps", f"must lie in (0, 1000], got {list(cfg.timesteps)}")
    if cfg.shift <= 0:
        raise _fail("shift", f"must be > 0, got {cfg.shift}")
    min_cache = cfg.sink_frames + max(cfg.first_chunk_latents, cfg.latents_per_chunk) + (1 if cfg.kv_mode != "recompute" else 0)
    if cfg.kv_mode != "recompute" and cfg.kv_cache_frames < min_cache:
        raise _fail("kv_cache_frames", f"is {cfg.kv_cache_frames}; it must hold the sink, one chunk and a rolling frame ({min_cache})")
    if cfg.kv_mode == "recompute" and cfg.recompute_frames < 1:
        raise _fail("recompute_frames", "must be >= 1")
    if cfg.rope_refresh_frames and cfg.rope_refresh_frames <= cfg.kv_cache_frames:
        raise _fail("rope_refresh_frames", f"must exceed kv_cache_frames ({cfg.kv_cache_frames}) or be 0")
    if not 0 < cfg.attention_bias <= 1:
        raise _fail("attention_bias", f"must lie in (0, 1], got {cfg.attention_bias}")
    if not 0 <= cfg.default_strength <= 1:
        raise _fail("default_strength", f"must lie in [0, 1], got {cfg.default_strength}")
    if cfg.transition_chunks < 0:
        raise _fail("transition_chunks", "must be >= 0")
    if cfg.max_size is not None and (len(cfg.max_size) != 2 or any(v < 16 or v % 16 for v in cfg.max_size)):
        raise _fail("max_size", f"must be [width, height] in multiples of 16 (>= 16), got {list(cfg.max_size)}")


_SDV2 = FamilyConfig(adapt_sink_threshold=0.2)  # upstream default (configs/wan_causal_dmd_v2v.yaml)
_SELF_FORCING = FamilyConfig(
    kv_mode="rerun",
    latents_per_chunk=3,
    first_chunk_latents=3,
    timesteps=(1000.0, 750.0, 500.0, 250.0),
    max_steps=4,
    warp=True,
    shift=5.0,
    noise="schedule",
    motion_control=False,
    latents="normalized",
    kv_cache_frames=21,
    sink_frames=3,
    rope_refresh_frames=0,
    default_strength=0.7,
)

FAMILY_PRESETS: dict[str, FamilyConfig] = {
    "sdv2": _SDV2,
    "self-forcing": _SELF_FORCING,
    "longlive": _SELF_FORCING.with_overrides(kv_cache_frames=12, recache_on_prompt=True),
    "krea": _SELF_FORCING.with_overrides(
        kv_mode="recompute",
        final_zero_step=True,
        max_steps=5,
        kv_cache_frames=6,
        recompute_frames=3,
        attention_bias=0.3,
        sink_frames=1,
    ),
}
"""Reference settings of each family; a YAML ``pipeline:`` mapping names one as ``family:`` and overrides keys."""


_FIELDS = {f.name: f for f in fields(FamilyConfig)}


def _coerce(key: str, value: Any, default: Any) -> Any:
    if key == "max_size":
        if value is None:
            return None
        if not isinstance(value, (list, tuple)) or len(value) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise _fail(key, f"must be [width, height] in pixels, got {value!r}")
        return (int(value[0]), int(value[1]))
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise _fail(key, f"must be true or false, got {value!r}")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(key, f"must be an integer, got {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _fail(key, f"must be a number, got {value!r}")
        return float(value)
    if isinstance(default, tuple):
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            raise _fail(key, f"must be a list of numbers, got {value!r}")
        return tuple(float(v) for v in value)
    if not isinstance(value, str):
        raise _fail(key, f"must be a string, got {value!r}")
    return value


def family_from_mapping(mapping: Mapping[str, Any] | None, *, source: str = "model config") -> FamilyConfig:
    """Build a :class:`FamilyConfig` from a YAML ``pipeline:`` mapping.

    ``family:`` (required) names a preset in :data:`FAMILY_PRESETS`; every other key overrides one
    field. Unknown keys, wrong types and out-of-range values raise :class:`ConfigError` naming
    ``source`` and the key.
    """
    if not mapping:
        raise ConfigError(f"{source} has no 'pipeline:' mapping; add one with at least 'family: sdv2'")
    if not isinstance(mapping, Mapping):
        raise ConfigError(f"{source}: 'pipeline' must be a mapping, got {type(mapping).__name__}")
    data = dict(mapping)
    family = data.pop("family", None)
    if family not in FAMILY_PRESETS:
        raise ConfigError(f"{source}: pipeline.family is {family!r}; use one of {', '.join(FAMILY_PRESETS)}")
    base = FAMILY_PRESETS[family]
    changes: dict[str, Any] = {}
    for key, value in data.items():
        if key not in _FIELDS:
            raise ConfigError(f"{source}: unknown pipeline key {key!r}; known keys: family, {', '.join(_FIELDS)}")
        changes[key] = _coerce(key, value, getattr(base, key))
    try:
        return replace(base, **changes)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
