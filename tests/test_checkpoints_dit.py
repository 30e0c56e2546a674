"""Every DiT checkpoint layout round-trips through load_dit; bad input gets a one-line ModelLoadError."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

import pytest
import torch
from safetensors.torch import save_file

from livestyle.errors import ModelLoadError
from livestyle.models import load_dit
from livestyle.models.checkpoints import dit_state_dict
from livestyle.models.testing import dit as W

Writer = Callable[[Path], tuple[Path, dict]]

# layout -> (detected format, writer, container the registry names for that family)
LAYOUTS: dict[str, tuple[str, Writer, str | None]] = {
    "wan": ("wan", lambda d: (d / "w.safetensors", W.write_wan_checkpoint(d / "w.safetensors")), None),
    "wan-sharded": ("wan", lambda d: (d / "shards", W.write_wan_checkpoint(d / "shards", shards=3)), None),
    "wan-index-file": ("wan", lambda d: (d / "s" / "diffusion_pytorch_model.safetensors.index.json",
                                         W.write_wan_checkpoint(d / "s", shards=2)), None),
    "comfy": ("comfy", lambda d: (d / "c.safetensors",
                                  W.write_wan_checkpoint(d / "c.safetensors", prefix="model.diffusion_model.")), None),
    "diffusers-root": ("diffusers", lambda d: (d / "pipe", W.write_diffusers_checkpoint(d / "pipe")), None),
    "diffusers-transformer": ("diffusers", lambda d: (d / "pipe" / "transformer", W.write_diffusers_checkpoint(d / "pipe")), None),
    "self-forcing-ema": ("pt_generator_ema", lambda d: (d / "sf.pt", W.write_self_forcing_checkpoint(d / "sf.pt")), "generator_ema"),
    "causvid": ("pt_generator", lambda d: (d / "cv.pt", W.write_causvid_checkpoint(d / "cv.pt")), "generator"),
    "sdv2-prefixed": ("pt_generator", lambda d: (d / "a" / "model.pt", W.write_sdv2_checkpoint(d / "a" / "model.pt")), "generator"),
    "sdv2-both-sets": ("pt_generator", lambda d: (d / "e.pt", W.write_sdv2_checkpoint(d / "e.pt", ema_too=True)), "generator"),
    "sdv2-bare-folder": ("pt_state_dict", lambda d: (d / "b", W.write_sdv2_checkpoint(d / "b" / "model.pt", prefix=False, container=None)), None),
    "sdv2-state-dict": ("pt_state_dict", lambda d: (d / "c.pt", W.write_sdv2_checkpoint(d / "c.pt", prefix=False, container="state_dict")), "generator"),
    "krea": ("krea", lambda d: (d / "k.safetensors", W.write_krea_checkpoint(d / "k.safetensors")), None),
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_every_layout_round_trips(layout: str, tmp_path: Path) -> None:
    fmt, writer, container = LAYOUTS[layout]
    path, expected = writer(tmp_path)
    assert dit_state_dict(path, container)[0] == fmt
    model = load_dit(path, container=container)
    assert model.config.dim == 64 and model.config.num_layers == 2 and model.config.text_dim == 32
    state = model.state_dict()
    assert set(state) == set(expected)
    for key, value in expected.items():
        assert torch.equal(state[key], value), key
    assert not any(p.requires_grad for p in model.parameters()) and not model.training


# ---------------------------------------------------------------- each family takes what upstream takes


def test_registry_names_the_container_each_upstream_loader_takes() -> None:
    from livestyle.models.weights import get_model

    assert get_model("sdv2-1.3b").container == get_model("sdv2-14b").container == "generator"
    assert get_model("longlive-1.3b").container == "generator"
    assert get_model("self-forcing-1.3b").container == "generator_ema"
    assert get_model("krea-14b").container is None and get_model("tiny").container == "generator"


def test_sdv2_takes_generator_when_the_file_also_has_ema(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # streamv2v/inference_common.py load_generator_state_dict: first of generator, generator_ema, state_dict
    W.write_sdv2_checkpoint(tmp_path / "model.pt", seed=3, ema_too=True)
    raw = torch.load(tmp_path / "model.pt", weights_only=True)
    upstream = {k.removeprefix("model."): v for k, v in raw["generator"].items()}
    with caplog.at_level(logging.INFO, logger="livestyle.models.checkpoints"):
        model = load_dit(tmp_path / "model.pt", container="generator")
    assert all(torch.equal(model.state_dict()[k], v) for k, v in upstream.items())
    assert "holds both 'generator' and 'generator_ema'; took 'generator' because the registry names it" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="livestyle.models.checkpoints"):
        default = load_dit(tmp_path / "model.pt")  # no registry: generator, and the log says why
    assert torch.equal(default.state_dict()["head.head.weight"], upstream["head.head.weight"])
    assert "took 'generator' because no container was named" in caplog.text


def test_self_forcing_takes_the_fp32_ema_weights(tmp_path: Path) -> None:
    # demo.py: transformer.load_state_dict(state_dict['generator_ema']) into the wrapper (model.<key>)
    ema = W.write_self_forcing_checkpoint(tmp_path / "sf.pt", seed=5)
    raw = torch.load(tmp_path / "sf.pt", weights_only=True)
    assert set(raw) == {"generator", "critic", "generator_ema"}
    assert all(torch.equal(raw["generator_ema"][f"model.{k}"], v) for k, v in ema.items())
    model = load_dit(tmp_path / "sf.pt", container="generator_ema")
    assert torch.equal(model.state_dict()["head.head.weight"], ema["head.head.weight"])
    assert model.patch_embedding.weight.dtype == torch.float32
    generator = load_dit(tmp_path / "sf.pt", container="generator").state_dict()["head.head.weight"]
    assert not torch.equal(generator, ema["head.head.weight"])


def test_a_missing_named_container_falls_back_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    gen = W.write_causvid_checkpoint(tmp_path / "cv.pt", seed=2)  # a Self-Forcing save before EMA starts
    with caplog.at_level(logging.WARNING, logger="livestyle.models.checkpoints"):
        model = load_dit(tmp_path / "cv.pt", container="generator_ema")
    assert torch.equal(model.state_dict()["head.head.weight"], gen["head.head.weight"])
    assert "took 'generator' because the file has no 'generator_ema', which the registry names" in caplog.text


def test_longlive_base_and_real_lora_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # inference.py (v1.0): state_dict["generator"] (use_ema: false), then PEFT LoRA with the config's
    # rank/alpha; lora.pt is the trainer's {"generator_lora", "critic_lora", "step"} with no alpha in it
    merged = W.write_longlive_checkpoint(tmp_path / "base.pt", tmp_path / "lora.pt", rank=4, alpha=8.0)
    lora_file = torch.load(tmp_path / "lora.pt", weights_only=True)
    assert set(lora_file) == {"generator_lora", "critic_lora", "step"}
    assert all(k.startswith("base_model.model.blocks.") and k.endswith((".lora_A.weight", ".lora_B.weight"))
               for k in lora_file["generator_lora"])
    assert len(lora_file["generator_lora"]) == 2 * 2 * len(W.LORA_TARGETS)  # A and B, 2 blocks, 10 Linears
    with caplog.at_level(logging.INFO, logger="livestyle.models.checkpoints"):
        model = load_dit(tmp_path / "base.pt", container="generator", lora=tmp_path / "lora.pt", lora_alpha=8.0, lora_rank=4)
    assert "took 'generator' because the registry names it" in caplog.text
    state = model.state_dict()
    for key, value in merged.items():
        assert torch.allclose(state[key], value, atol=1e-6), key
    base = torch.load(tmp_path / "base.pt", weights_only=True)["generator"]
    assert torch.equal(state["head.head.weight"], base["model.head.head.weight"])  # untouched by the LoRA
    unscaled = load_dit(tmp_path / "base.pt", container="generator", lora=tmp_path / "lora.pt").state_dict()
    a = lora_file["generator_lora"]["base_model.model.blocks.0.ffn.0.lora_A.weight"]
    b = lora_file["generator_lora"]["base_model.model.blocks.0.ffn.0.lora_B.weight"]
    assert torch.allclose(unscaled["blocks.0.ffn.0.weight"], base["model.blocks.0.ffn.0.weight"] + b @ a, atol=1e-6)
    with pytest.raises(ModelLoadError, match="has rank 4, but the model's adapter config says rank 256") as exc:
        load_dit(tmp_path / "base.pt", container="generator", lora=tmp_path / "lora.pt", lora_alpha=256.0, lora_rank=256)
    _one_line(exc)


def test_longlive_ema_keys_with_fsdp_parts_load_when_asked_for(tmp_path: Path) -> None:
    W.write_longlive_checkpoint(tmp_path / "base.pt", tmp_path / "lora.pt")
    raw = torch.load(tmp_path / "base.pt", weights_only=True)["generator_ema"]
    assert "model.blocks.0._fsdp_wrapped_module.self_attn.q.weight" in raw
    ema = load_dit(tmp_path / "base.pt", container="generator_ema").state_dict()
    assert torch.equal(ema["blocks.1.ffn.2.weight"], raw["model.blocks.1._fsdp_wrapped_module.ffn.2.weight"])


def test_krea_keeps_bf16_and_dtype_override_casts(tmp_path: Path) -> None:
    W.write_krea_checkpoint(tmp_path / "k.safetensors")
    assert load_dit(tmp_path / "k.safetensors").patch_embedding.weight.dtype == torch.bfloat16
    model = load_dit(tmp_path / "k.safetensors", dtype=torch.float32)
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_loaded_model_runs_like_the_original(tmp_path: Path) -> None:
    W.write_sdv2_checkpoint(tmp_path / "model.pt", seed=3)
    model = load_dit(tmp_path / "model.pt")
    ref = W.random_dit("tiny", seed=3)
    x = torch.randn(1, 16, 2, 8, 8)
    ctx = torch.randn(1, 4, 32)
    with torch.no_grad():
        assert torch.equal(model(x, torch.tensor([700.0]), ctx), ref(x, torch.tensor([700.0]), ctx))


# ------------------------------------------------------------------------------ bad input


def _one_line(exc: pytest.ExceptionInfo[ModelLoadError]) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "notes.safetensors"
    path.write_text("hello, not tensors")
    with pytest.raises(ModelLoadError, match="is not a readable safetensors file") as exc:
        load_dit(path)
    _one_line(exc)
    other = tmp_path / "notes.txt"
    other.write_text("hi")
    with pytest.raises(ModelLoadError, match="is not a checkpoint livestyle knows"):
        load_dit(other)


def test_truncated_safetensors(tmp_path: Path) -> None:
    W.write_wan_checkpoint(tmp_path / "w.safetensors")
    data = (tmp_path / "w.safetensors").read_bytes()
    (tmp_path / "t.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match=r"t.safetensors is not a readable safetensors file .*truncated") as exc:
        load_dit(tmp_path / "t.safetensors")
    _one_line(exc)


def test_missing_and_extra_keys_are_named(tmp_path: Path) -> None:
    state = W.random_dit_state_dict("tiny", 0)
    del state["blocks.1.ffn.2.bias"], state["head.head.weight"]
    state["blocks.0.self_attn.k_img.weight"] = torch.zeros(64, 64)
    save_file(state, str(tmp_path / "m.safetensors"))
    with pytest.raises(ModelLoadError) as exc:
        load_dit(tmp_path / "m.safetensors")
    assert _one_line(exc).endswith(
        "does not fit the Wan transformer: missing 2 keys (blocks.1.ffn.2.bias, head.head.weight); "
        "1 unexpected keys (blocks.0.self_attn.k_img.weight)"
    )


def test_wrong_shape_is_named(tmp_path: Path) -> None:
    state = W.random_dit_state_dict("tiny", 0)
    state["blocks.0.ffn.2.weight"] = torch.zeros(64, 100)
    save_file(state, str(tmp_path / "m.safetensors"))
    with pytest.raises(ModelLoadError, match=r"blocks.0.ffn.2.weight has shape \(64, 100\), the model expects \(64, 128\)"):
        load_dit(tmp_path / "m.safetensors")


def test_14b_file_forced_into_13b_config(tmp_path: Path) -> None:
    # Only the tensors that give the size away (a real 14B file is 28 GB).
    state = {
        "model.patch_embedding.weight": torch.zeros(5120, 16, 1, 2, 2, dtype=torch.bfloat16),
        "model.blocks.39.modulation": torch.zeros(1, 6, 5120, dtype=torch.bfloat16),
    }
    save_file(state, str(tmp_path / "krea.safetensors"))
    with pytest.raises(ModelLoadError) as exc:
        load_dit(tmp_path / "krea.safetensors", config="1.3b")
    assert "holds a transformer with dim 5120, 40 layers, ffn 13824, text_dim 4096, but config 1.3b expects " \
           "dim 1536, 30 layers, ffn 8960, text_dim 4096; pick the matching model size" in _one_line(exc)


def test_lora_for_another_base(tmp_path: Path) -> None:
    W.write_longlive_checkpoint(tmp_path / "base.pt", tmp_path / "lora.pt")
    wrong_shape = {
        "base_model.model.blocks.0.self_attn.q.lora_A.weight": torch.zeros(4, 1536),
        "base_model.model.blocks.0.self_attn.q.lora_B.weight": torch.zeros(1536, 4),
    }
    torch.save({"generator_lora": wrong_shape}, str(tmp_path / "big.pt"))
    with pytest.raises(ModelLoadError, match=r"does not match the base: blocks.0.self_attn.q is \(64, 64\) but the LoRA gives \(1536, 1536\)"):
        load_dit(tmp_path / "base.pt", lora=tmp_path / "big.pt")
    deeper = {
        "base_model.model.blocks.7.ffn.0.lora_A.weight": torch.zeros(4, 64),
        "base_model.model.blocks.7.ffn.0.lora_B.weight": torch.zeros(128, 4),
    }
    torch.save({"generator_lora": deeper}, str(tmp_path / "deep.pt"))
    with pytest.raises(ModelLoadError, match="targets blocks.7.ffn.0, which the base transformer does not have"):
        load_dit(tmp_path / "base.pt", lora=tmp_path / "deep.pt")
    torch.save({"generator_lora": {"blocks.0.ffn.0.weight": torch.zeros(2, 2)}}, str(tmp_path / "nolora.pt"))
    with pytest.raises(ModelLoadError, match="is not a LoRA weight"):
        load_dit(tmp_path / "base.pt", lora=tmp_path / "nolora.pt")


def test_unknown_format(tmp_path: Path) -> None:
    save_file({"encoder.conv1.weight": torch.zeros(4, 4)}, str(tmp_path / "vae.safetensors"))
    with pytest.raises(ModelLoadError, match=r"does not look like a Wan 2.1 transformer \(found keys encoder.conv1.weight\)"):
        load_dit(tmp_path / "vae.safetensors")
    torch.save({"step": 3, "optimizer": {"lr": 1.0}}, str(tmp_path / "train.pt"))
    with pytest.raises(ModelLoadError, match=r"holds a dict with keys \[optimizer, step\] but no weights"):
        load_dit(tmp_path / "train.pt")
    W.write_wan_checkpoint(tmp_path / "w.safetensors")
    with pytest.raises(ModelLoadError, match="unknown transformer config 'huge'"):
        load_dit(tmp_path / "w.safetensors", config="huge")
