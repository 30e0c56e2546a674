"""The person-mask provider loads MODNet checkpoints in the real formats (tiny random weights here)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from livestyle.config import PersonMaskConfig
from livestyle.errors import ModelLoadError, WeightsError
from livestyle.models.segmentation import (
    MODNET_CONFIGS,
    MODNet,
    config_from_state_dict,
    load_modnet,
)
from livestyle.effects.masks import open_mask_provider
from livestyle.effects.masks.person import (
    PersonSegmenter,
    model_input_size,
    resolve_person_checkpoint,
)


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


# ------------------------------------------------------------------ upstream reference
# MODNet's inference forward transcribed from the original repository, ZHKKKe/MODNet at commit
# 28165a451e4610c9d77cfdf925a94610bb2810fb: ``src/models/modnet.py`` (IBNorm, Conv2dIBNormRelu,
# SEBlock, LRBranch / HRBranch / FusionBranch ``forward`` with ``inference=True``, MODNet.forward)
# and ``src/models/backbones/mobilenetv2.py`` + ``wrapper.py`` (MobileNetV2 ``features``,
# ``InvertedResidual``, ``MobileNetV2Backbone.forward``). Written functionally over the official
# checkpoint's key names, so the very state dict our module loads runs here: no shared code.

_UP_SETTING = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1], [6, 160, 3, 2], [6, 320, 1, 1]]


def _bn(sd, p, x):  # nn.BatchNorm2d in eval mode (eps 1e-5)
    return torch.nn.functional.batch_norm(x, sd[p + ".running_mean"], sd[p + ".running_var"], sd[p + ".weight"],
                                          sd[p + ".bias"], False, 0.0, 1e-5)


def _up_backbone(sd, x):
    F = torch.nn.functional
    p = "backbone.model.features."
    relu6 = lambda t: t.clamp(0, 6)
    x = relu6(_bn(sd, p + "0.1", F.conv2d(x, sd[p + "0.0.weight"], None, 2, 1)))  # conv_bn(in, 32a, 2)
    i, feats = 1, {}
    for t, _c, n, s in _UP_SETTING:
        for j in range(n):
            stride = s if j == 0 else 1
            q = f"{p}{i}.conv."
            inp = x.shape[1]
            if t == 1:  # dw, bn, relu6, pw-linear, bn
                h = relu6(_bn(sd, q + "1", F.conv2d(x, sd[q + "0.weight"], None, stride, 1, groups=inp)))
                h = _bn(sd, q + "4", F.conv2d(h, sd[q + "3.weight"]))
            else:  # pw, bn, relu6, dw, bn, relu6, pw-linear, bn
                h = relu6(_bn(sd, q + "1", F.conv2d(x, sd[q + "0.weight"])))
                h = relu6(_bn(sd, q + "4", F.conv2d(h, sd[q + "3.weight"], None, stride, 1, groups=h.shape[1])))
                h = _bn(sd, q + "7", F.conv2d(h, sd[q + "6.weight"]))
            x = x + h if stride == 1 and inp == h.shape[1] else h  # use_res_connect
            feats[i] = x
            i += 1
    x = relu6(_bn(sd, p + "18.1", F.conv2d(x, sd[p + "18.0.weight"])))  # conv_1x1_bn(c, last_channel)
    return [feats[1], feats[3], feats[6], feats[13], x]  # enc2x, enc4x, enc8x, enc16x, enc32x


def _up_conv_ibn_relu(sd, p, x, stride=1, padding=0, ibn=True, relu=True):
    F = torch.nn.functional
    x = F.conv2d(x, sd[p + ".layers.0.weight"], sd[p + ".layers.0.bias"], stride, padding)
    if ibn:  # IBNorm: batch norm on int(c / 2) channels, affine-free instance norm on the rest
        nb = int(x.shape[1] / 2)
        bn_x = _bn(sd, p + ".layers.1.bnorm", x[:, :nb].contiguous())
        in_x = F.instance_norm(x[:, nb:].contiguous(), eps=1e-5)
        x = torch.cat((bn_x, in_x), 1)
    return F.relu(x) if relu else x


def _upstream_modnet(sd, img):
    """``MODNet.forward(img, inference=True)[2]``: the matte."""
    F = torch.nn.functional
    up = lambda t, s: F.interpolate(t, scale_factor=s, mode="bilinear", align_corners=False)
    enc2x, enc4x, _, _, enc32x = _up_backbone(sd, img)
    # LRBranch
    w = enc32x.mean(dim=(2, 3))  # SEBlock: AdaptiveAvgPool2d(1), Linear, ReLU, Linear, Sigmoid
    w = torch.sigmoid(F.linear(F.relu(F.linear(w, sd["lr_branch.se_block.fc.0.weight"])), sd["lr_branch.se_block.fc.2.weight"]))
    enc32x = enc32x * w[:, :, None, None]
    lr16x = _up_conv_ibn_relu(sd, "lr_branch.conv_lr16x", up(enc32x, 2), 1, 2)
    lr8x = _up_conv_ibn_relu(sd, "lr_branch.conv_lr8x", up(lr16x, 2), 1, 2)
    # HRBranch
    img2x, img4x = up(img, 1 / 2), up(img, 1 / 4)
    enc2x = _up_conv_ibn_relu(sd, "hr_branch.tohr_enc2x", enc2x)
    hr4x = _up_conv_ibn_relu(sd, "hr_branch.conv_enc2x", torch.cat((img2x, enc2x), 1), 2, 1)
    enc4x = _up_conv_ibn_relu(sd, "hr_branch.tohr_enc4x", enc4x)
    hr4x = _up_conv_ibn_relu(sd, "hr_branch.conv_enc4x", torch.cat((hr4x, enc4x), 1), 1, 1)
    hr4x = torch.cat((hr4x, up(lr8x, 2), img4x), 1)
    for k in range(3):
        hr4x = _up_conv_ibn_relu(sd, f"hr_branch.conv_hr4x.{k}", hr4x, 1, 1)
    hr2x = torch.cat((up(hr4x, 2), enc2x), 1)
    for k in range(4):
        hr2x = _up_conv_ibn_relu(sd, f"hr_branch.conv_hr2x.{k}", hr2x, 1, 1)
    # FusionBranch
    lr4x = _up_conv_ibn_relu(sd, "f_branch.conv_lr4x", up(lr8x, 2), 1, 2)
    f2x = _up_conv_ibn_relu(sd, "f_branch.conv_f2x", torch.cat((up(lr4x, 2), hr2x), 1), 1, 1)
    f = _up_conv_ibn_relu(sd, "f_branch.conv_f.0", torch.cat((up(f2x, 2), img), 1), 1, 1)
    f = _up_conv_ibn_relu(sd, "f_branch.conv_f.1", f, ibn=False, relu=False)
    return torch.sigmoid(f)


def _random_published_modnet(seed: int) -> MODNet:
    """The published size with torch's default random init and random running statistics."""
    torch.manual_seed(seed)
    model = MODNet(MODNET_CONFIGS["modnet"])
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith("running_var"):
                t.copy_(0.5 + torch.rand(t.shape, generator=g))
            elif name.endswith("running_mean"):
                t.copy_(0.1 * torch.randn(t.shape, generator=g))
    return model.eval()


@pytest.mark.parametrize("size", ["tiny", "modnet"])
def test_matches_the_upstream_forward_on_shared_random_weights(size):
    model = random_modnet(3) if size == "tiny" else _random_published_modnet(3)
    sd = model.state_dict()
    x = torch.rand(2, 3, 64, 96, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.inference_mode():
        got, ref = model(x), _upstream_modnet(sd, x)
    assert got.shape == ref.shape == (2, 1, 64, 96)
    # a matte with detail, not saturated: the comparison means something
    assert float(ref.std()) > 0.02 and 0.05 < float(ref.mean()) < 0.95
    assert float((got - ref).abs().max()) <= 1e-5
