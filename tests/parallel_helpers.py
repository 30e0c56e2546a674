"""A tiny random stream for the pipeline-parallel tests, buildable alike in the test and in every stage.

:class:`TinyStack` is the ``opener`` the stage processes call (``WorkerSpec.opener``): a picklable
object that builds the same :class:`~livestyle.diffusion.stream.StreamPipeline` in any process from
seeded random weights (:mod:`livestyle.models.testing`): a ``tiny``-shaped DiT with ``layers``
blocks (3 so that three stages each get one), the tiny Wan VAE, and a prompt encoder whose
embedding is a function of the text (so a prompt change changes the picture). Import as a sibling
module (``from parallel_helpers import TinyStack``); spawned stages find it on the inherited
``sys.path``.
"""

from __future__ import annotations

import dataclasses
import zlib
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import torch

from livestyle.config import Config
from livestyle.diffusion.family import FAMILY_PRESETS
from livestyle.diffusion.loras import LoraLibrary
from livestyle.diffusion.stream import StreamPipeline
from livestyle.diffusion.stream_state import Controls, StreamModels
from livestyle.engine.frames import Frame
from livestyle.models.dit import DIT_CONFIGS, CausalWanDiT
from livestyle.models.testing.dit import random_dit_state_dict
from livestyle.models.testing.stack import random_wan_vae
from livestyle.models.vae import StreamingWanVAE

SIZE = (32, 32)


@dataclass(frozen=True)
class TinyStack:
    """Build the test stream (module docstring) for ``(config, model name)``."""

    layers: int = 3
    lora_dir: str | None = None
    double: bool = False  # float64 throughout (numerics apart from semantics)

    @property
    def dit_config(self):  # type: ignore[no-untyped-def]
        return dataclasses.replace(DIT_CONFIGS["tiny"], num_layers=self.layers)

    def __call__(self, config: Config, name: str = "tiny") -> StreamPipeline:
        torch.manual_seed(0)
        cfg = self.dit_config
        dit = CausalWanDiT(cfg)
        dit.load_state_dict(random_dit_state_dict(cfg, seed=1))
        dit.eval()
        vae = random_wan_vae("tiny", seed=2)
        dtype = torch.float64 if self.double else torch.float32
        dit.to(dtype)
        vae.to(dtype)

        def encode(text: str) -> torch.Tensor:
            gen = torch.Generator().manual_seed(zlib.crc32(text.encode()))
            return torch.randn(1, 8, cfg.text_dim, generator=gen, dtype=dtype)

        models = StreamModels(
            dit=dit,
            prompt_encoder=encode,
            prompt_cached=lambda text: True,
            codecs={"wan": (lambda: StreamingWanVAE(vae, normalize_latents=False), lambda: StreamingWanVAE(vae))},
            loras=LoraLibrary(self.lora_dir, cfg, device="cpu"),
        )
        m = config.model
        family = FAMILY_PRESETS["sdv2"]
        if m.stream_batch is not None:
            family = family.with_overrides(stream_batch=m.stream_batch)
        controls = Controls(prompt=m.prompt, strength=m.strength, steps=m.steps, seed=m.seed,
                            width=SIZE[0], height=SIZE[1])
        return StreamPipeline(models, family, controls, dtype=dtype, transition_chunks=m.transition_chunks, name=name)


def frames(start: int, count: int, size: tuple[int, int] = SIZE) -> list[Frame]:
    """``count`` moving test pictures of ``size`` = (width, height), indices from ``start``."""
    w, h = size
    ys, xs = np.mgrid[0:h, 0:w]
    out = []
    for i in range(start, start + count):
        image = np.stack([(xs * 7 + 11 * i) % 256, (ys * 5 + 3 * i) % 256, ((xs + ys) * 3 + i) % 256], -1)
        out.append(Frame(image.astype(np.uint8), i, Fraction(1, 30), 0.0, i))
    return out
