"""RANDOM-weight :class:`~livestyle.diffusion.stream_state.StreamModels` at the real shapes: for benchmarks only.

Nothing here loads a checkpoint, and nothing it builds produces a meaningful picture. Throughput
and memory do not depend on weight values, so ``livestyle bench`` and ``benchmarks/gpu_suite.py``
measure the real :class:`~livestyle.diffusion.stream.StreamPipeline` with these stand-ins, each
built on the device in the compute dtype by :mod:`livestyle.models.testing.on_device` (the one home
of the random-weight builders); this module only assembles them into a stream's stack:

- the causal Wan DiT of ``DIT_CONFIGS[model]`` (``"1.3b"``, ``"14b"`` or ``"tiny"``), then
  ``fuse_qkv()`` unless asked not to;
- the Wan 2.1 VAE (``VAE_CONFIGS["wan2.1"]``; ``"tiny"`` for the tiny model) and TAEHV
  (``TAEHV_CONFIGS["taew2_1"]``; ``"tiny"``);
- a seeded random prompt embedding ``[1, 24, text_dim]`` in place of umT5-XXL (the encoder runs
  once per prompt, never per chunk; its cost is measured separately by the GPU suite).

``codecs`` offers the three decoder choices of the real stack: ``"wan"`` (Wan encoder + decoder),
``"tiny-decoder"`` (Wan encoder, TAEHV decoder) and ``"tiny"`` (TAEHV both ways). Encoders
return raw latents (SDV2's latent space), decoders take normalised ones, as in the real SDV2 stack.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import torch

from livestyle.errors import ConfigError
from livestyle.models.taehv import StreamingTAEHV
from livestyle.models.testing.on_device import random_codecs_on, random_dit_on, random_prompt_encoder
from livestyle.models.vae import StreamingWanVAE
from livestyle.diffusion.stream_state import StreamModels

if TYPE_CHECKING:
    from livestyle.config import Config
    from livestyle.diffusion.stream import StreamPipeline

__all__ = ["DECODERS", "MODEL_SIZES", "RandomStackOptions", "RandomStreamOpener", "random_stream_models"]

MODEL_SIZES: tuple[str, ...] = ("1.3b", "14b", "tiny")
"""DiT sizes a random stack can be built at."""

DECODERS: tuple[str, ...] = ("wan", "tiny-decoder", "tiny")
"""Codec choices: Wan both ways, Wan encoder + TAEHV decoder, TAEHV both ways."""


@dataclass(frozen=True)
class RandomStackOptions:
    """How the random stack is laid out on the device.

    ``fuse_qkv``: one GEMM for q/k/v. ``channels_last``: TAEHV convolutions in ``channels_last``
    (the Wan VAE stays NCDHW: on the H100 ``channels_last_3d`` made it 1.6x slower, 68/124 ms vs
    43/75 ms encode/decode per chunk, benchmarks/NOTES.md). ``compile_dit``: wrap the DiT in
    ``torch.compile(dynamic=False)`` (one graph per block shape, reused across chunks).
    ``compile_codecs``: compile the TAEHV/Wan decoder and encoder chunk functions (CUDA only; the
    first chunks of each shape compile, so warm up before measuring). ``cuda_graphs``: replay the
    DiT's steady-state step from CUDA graphs (``CausalWanDiT.enable_cuda_graphs``; CUDA only, not
    with ``compile_dit``). ``fp8``: e4m3 block linears (``CausalWanDiT.quantize_fp8``), opt-in.
    """

    fuse_qkv: bool = True
    channels_last: bool = True
    compile_dit: bool = False
    compile_codecs: bool = True
    cuda_graphs: bool = True
    fp8: bool = False
    seed: int = 0


def _channels_last(module: torch.nn.Module, rank: int, fmt: torch.memory_format) -> None:
    """Put every ``rank``-D parameter (the convolution weights of that kind) in ``fmt`` in place."""
    with torch.no_grad():
        for p in module.parameters():
            if p.ndim == rank:
                p.data = p.data.contiguous(memory_format=fmt)


def _compiled(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    return torch.compile(fn, dynamic=False)  # type: ignore[return-value]


def random_stream_models(model: str, device: torch.device | str, dtype: torch.dtype,
                         options: RandomStackOptions = RandomStackOptions()) -> StreamModels:
    """The full random stack (DiT, Wan VAE, TAEHV, prompt stand-in) as :class:`StreamModels`.

    ``model``: ``"1.3b"``, ``"14b"`` or ``"tiny"`` (the tiny DiT gets the tiny VAE and TAEHV, so
    it runs on CPU in seconds through exactly the same code).
    """
    if model not in MODEL_SIZES:
        raise ConfigError(f"unknown model size {model!r} for random weights; use one of {', '.join(MODEL_SIZES)}")
    dev = torch.device(device)
    dit = random_dit_on(model, dev, dtype, seed=options.seed, fuse_qkv=options.fuse_qkv)
    tiny = model == "tiny"
    vae, taehv = random_codecs_on("tiny" if tiny else "wan2.1", "tiny" if tiny else "taew2_1", dev, dtype,
                                  seed=options.seed + 1)
    cl = options.channels_last and dev.type == "cuda"
    if cl:
        _channels_last(taehv, 4, torch.channels_last)
    if options.compile_codecs and dev.type == "cuda":
        vae.encode_chunk = _compiled(vae.encode_chunk)  # type: ignore[method-assign]
        vae.decode_chunk = _compiled(vae.decode_chunk)  # type: ignore[method-assign]
        taehv.encode_chunk = _compiled(taehv.encode_chunk)  # type: ignore[method-assign]
        taehv.decode_chunk = _compiled(taehv.decode_chunk)  # type: ignore[method-assign]

    def wan_encoder() -> StreamingWanVAE:
        return StreamingWanVAE(vae, normalize_latents=False)

    def wan_decoder() -> StreamingWanVAE:
        return StreamingWanVAE(vae)

    def tiny_encoder() -> StreamingTAEHV:
        return StreamingTAEHV(taehv, normalize_latents=False)

    def tiny_decoder() -> StreamingTAEHV:
        return StreamingTAEHV(taehv)

    if options.fp8:
        dit.quantize_fp8()
    net: torch.nn.Module = dit
    if options.compile_dit:
        net = torch.compile(dit, dynamic=False)  # type: ignore[assignment]
    elif options.cuda_graphs and dev.type == "cuda":
        dit.enable_cuda_graphs()
    return StreamModels(
        dit=net,  # type: ignore[arg-type]  # OptimizedModule forwards .config and calls like the model
        prompt_encoder=random_prompt_encoder(dit.config.text_dim, dev, dtype, seed=options.seed + 2),
        prompt_cached=lambda text: True,  # one fixed embedding: every prompt is "cached"
        codecs={
            "wan": (wan_encoder, wan_decoder),
            "tiny-decoder": (wan_encoder, tiny_decoder),
            "tiny": (tiny_encoder, tiny_decoder),
        },
        label=f"random-{model}",
    )


@dataclass(frozen=True)
class RandomStreamOpener:
    """Builds the random-weight :class:`~livestyle.diffusion.stream.StreamPipeline` of ``bench
    --gpus N`` in each stage process (``livestyle.parallel``'s ``opener``: picklable, so a spawned
    stage builds the same stack on its own device, ``config.model.device``).

    ``model``: the DiT size; ``dtype``: ``"bfloat16"``/``"float32"``/``"float16"``; ``family``: the
    family mapping (``diffusion.family.family_from_mapping``); the rest are the stream's controls.
    """

    model: str
    dtype: str
    options: RandomStackOptions
    family: tuple[tuple[str, object], ...]
    prompt: str
    strength: float
    steps: int
    seed: int
    width: int
    height: int
    decoder: str

    def __call__(self, config: Config, name: str = "bench") -> StreamPipeline:
        from livestyle.diffusion.family import family_from_mapping
        from livestyle.diffusion.stream import StreamPipeline
        from livestyle.diffusion.stream_state import Controls

        device = torch.device(config.model.device)
        dtype = getattr(torch, self.dtype)
        options = self.options
        if device.type != "cuda":  # compile and graphs are CUDA-only; say so in the options too
            options = replace(options, channels_last=False, compile_dit=False, compile_codecs=False, cuda_graphs=False)
        models = random_stream_models(self.model, device, dtype, options)
        controls = Controls(prompt=self.prompt, strength=self.strength, steps=self.steps, seed=self.seed,
                            width=self.width, height=self.height, decoder=self.decoder)
        family = family_from_mapping(dict(self.family), source=f"bench model {name}")
        return StreamPipeline(models, family, controls, device=device, dtype=dtype, name=name)
