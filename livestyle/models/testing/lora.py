"""Writers of random Wan 2.1 LoRA files in the layouts the community ships (tests, benchmarks).

| layout | keys (layer ``blocks.0.self_attn.q``) | alpha |
|---|---|---|
| ``peft`` | ``transformer.blocks.0.attn1.to_q.lora_A.weight`` / ``lora_B`` (diffusers names) | ``adapter_config.json`` beside the file |
| ``wan`` | ``diffusion_model.blocks.0.self_attn.q.lora_down.weight`` / ``lora_up`` | ``….alpha`` per layer |
| ``kohya`` | ``lora_unet_blocks_0_self_attn_q.lora_down.weight`` / ``lora_up`` | ``….alpha`` per layer |
| ``longlive`` | ``base_model.model.blocks.0.self_attn.q.lora_A.weight`` in ``{"generator_lora": ...}`` (.pt) | none in the file |

``random_lora`` returns ``{module: (A [r, in], B [out, r], alpha)}`` in original Wan names; ranks
and alphas may differ per layer.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from livestyle.models.dit import DIT_CONFIGS, DiTConfig
from livestyle.models.lora import layer_shape

__all__ = ["ALL_TARGETS", "LAYOUTS", "random_lora", "write_lora"]

LAYOUTS = ("peft", "wan", "kohya", "longlive")

ALL_TARGETS = ("self_attn.q", "self_attn.k", "self_attn.v", "self_attn.o", "cross_attn.q", "cross_attn.k",
               "cross_attn.v", "cross_attn.o", "ffn.0", "ffn.2")
"""The ten Linears of a block, original names."""

_DIFFUSERS = {"self_attn.q": "attn1.to_q", "self_attn.k": "attn1.to_k", "self_attn.v": "attn1.to_v",
              "self_attn.o": "attn1.to_out.0", "cross_attn.q": "attn2.to_q", "cross_attn.k": "attn2.to_k",
              "cross_attn.v": "attn2.to_v", "cross_attn.o": "attn2.to_out.0", "ffn.0": "ffn.net.0.proj",
              "ffn.2": "ffn.net.2", "text_embedding.0": "condition_embedder.text_embedder.linear_1",
              "time_projection.1": "condition_embedder.time_proj", "head.head": "proj_out"}

LoraLayers = dict[str, tuple[torch.Tensor, torch.Tensor, float | None]]


def random_lora(config: str | DiTConfig = "tiny", *, rank: int | Sequence[int] = 4, alpha: float | Sequence[float] | None = None,
                targets: Sequence[str] = ALL_TARGETS, extra: Sequence[str] = (), seed: int = 0,
                blocks: Sequence[int] | None = None) -> LoraLayers:
    """Random ``(A, B, alpha)`` for ``targets`` of every block (or ``blocks``) plus ``extra`` top-level
    layers (``text_embedding.0``, ``head.head``, ...). ``rank``/``alpha`` sequences cycle over layers."""
    cfg = DIT_CONFIGS[config] if isinstance(config, str) else config
    gen = torch.Generator().manual_seed(seed)
    ranks = [rank] if isinstance(rank, int) else list(rank)
    alphas = [alpha] if alpha is None or isinstance(alpha, (int, float)) else list(alpha)
    names = [f"blocks.{i}.{t}" for i in (blocks if blocks is not None else range(cfg.num_layers)) for t in targets]
    out: LoraLayers = {}
    for j, name in enumerate([*names, *extra]):
        shape = layer_shape(cfg, name)
        assert shape is not None, name
        r = ranks[j % len(ranks)]
        a = torch.randn(r, shape[1], generator=gen) / shape[1] ** 0.5
        b = 0.2 * torch.randn(shape[0], r, generator=gen) / r**0.5
        al = alphas[j % len(alphas)]
        out[name] = (a, b, None if al is None else float(al))
    return out


def _diffusers(name: str) -> str:
    if name.startswith("blocks."):
        _, idx, rest = name.split(".", 2)
        return f"blocks.{idx}.{_DIFFUSERS[rest]}"
    return _DIFFUSERS[name]


def write_lora(path: str | Path, layers: Mapping[str, tuple[torch.Tensor, torch.Tensor, float | None]], layout: str,
               *, file_alpha: float | None = None) -> Path:
    """Write ``layers`` in ``layout`` (module docstring). ``peft`` takes one alpha for the file
    (``file_alpha``, written to ``adapter_config.json``); per-layer alphas need ``wan`` or ``kohya``."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state: dict[str, torch.Tensor] = {}
    for name, (a, b, alpha) in layers.items():
        if layout == "peft":
            stem = f"transformer.{_diffusers(name)}"
            state[f"{stem}.lora_A.weight"], state[f"{stem}.lora_B.weight"] = a, b
        elif layout == "longlive":
            stem = f"base_model.model.{name}"
            state[f"{stem}.lora_A.weight"], state[f"{stem}.lora_B.weight"] = a, b
        elif layout in ("wan", "kohya"):
            stem = f"diffusion_model.{name}" if layout == "wan" else "lora_unet_" + name.replace(".", "_")
            state[f"{stem}.lora_down.weight"], state[f"{stem}.lora_up.weight"] = a, b
            if alpha is not None:
                state[f"{stem}.alpha"] = torch.tensor(float(alpha))
        else:
            raise ValueError(f"unknown layout {layout!r}; one of {', '.join(LAYOUTS)}")
    if layout == "longlive":
        torch.save({"generator_lora": state, "critic_lora": {}, "step": 1}, str(path))
        return path
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    if layout == "peft" and file_alpha is not None:
        r = next(iter(layers.values()))[0].shape[0]
        (path.parent / "adapter_config.json").write_text(json.dumps({"r": int(r), "lora_alpha": file_alpha}))
    return path
