"""MODNet person matting (Ke et al., AAAI 2022), in pure torch, for the ``person`` mask provider.

MODNet predicts a person alpha matte from one RGB image with no trimap: a MobileNetV2 encoder
(low-resolution semantic branch), a high-resolution detail branch and a fusion branch. The
official checkpoints (``modnet_webcam_portrait_matting.ckpt``, Apache-2.0, ZHKKKe/MODNet) are
pickled ``DataParallel`` state dicts whose keys start with ``module.``; the encoder is stored twice
(``backbone.*`` and ``lr_branch.backbone.*``, one module under two names). This file reproduces
that module tree so the file loads with ``strict=True``; only inference is implemented (the
training-only heads ``lr_branch.conv_lr`` and ``hr_branch.conv_hr`` are kept for the keys but
never run).

Layout: input ``[B, 3, H, W]`` float32 RGB in ``[-1, 1]`` with ``H`` and ``W`` multiples of 32;
output ``[B, 1, H, W]`` float32 matte in ``[0, 1]`` (1 = person).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from livestyle.errors import ModelLoadError
from livestyle.models.state_files import read_state_dict

__all__ = [
    "MODNetConfig",
    "MODNET_CONFIGS",
    "MODNet",
    "config_from_state_dict",
    "load_modnet",
    "modnet_state_dict_from_file",
]


@dataclass(frozen=True)
class MODNetConfig:
    """Sizes of a MODNet. ``alpha`` is MobileNetV2's width multiplier; ``last_channel`` its head width."""

    alpha: float = 1.0
    last_channel: int = 1280
    hr_channels: int = 32
    expansion: int = 6

    @property
    def block_channels(self) -> tuple[int, ...]:
        """Output channels of the seven inverted-residual stages."""
        return tuple(_make_divisible(int(c * self.alpha), 8) for c in (16, 24, 32, 64, 96, 160, 320))

    @property
    def stem_channels(self) -> int:
        return _make_divisible(32 * self.alpha, 8)

    @property
    def enc_channels(self) -> tuple[int, int, int, int, int]:
        """Channels of the encoder features at strides 2, 4, 8, 16, 32."""
        c = self.block_channels
        return (c[0], c[1], c[2], c[4], self.last_channel)


MODNET_CONFIGS: dict[str, MODNetConfig] = {
    "modnet": MODNetConfig(),
    "tiny": MODNetConfig(alpha=0.25, last_channel=32, hr_channels=8),
}
"""Named sizes: the published MODNet and a tiny one for tests."""

# (expansion, channels index, repeats, stride) of MobileNetV2's inverted residual stages.
_STAGES = ((1, 0, 1, 1), (6, 1, 2, 2), (6, 2, 3, 2), (6, 3, 4, 2), (6, 4, 3, 1), (6, 5, 3, 2), (6, 6, 1, 1))


def _make_divisible(v: float, divisor: int) -> int:
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class _ConvBNReLU6(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU6(inplace=True),
        )


class _InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = round(cin * expansion)
        self.use_residual = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expansion != 1:
            layers += [nn.Conv2d(cin, hidden, 1, 1, 0, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True)]
        layers += [
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, cout, 1, 1, 0, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_residual else self.conv(x)


class _MobileNetV2(nn.Module):
    """MobileNetV2 features only (``features.0`` .. ``features.18``), no classifier."""

    def __init__(self, cfg: MODNetConfig) -> None:
        super().__init__()
        cin = cfg.stem_channels
        layers: list[nn.Module] = [_ConvBNReLU6(3, cin, 3, 2)]
        for t, ci, n, s in _STAGES:
            cout = cfg.block_channels[ci]
            for i in range(n):
                layers.append(_InvertedResidual(cin, cout, s if i == 0 else 1, t if t == 1 else cfg.expansion))
                cin = cout
        layers.append(_ConvBNReLU6(cin, cfg.last_channel, 1, 1))
        self.features = nn.Sequential(*layers)


class _Backbone(nn.Module):
    def __init__(self, cfg: MODNetConfig) -> None:
        super().__init__()
        self.model = _MobileNetV2(cfg)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Features at strides 2, 4, 8, 16, 32."""
        f = self.model.features
        out = []
        for start, stop in ((0, 2), (2, 4), (4, 7), (7, 14), (14, 19)):
            for n in range(start, stop):
                x = f[n](x)
            out.append(x)
        return out


class _IBNorm(nn.Module):
    """Batch norm on the first half of the channels, affine-free instance norm on the rest."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bnorm_channels = channels // 2
        self.inorm_channels = channels - self.bnorm_channels
        self.bnorm = nn.BatchNorm2d(self.bnorm_channels, affine=True)
        self.inorm = nn.InstanceNorm2d(self.inorm_channels, affine=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The published model slices the instance-norm half from ``inorm_channels`` (equal to the
        # batch-norm half for the even widths every MODNet uses).
        bn_x = self.bnorm(x[:, : self.bnorm_channels].contiguous())
        in_x = self.inorm(x[:, self.inorm_channels :].contiguous())
        return torch.cat((bn_x, in_x), 1)


class _ConvIBNReLU(nn.Module):
    def __init__(
        self, cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0, ibn: bool = True, relu: bool = True
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=True)]
        if ibn:
            layers.append(_IBNorm(cout))
        if relu:
            layers.append(nn.ReLU(inplace=True))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class _SEBlock(nn.Module):
    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        self.fc = nn.Sequential(
            nn.Linear(channels, channels // reduction, bias=False),
            nn.ReLU(inplace=True),
            nn.Linear(channels // reduction, channels, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.fc(x.mean(dim=(2, 3)))
        return x * w[:, :, None, None]


def _up2(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


class _LRBranch(nn.Module):
    def __init__(self, backbone: _Backbone, enc: tuple[int, int, int, int, int]) -> None:
        super().__init__()
        self.backbone = backbone
        self.se_block = _SEBlock(enc[4], 4)
        self.conv_lr16x = _ConvIBNReLU(enc[4], enc[3], 5, padding=2)
        self.conv_lr8x = _ConvIBNReLU(enc[3], enc[2], 5, padding=2)
        self.conv_lr = _ConvIBNReLU(enc[2], 1, 3, stride=2, padding=1, ibn=False, relu=False)  # training only

    def forward(self, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        enc2x, enc4x, _, _, enc32x = self.backbone(img)
        lr16x = self.conv_lr16x(_up2(self.se_block(enc32x)))
        lr8x = self.conv_lr8x(_up2(lr16x))
        return lr8x, enc2x, enc4x


class _HRBranch(nn.Module):
    def __init__(self, hr: int, enc: tuple[int, int, int, int, int]) -> None:
        super().__init__()
        self.tohr_enc2x = _ConvIBNReLU(enc[0], hr, 1)
        self.conv_enc2x = _ConvIBNReLU(hr + 3, hr, 3, stride=2, padding=1)
        self.tohr_enc4x = _ConvIBNReLU(enc[1], hr, 1)
        self.conv_enc4x = _ConvIBNReLU(2 * hr, 2 * hr, 3, padding=1)
        self.conv_hr4x = nn.Sequential(
            _ConvIBNReLU(3 * hr + 3, 2 * hr, 3, padding=1),
            _ConvIBNReLU(2 * hr, 2 * hr, 3, padding=1),
            _ConvIBNReLU(2 * hr, hr, 3, padding=1),
        )
        self.conv_hr2x = nn.Sequential(
            _ConvIBNReLU(2 * hr, 2 * hr, 3, padding=1),
            _ConvIBNReLU(2 * hr, hr, 3, padding=1),
            _ConvIBNReLU(hr, hr, 3, padding=1),
            _ConvIBNReLU(hr, hr, 3, padding=1),
        )
        self.conv_hr = nn.Sequential(  # training only
            _ConvIBNReLU(hr + 3, hr, 3, padding=1),
            _ConvIBNReLU(hr, 1, 1, ibn=False, relu=False),
        )

    def forward(self, img: torch.Tensor, enc2x: torch.Tensor, enc4x: torch.Tensor, lr8x: torch.Tensor) -> torch.Tensor:
        img2x = F.interpolate(img, scale_factor=0.5, mode="bilinear", align_corners=False)
        img4x = F.interpolate(img, scale_factor=0.25, mode="bilinear", align_corners=False)
        enc2x = self.tohr_enc2x(enc2x)
        hr4x = self.conv_enc2x(torch.cat((img2x, enc2x), dim=1))
        hr4x = self.conv_enc4x(torch.cat((hr4x, self.tohr_enc4x(enc4x)), dim=1))
        hr4x = self.conv_hr4x(torch.cat((hr4x, _up2(lr8x), img4x), dim=1))
        return self.conv_hr2x(torch.cat((_up2(hr4x), enc2x), dim=1))


class _FusionBranch(nn.Module):
    def __init__(self, hr: int, enc: tuple[int, int, int, int, int]) -> None:
        super().__init__()
        self.conv_lr4x = _ConvIBNReLU(enc[2], hr, 5, padding=2)
        self.conv_f2x = _ConvIBNReLU(2 * hr, hr, 3, padding=1)
        self.conv_f = nn.Sequential(
            _ConvIBNReLU(hr + 3, hr // 2, 3, padding=1),
            _ConvIBNReLU(hr // 2, 1, 1, ibn=False, relu=False),
        )

    def forward(self, img: torch.Tensor, lr8x: torch.Tensor, hr2x: torch.Tensor) -> torch.Tensor:
        lr2x = _up2(self.conv_lr4x(_up2(lr8x)))
        f2x = self.conv_f2x(torch.cat((lr2x, hr2x), dim=1))
        return torch.sigmoid(self.conv_f(torch.cat((_up2(f2x), img), dim=1)))


class MODNet(nn.Module):
    """MODNet matting network (inference path). See the module docstring for layouts."""

    def __init__(self, cfg: MODNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        enc = cfg.enc_channels
        self.backbone = _Backbone(cfg)
        self.lr_branch = _LRBranch(self.backbone, enc)
        self.hr_branch = _HRBranch(cfg.hr_channels, enc)
        self.f_branch = _FusionBranch(cfg.hr_channels, enc)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        """``img`` ``[B, 3, H, W]`` float in ``[-1, 1]``, H and W multiples of 32 → matte ``[B, 1, H, W]`` in ``[0, 1]``."""
        assert img.ndim == 4 and img.shape[1] == 3, f"{img.shape=}"
        assert img.shape[2] % 32 == 0 and img.shape[3] % 32 == 0, f"{img.shape=} must be multiples of 32"
        lr8x, enc2x, enc4x = self.lr_branch(img)
        hr2x = self.hr_branch(img, enc2x, enc4x, lr8x)
        return self.f_branch(img, lr8x, hr2x)


def config_from_state_dict(state: dict[str, torch.Tensor]) -> MODNetConfig:
    """Read the sizes of a MODNet from its (``module.``-stripped) state dict."""
    try:
        stem = int(state["backbone.model.features.0.0.weight"].shape[0])
        last = int(state["backbone.model.features.18.0.weight"].shape[0])
        hr = int(state["hr_branch.tohr_enc2x.layers.0.weight"].shape[0])
    except KeyError as exc:
        raise ModelLoadError(f"not a MODNet checkpoint: key {exc.args[0]!r} is missing") from None
    for cfg in MODNET_CONFIGS.values():
        if (cfg.stem_channels, cfg.last_channel, cfg.hr_channels) == (stem, last, hr):
            return cfg
    return MODNetConfig(alpha=stem / 32, last_channel=last, hr_channels=hr)


def modnet_state_dict_from_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a MODNet checkpoint (official ``.ckpt`` pickle or a ``.safetensors`` conversion); strip ``module.``."""
    raw = read_state_dict(path)
    if "state_dict" in raw and isinstance(raw["state_dict"], dict):
        raw = raw["state_dict"]
    state = {}
    for key, value in raw.items():
        if not isinstance(value, torch.Tensor):
            raise ModelLoadError(f"{path}: entry {key!r} is a {type(value).__name__}, expected a tensor")
        state[key.removeprefix("module.")] = value
    return state


def load_modnet(path: str | Path, device: str | torch.device = "cpu") -> MODNet:
    """Build a MODNet of the checkpoint's size and load ``path`` into it (strict), in eval mode."""
    state = modnet_state_dict_from_file(path)
    # The official files hold the shared encoder under both names; a conversion may hold only one.
    for key in list(state):
        if key.startswith("backbone."):
            state.setdefault("lr_branch." + key, state[key])
        elif key.startswith("lr_branch.backbone."):
            state.setdefault(key.removeprefix("lr_branch."), state[key])
    cfg = config_from_state_dict(state)
    with torch.device("meta"):
        model = MODNet(cfg)
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise ModelLoadError(f"{path} does not fit MODNet {cfg}: {' '.join(first[:2])[:300]}") from None
    return model.to(device).eval()
