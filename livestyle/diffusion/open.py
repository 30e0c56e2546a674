"""Build a :class:`~livestyle.diffusion.stream.StreamPipeline` for a registry model from the run config.

``open_stream_pipeline(config, "sdv2-1.3b")`` resolves the model's files (``livestyle.models.weights``),
loads them through the real loaders (``load_dit``, ``load_wan_vae``, ``load_taehv``, the umT5
``PromptEncoder``), reads the family settings from the registry entry's ``pipeline:`` mapping and
returns the generator. The ``tiny`` model's files are random weights in the real release formats,
written to the user cache on first use (``$LIVESTYLE_CACHE_DIR/weights/tiny``): it is a TEST model
whose pictures are noise, there to run the whole real path on a CPU.

The ``open_<name>`` functions are what ``livestyle.generators.GENERATORS`` names.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import torch

from livestyle.config import Config
from livestyle.errors import ConfigError, WeightsError
from livestyle.diffusion.chunking import fit_working_size
from livestyle.diffusion.family import family_from_mapping
from livestyle.diffusion.stream import StreamPipeline
from livestyle.diffusion.stream_state import Controls, StreamModels

__all__ = [
    "open_krea_14b",
    "open_longlive_1_3b",
    "open_sdv2_1_3b",
    "open_sdv2_14b",
    "open_self_forcing_1_3b",
    "open_stream_pipeline",
    "open_tiny",
    "resolve_device",
]

log = logging.getLogger(__name__)

_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def resolve_device(device: str, dtype: str) -> tuple[torch.device, torch.dtype]:
    """``auto`` → CUDA when present, else CPU; on a CPU, half precision is replaced by float32 (slow/unsupported there)."""
    if device == "auto":
        dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        dev = torch.device(device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"model.device is {device!r} but this PyTorch build sees no CUDA GPU; use --set model.device=cpu")
    dt = _DTYPES[dtype]
    if dev.type == "cpu" and dt != torch.float32:
        log.info("running on the CPU: using float32 instead of %s", dtype)
        dt = torch.float32
    return dev, dt


def _path(spec, role: str, weights_dir: str | None = None) -> Path:  # type: ignore[no-untyped-def]
    from livestyle.models.weights import resolve
    from livestyle.models.weights_pull import pull

    try:
        return resolve(spec, role, weights_dir=weights_dir)
    except WeightsError:
        if not all(f.generate for f in spec.files.values()):
            raise
        log.warning("writing the %s TEST model (random weights, pictures are noise) to the user cache", spec.name)
        pull(spec, progress=False)
        return resolve(spec, role)


def open_stream_pipeline(config: Config, name: str) -> StreamPipeline:
    """Load model ``name`` (a ``configs/models/<name>.yaml`` entry) and wrap it as the stream generator."""
    from livestyle.models.checkpoints import load_dit
    from livestyle.models.taehv import StreamingTAEHV, load_taehv
    from livestyle.models.text import PromptEncoder
    from livestyle.models.vae import StreamingWanVAE
    from livestyle.models.vae_loading import load_wan_vae
    from livestyle.models.weights import get_model

    spec = get_model(name)
    family = family_from_mapping(spec.pipeline, source=f"model {name!r} ({spec.source or 'registry'})")
    m = config.model
    if m.stream_batch is not None and family.kv_mode == "stream_batch":
        family = family.with_overrides(stream_batch=m.stream_batch)  # other kv modes are sequential already
    device, dtype = resolve_device(m.device, m.dtype)
    lora = _path(spec, "lora", m.weights_dir) if "lora" in spec.files else None  # LongLive: base + LoRA merged on load
    dit = load_dit(_path(spec, "dit", m.weights_dir), device=device, dtype=dtype, container=spec.container, lora=lora,
                   lora_alpha=spec.adapter.get("alpha"), lora_rank=spec.adapter.get("rank"))  # registry: upstream's weight set, LoRA scale
    if device.type == "cuda":
        dit.fuse_qkv()  # one GEMM for q/k/v and one for cross-attention k/v (same math)
        # steady-state steps replay from CUDA graphs (captured a few chunks into each stream; the
        # codecs stay eager here: compiling them costs ~35 s per codec at the first chunks, see
        # benchmarks/NOTES.md, so only `livestyle bench --compile-codecs` does it, after a warm-up)
        dit.enable_cuda_graphs()
    vae = load_wan_vae(_path(spec, "vae", m.weights_dir), device=device, dtype=dtype)
    text = PromptEncoder(_path(spec, "text_encoder", m.weights_dir), _path(spec, "tokenizer", m.weights_dir), device=device, dtype=dtype)
    normalized = family.latents == "normalized"

    def wan_encoder() -> StreamingWanVAE:
        return StreamingWanVAE(vae, normalize_latents=normalized)

    def wan_decoder() -> StreamingWanVAE:
        return StreamingWanVAE(vae)  # decoders always take normalised latents (SDV2 decodes z*std+mean too)

    codecs: dict[str, tuple[Callable[[], object], Callable[[], object]]] = {"wan": (wan_encoder, wan_decoder)}
    taehv_file = spec.files.get("taehv")
    if taehv_file is not None:
        try:
            taehv = load_taehv(_path(spec, "taehv", m.weights_dir), device=device, dtype=dtype)
        except WeightsError as exc:
            log.info("tiny decoder unavailable for %s (%s)", name, exc)
        else:
            codecs["tiny-decoder"] = (wan_encoder, lambda: StreamingTAEHV(taehv))
            codecs["tiny"] = (lambda: StreamingTAEHV(taehv, normalize_latents=normalized), lambda: StreamingTAEHV(taehv))
    decoder = "wan" if m.vae == "full" else m.vae  # one vocabulary with budget and bench; full: the old name
    if decoder not in codecs:
        raise ConfigError(f"model.vae is {m.vae!r} but model {name!r} has no tiny decoder (TAEHV) file; run `livestyle weights pull {name}` or use model.vae=wan")

    def encode_image(pixels: torch.Tensor) -> torch.Tensor:
        return vae.encode(pixels, normalize=normalized)

    width, height = fit_working_size(*config.stream.size, family.max_size)
    if (width, height) != tuple(config.stream.size):
        log.info("model %s works at %dx%d at most; frames are scaled to %dx%d and back", name, *family.max_size, width, height)
    from livestyle.engine.commands import SetLora, parse_lora_list
    from livestyle.diffusion.loras import LoraLibrary

    models = StreamModels(
        dit=dit,
        loras=LoraLibrary(m.lora_dir, dit.config, device=device),
        prompt_encoder=lambda t: text.encode(t, device=device),
        prompt_cached=lambda t: text.cache.get(t) is not None,
        prompt_cache=text.cache,
        codecs=codecs,  # type: ignore[arg-type]
        encode_image=encode_image,
        label=f"{name}: {spec.title}",
    )
    controls = Controls(prompt=m.prompt, strength=m.strength, steps=min(m.steps, family.max_steps), seed=m.seed,
                        width=width, height=height, decoder=decoder, effect=config.effects.mode)
    if m.steps > family.max_steps:
        log.warning("model %s supports at most %d steps; using %d", name, family.max_steps, family.max_steps)
    pipeline = StreamPipeline(models, family, controls, device=device, dtype=dtype,
                              transition_chunks=m.transition_chunks, name=name)
    loras = parse_lora_list(m.loras)
    if loras:  # --lora / model.loras: merged before the warm-up, so the first frame has the look
        pipeline.warm_loras([ref.name for ref in loras])
        pipeline.apply(SetLora(loras))
    return pipeline


def _opener(name: str) -> Callable[[Config], StreamPipeline]:
    def factory(config: Config) -> StreamPipeline:
        return open_stream_pipeline(config, name)

    factory.__name__ = f"open_{name.replace('-', '_').replace('.', '_')}"
    factory.__doc__ = f"Open the {name!r} model (``configs/models/{name}.yaml``) as a stream generator."
    return factory


open_tiny = _opener("tiny")
open_sdv2_1_3b = _opener("sdv2-1.3b")
open_sdv2_14b = _opener("sdv2-14b")
open_self_forcing_1_3b = _opener("self-forcing-1.3b")
open_longlive_1_3b = _opener("longlive-1.3b")
open_krea_14b = _opener("krea-14b")
