"""The person-mask provider loads MODNet checkpoints in the real formats (tiny random weights here)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from livestyle.config import PersonMaskConfig
from livestyle.errors import ModelLoadError, WeightsError
from livestyle.models.segmentation import MODNET_CONFIGS, MODNet, config_from_state_dict, load_modnet
from livestyle.pipeline.masks import open_mask_provider
from livestyle.pipeline.masks.person import PersonSegmenter, model_input_size, resolve_person_checkpoint


def random_modnet(seed: int = 0) -> MODNet:
    torch.manual_seed(seed)
    model = MODNet(MODNET_CONFIGS["tiny"])
    with torch.no_grad():
        for name, buf in model.named_buffers():
            if name.endswith("running_var"):
                buf.uniform_(0.5, 1.5)
            elif name.endswith("running_mean"):
                buf.normal_(0, 0.1)
    return model.eval()


def write_official_ckpt(model: MODNet, path: Path) -> Path:
    """The official file: torch.save of a DataParallel state dict (``module.`` prefix, encoder twice)."""
    torch.save({"module." + k: v.clone() for k, v in model.state_dict().items()}, path)
    return path


def test_published_architecture_has_the_official_entries():
    state = MODNet(MODNET_CONFIGS["modnet"]).state_dict()
    assert len(state) == 751  # the official checkpoint holds 751 entries
    assert "lr_branch.backbone.model.features.18.0.weight" in state
    assert tuple(state["lr_branch.se_block.fc.0.weight"].shape) == (320, 1280)
    assert config_from_state_dict(state) == MODNET_CONFIGS["modnet"]


def test_official_ckpt_loads_and_matches(tmp_path):
    model = random_modnet()
    path = write_official_ckpt(model, tmp_path / "modnet_webcam_portrait_matting.ckpt")
    loaded = load_modnet(path)
    assert loaded.cfg == MODNET_CONFIGS["tiny"]
    assert loaded.lr_branch.backbone is loaded.backbone
    x = torch.rand(1, 3, 64, 96) * 2 - 1
    with torch.inference_mode():
        ref, got = model(x), loaded(x)
    assert got.shape == (1, 1, 64, 96)
    assert torch.equal(ref, got)
    assert float(got.min()) >= 0 and float(got.max()) <= 1


def test_safetensors_conversion_loads(tmp_path):
    model = random_modnet(1)
    # safetensors cannot hold shared tensors: conversions carry two copies, or only one name
    state = {"module." + k: v.clone().contiguous() for k, v in model.state_dict().items() if not k.startswith("lr_branch.backbone.")}
    save_file(state, str(tmp_path / "model.safetensors"))
    loaded = load_modnet(tmp_path / "model.safetensors")
    x = torch.rand(1, 3, 32, 64) * 2 - 1
    with torch.inference_mode():
        assert torch.equal(model(x), loaded(x))


def test_bad_checkpoints(tmp_path):
    torch.save({"module.conv.weight": torch.zeros(1)}, tmp_path / "other.ckpt")
    with pytest.raises(ModelLoadError) as err:
        load_modnet(tmp_path / "other.ckpt")
    assert str(err.value) == "not a MODNet checkpoint: key 'backbone.model.features.0.0.weight' is missing"
    state = {"module." + k: v for k, v in random_modnet().state_dict().items()}
    del state["module.f_branch.conv_f.1.layers.0.bias"]
    torch.save(state, tmp_path / "cut.ckpt")
    with pytest.raises(ModelLoadError) as err:
        load_modnet(tmp_path / "cut.ckpt")
    assert "does not fit MODNet" in str(err.value) and "f_branch.conv_f.1.layers.0.bias" in str(err.value)


def test_segmenter_runs_at_model_size_and_reuses_with_interval(tmp_path):
    path = write_official_ckpt(random_modnet(), tmp_path / "m.ckpt")
    seg = open_mask_provider("person-hq", person=PersonMaskConfig(checkpoint=str(path), input_size=64, interval=2))
    assert isinstance(seg, PersonSegmenter) and seg.name == "person-hq"
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (120, 160, 3), dtype=np.uint8) for _ in range(3)]
    masks = [seg.compute(f).subject for f in frames]
    assert model_input_size(120, 160, 64) == (64, 96)  # 4:3 rounded to multiples of 32
    assert masks[0].shape == (120, 160)  # back at the frame's size and aspect
    assert masks[0].dtype == np.float32 and 0 <= masks[0].min() and masks[0].max() <= 1
    assert masks[1] is masks[0] and masks[2] is not masks[0]
    seg.reset()
    assert seg.compute(frames[1]).subject is not masks[0]


def test_missing_model_names_the_pull_command(tmp_path, monkeypatch):
    with pytest.raises(WeightsError) as err:
        resolve_person_checkpoint(PersonMaskConfig(checkpoint=str(tmp_path / "nope.ckpt")))
    assert str(err.value) == f"person mask checkpoint {tmp_path / 'nope.ckpt'} does not exist; fix effects.person.checkpoint"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("LIVESTYLE_WEIGHTS_DIR", str(tmp_path / "weights"))
    with pytest.raises(WeightsError) as err:
        open_mask_provider("person-hq", person=PersonMaskConfig())
    message = str(err.value)
    assert message.startswith("person mask (person-hq, MODNet): model 'modnet-webcam' is missing its model file ")
    assert "run `livestyle weights pull modnet-webcam`" in message


def test_registry_file_is_found_and_loaded(tmp_path, monkeypatch):
    """A file where `livestyle weights pull` / --weights-dir puts it resolves through the registry."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("LIVESTYLE_WEIGHTS_DIR", str(tmp_path / "weights"))
    target = tmp_path / "weights" / "modnet-webcam" / "models" / "modnet_webcam_portrait_matting.ckpt"
    target.parent.mkdir(parents=True)
    write_official_ckpt(random_modnet(), target)
    assert resolve_person_checkpoint(PersonMaskConfig()) == target
    seg = open_mask_provider("person-hq", person=PersonMaskConfig(input_size=32))
    assert isinstance(seg, PersonSegmenter)  # device "auto": the GPU when torch sees one
    assert next(seg.model.parameters()).device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert seg.compute(np.zeros((48, 64, 3), np.uint8)).subject.shape == (48, 64)
