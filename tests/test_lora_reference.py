"""LoRA merge parity with the reference (issue 19): a tiny random LoRA written in each layout diffusers'
Wan loader reads is loaded into diffusers' ``WanTransformer3DModel`` by diffusers/PEFT
(``WanLoraLoaderMixin.lora_state_dict`` → ``load_lora_into_transformer`` → ``fuse_lora(lora_scale)``)
and into ``CausalWanDiT`` by ``read_lora_file`` + ``LoraMerger``; every merged weight agrees within
1e-5 relative (measured <= 5e-8: float32 round-off; diffusers folds alpha/rank into A and B) and so
does the forward (measured 4e-6: the base models' own parity error, tests/test_dit_parity.py).

Layouts: PEFT/diffusers keys with mixed ranks (no alpha: scale 1), the same written by diffusers'
``save_lora_weights`` with ``lora_alpha`` in the safetensors header, original-Wan names with per-layer
alphas (diffusers' ``_convert_non_diffusers_wan_lora_to_diffusers``), Kohya/musubi
(``_convert_musubi_wan_lora_to_diffusers``). Top-level layers (text/time embeddings, head) ride
along where diffusers' converter takes them (not in Kohya, and not with an alpha in Wan names).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("peft")

from livestyle.models.dit import DIT_CONFIGS, CausalWanDiT
from livestyle.models.lora import LoraMerger, read_lora_file
from livestyle.models.testing.dit import diffusers_dit, random_dit, to_diffusers_keys
from livestyle.models.testing.lora import random_lora, write_lora

CFG = DIT_CONFIGS["tiny"]
TOL = 1e-5

TOP = ("text_embedding.0", "time_projection.1", "head.head")


def _lora(case: str) -> tuple[dict, str]:
    """``(layers, layout)`` of a case; layers in original names (``random_lora``)."""
    if case in ("peft", "peft-header"):
        return random_lora(rank=[4, 2, 8] if case == "peft" else 4, extra=TOP, seed=3), "peft"
    if case == "wan":  # per-layer alphas (one layer in three without); top-level layers without
        blocks = random_lora(rank=[4, 2, 8], alpha=[8.0, 1.0, None], seed=3)
        return {**blocks, **random_lora(rank=2, targets=(), extra=TOP, seed=4)}, "wan"
    if case == "kohya":  # musubi: every Linear of every block, each with its alpha
        return random_lora(rank=[4, 2, 8], alpha=[8.0, 1.0, 3.0], seed=3), "kohya"
    raise ValueError(case)


def _write(tmp_path: Path, case: str) -> Path:
    layers, layout = _lora(case)
    if case != "peft-header":
        return write_lora(tmp_path / f"{case}.safetensors", layers, layout)
    # what diffusers' own trainer saves: lora_adapter_metadata (r, lora_alpha) in the safetensors header
    from diffusers.loaders import WanLoraLoaderMixin

    written = write_lora(tmp_path / "plain" / "l.safetensors", layers, "peft")
    from safetensors.torch import load_file

    state = {k.removeprefix("transformer."): v for k, v in load_file(str(written)).items()}
    targets = sorted({k.split(".lora_")[0] for k in state})
    WanLoraLoaderMixin.save_lora_weights(
        tmp_path / "diffusers", transformer_lora_layers=state, weight_name="style.safetensors",
        transformer_lora_adapter_metadata={"r": 4, "lora_alpha": 6.0, "target_modules": targets},
    )
    return tmp_path / "diffusers" / "style.safetensors"


def _reference(path: Path, scale: float) -> dict[str, torch.Tensor]:
    """diffusers/PEFT: load the file into the diffusers Wan model, fuse at ``scale``, drop the adapters."""
    from diffusers.loaders import WanLoraLoaderMixin

    ref = diffusers_dit("tiny", seed=0)
    state, metadata = WanLoraLoaderMixin.lora_state_dict(str(path), return_lora_metadata=True)
    WanLoraLoaderMixin.load_lora_into_transformer(state, transformer=ref, adapter_name="style", metadata=metadata)
    ref.fuse_lora(lora_scale=scale)
    ref.unload_lora()  # plain Linears again, holding the fused weights
    return ref


def _ours(path: Path, scale: float) -> CausalWanDiT:
    dit = random_dit("tiny", seed=0).requires_grad_(False)
    LoraMerger(dit).set([(read_lora_file(path), scale)])
    return dit


def _worst_weight_error(ours: CausalWanDiT, ref: torch.nn.Module) -> float:
    want = to_diffusers_keys(ours.state_dict())
    got = ref.state_dict()
    assert set(got) == set(want), sorted(set(got) ^ set(want))[:5]
    return max(float((got[k] - want[k]).norm() / got[k].norm()) for k in got)


@torch.no_grad()
def _forward_error(ours: CausalWanDiT, ref: torch.nn.Module) -> float:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 16, 2, 8, 8, generator=g)
    t = torch.tensor([700.0])
    ctx = torch.randn(1, 12, CFG.text_dim, generator=g)
    a = ours(x, t, ctx)
    b = ref(x, t, F.pad(ctx, (0, 0, 0, CFG.text_len - ctx.shape[1])), return_dict=False)[0]
    return float((a - b).norm() / b.norm())


@pytest.fixture(autouse=True)
def _quiet_diffusers() -> None:
    logging.getLogger("diffusers").setLevel(logging.ERROR)


@pytest.mark.parametrize(("case", "scale"), [("peft", 0.7), ("peft-header", 1.0), ("wan", 1.5), ("kohya", -0.5)])
def test_merge_equals_diffusers_fuse_lora(tmp_path: Path, case: str, scale: float) -> None:
    path = _write(tmp_path, case)
    ref, ours = _reference(path, scale), _ours(path, scale)
    layers, _ = _lora(case)
    assert len(read_lora_file(path).layers) == len(layers)
    base = to_diffusers_keys(random_dit("tiny", seed=0).state_dict())
    moved = {k for k, v in ref.state_dict().items() if not torch.equal(v, base[k])}
    assert len(moved) == len(layers)  # diffusers really merged every layer of the file (none dropped)
    assert _worst_weight_error(ours, ref) <= TOL
    assert _forward_error(ours, ref) <= TOL


@pytest.mark.parametrize("case", ["peft-header", "wan", "kohya"])
def test_a_wrong_scale_or_alpha_is_caught(tmp_path: Path, case: str) -> None:
    """The comparison can fail: 1% off the user scale, or the file's alpha ignored, is far outside 1e-5."""
    path = _write(tmp_path, case)
    ref = _reference(path, 1.0)
    assert _worst_weight_error(_ours(path, 1.0), ref) <= TOL
    assert _worst_weight_error(_ours(path, 1.01), ref) > 100 * TOL
    assert _forward_error(_ours(path, 1.01), ref) > 10 * TOL
    # alpha ignored: every layer merged at scale 1 (what livestyle did with diffusers' header alpha)
    dit = random_dit("tiny", seed=0).requires_grad_(False)
    lora = read_lora_file(path)
    no_alpha = type(lora)(lora.source, {k: type(v)(v.down, v.up, None, v.key) for k, v in lora.layers.items()})
    LoraMerger(dit).set([(no_alpha, 1.0)])
    assert _worst_weight_error(dit, ref) > 100 * TOL
