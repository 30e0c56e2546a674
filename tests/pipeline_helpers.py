"""A tiny StreamPipeline on the CPU for the tests that run the real denoising loop, and functions
taken from the StreamDiffusionV2 reference for the parity tests.

Import as a sibling module (``from pipeline_helpers import tiny_wan_pipeline``), like ``host_canary``.
The random weights come from :mod:`livestyle.models.testing` (their one home); this module only
puts them together the way these tests have always built them.
"""

from __future__ import annotations

import ast
import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from livestyle.models.dit import DIT_CONFIGS, CausalWanDiT
from livestyle.models.testing.dit import random_dit_state_dict
from livestyle.models.testing.stack import random_wan_vae
from livestyle.models.vae import StreamingWanVAE
from livestyle.diffusion.family import FAMILY_PRESETS
from livestyle.diffusion.stream import StreamPipeline
from livestyle.diffusion.stream_state import Controls, StreamModels


def tiny_wan_pipeline(width: int, height: int, *, steps: int = 2, family: str = "sdv2",
                      dit: CausalWanDiT | None = None, encoder: type[StreamingWanVAE] = StreamingWanVAE,
                      decoder: type[StreamingWanVAE] = StreamingWanVAE, **models: Any) -> StreamPipeline:
    """A :class:`StreamPipeline` over the ``tiny`` random model, working at ``width`` x ``height``.

    The DiT: ``tiny`` with ``random_dit_state_dict(seed=1)``, in eval mode (``dit`` replaces it);
    the codec ``"wan"``: the ``tiny`` Wan VAE (``random_wan_vae(seed=2)``) wrapped in ``encoder``
    (raw latents, as SDV2 wants) and ``decoder``, which may be subclasses that record what passes;
    every prompt encodes to one fixed embedding ``[1, 8, text_dim]`` (seed 3). Controls: prompt
    ``"p"``, strength 0.8, ``steps`` steps, seed 0; the family preset ``family``. ``models``: more
    :class:`StreamModels` fields (``prompt_cached``, ``loras``).
    """
    if dit is None:
        dit = CausalWanDiT(DIT_CONFIGS["tiny"])
        dit.load_state_dict(random_dit_state_dict("tiny", seed=1))
        dit.eval()
    vae = random_wan_vae("tiny", seed=2)
    embeds = torch.randn(1, 8, DIT_CONFIGS["tiny"].text_dim, generator=torch.Generator().manual_seed(3))
    stream_models = StreamModels(
        dit=dit,
        prompt_encoder=lambda text: embeds,
        codecs={"wan": (lambda: encoder(vae, normalize_latents=False), lambda: decoder(vae))},
        **models,
    )
    controls = Controls(prompt="p", strength=0.8, steps=steps, seed=0, width=width, height=height)
    return StreamPipeline(stream_models, FAMILY_PRESETS[family], controls)


def reference_function(module_file: str, name: str) -> Callable[..., Any]:
    """A top-level function of streamv2v (PyPI ``streamdiffusionv2`` 0.1.1), compiled from its source
    file unchanged, e.g. ``("inference.py", "compute_noise_scale_and_step")``.

    ``streamv2v/__init__`` imports torchvision and omegaconf (its CLI/API), which this environment
    does not have; the functions themselves only need torch, so they are taken from the file, and the
    tests run the authors' own code. Skips the test (or the module, called at import) without the
    package: ``pip install --no-deps streamdiffusionv2==0.1.1``.
    """
    spec = importlib.util.find_spec("streamv2v")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("pip install --no-deps streamdiffusionv2==0.1.1", allow_module_level=True)
    path = Path(next(iter(spec.submodule_search_locations))) / module_file
    tree = ast.parse(path.read_text())
    node = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name)
    namespace: dict = {"torch": torch}
    exec(compile(ast.Module(body=[node], type_ignores=[]), str(path), "exec"), namespace)  # noqa: S102
    return namespace[name]
