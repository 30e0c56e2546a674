"""Loading a Wan 2.1 VAE checkpoint: the original ``Wan2.1_VAE.pth`` or diffusers' ``vae/`` folder.

:func:`load_wan_vae` builds :class:`~livestyle.models.vae.WanVAE` on the meta device and assigns
the weights. The model uses the original key names; a diffusers ``AutoencoderKLWan`` state dict is
renamed back by :func:`diffusers_to_original` (:func:`original_to_diffusers_key` is the forward map).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from livestyle.errors import ModelLoadError
from livestyle.models.vae import LATENTS_MEAN, LATENTS_STD, WanVAE, WanVAEConfig

__all__ = ["diffusers_to_original", "load_wan_vae", "original_to_diffusers_key"]


_RESIDUAL_TO_DIFFUSERS = {"residual.0.": "norm1.", "residual.2.": "conv1.", "residual.3.": "norm2.", "residual.6.": "conv2.", "shortcut.": "conv_shortcut."}


def _residual_key(rest: str) -> str:
    for old, new in _RESIDUAL_TO_DIFFUSERS.items():
        if rest.startswith(old):
            return new + rest[len(old) :]
    return rest


def original_to_diffusers_key(key: str, num_res_blocks: int = 2) -> str:
    """Map one original ``Wan2.1_VAE.pth`` key to diffusers ``AutoencoderKLWan`` naming (Wan 2.1 wan/modules/vae.py, Wan-Video/Wan2.1)."""
    top = {"conv1.": "quant_conv.", "conv2.": "post_quant_conv."}
    for old, new in top.items():
        if key.startswith(old):
            return new + key[len(old) :]
    m = re.match(r"(encoder|decoder)\.(.*)", key)
    if not m:
        return key
    part, rest = m.groups()
    if rest.startswith("conv1."):
        return f"{part}.conv_in.{rest[len('conv1.'):]}"
    if rest.startswith("head.0."):
        return f"{part}.norm_out.{rest[len('head.0.'):]}"
    if rest.startswith("head.2."):
        return f"{part}.conv_out.{rest[len('head.2.'):]}"
    mm = re.match(r"middle\.(\d+)\.(.*)", rest)
    if mm:
        idx, sub = int(mm.group(1)), mm.group(2)
        if idx == 1:
            return f"{part}.mid_block.attentions.0.{sub}"
        return f"{part}.mid_block.resnets.{idx // 2}.{_residual_key(sub)}"
    md = re.match(r"downsamples\.(\d+)\.(.*)", rest)
    if md:
        return f"{part}.down_blocks.{md.group(1)}.{_residual_key(md.group(2))}"
    mu = re.match(r"upsamples\.(\d+)\.(.*)", rest)
    if mu:
        j, sub = int(mu.group(1)), mu.group(2)
        per = num_res_blocks + 2  # resnets + one upsampler per up block
        block, pos = divmod(j, per)
        if pos == per - 1:
            return f"{part}.up_blocks.{block}.upsamplers.0.{sub}"
        return f"{part}.up_blocks.{block}.resnets.{pos}.{_residual_key(sub)}"
    return key


def diffusers_to_original(state: dict[str, torch.Tensor], config: WanVAEConfig) -> dict[str, torch.Tensor]:
    """Rename a diffusers ``AutoencoderKLWan`` state dict to the original names (inverse of :func:`original_to_diffusers_key`)."""
    with torch.device("meta"):
        names = WanVAE(config).state_dict().keys()
    inverse = {original_to_diffusers_key(k, config.num_res_blocks): k for k in names}
    return {inverse.get(k, k): v for k, v in state.items()}


def _config_from_state(state: dict[str, torch.Tensor], where: Path) -> WanVAEConfig:
    try:
        dim = state["encoder.conv1.weight"].shape[0]
        z_dim = state["conv2.weight"].shape[0]
    except KeyError:
        raise ModelLoadError(
            f"{where} is not a Wan 2.1 VAE checkpoint (no encoder.conv1.weight / conv2.weight; "
            "expected Wan2.1_VAE.pth or a diffusers vae/ folder)"
        ) from None
    return WanVAEConfig(dim=int(dim), z_dim=int(z_dim))


def load_wan_vae(
    path: str | Path,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> WanVAE:
    """Load a Wan 2.1 VAE from ``Wan2.1_VAE.pth`` (original keys) or a diffusers ``vae/`` folder or file.

    The model is built on the meta device and the weights are assigned (no double allocation).
    A diffusers folder's ``config.json`` supplies ``latents_mean``/``latents_std`` when present.
    Raises :class:`ModelLoadError` for unreadable files, foreign checkpoints and shape mismatches.
    """
    from livestyle.models.state_files import assign_state_dict, read_state_dict

    path = Path(path)
    state = read_state_dict(path)
    if "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    state = {k.removeprefix("vae.").removeprefix("model."): v for k, v in state.items() if isinstance(v, torch.Tensor)}
    diffusers_layout = "encoder.conv_in.weight" in state
    if diffusers_layout:
        probe = {"encoder.conv1.weight": state["encoder.conv_in.weight"]}
        if "post_quant_conv.weight" in state:
            probe["conv2.weight"] = state["post_quant_conv.weight"]
        config = _config_from_state(probe, path)
        state = diffusers_to_original(state, config)
    else:
        config = _config_from_state(state, path)
    with torch.device("meta"):
        model = WanVAE(config)
    assign_state_dict(model, state, path, "the model", dtype)
    model.latents_mean = torch.tensor(LATENTS_MEAN).view(1, -1, 1, 1, 1)
    model.latents_std = torch.tensor(LATENTS_STD).view(1, -1, 1, 1, 1)
    config_json = (path if path.is_dir() else path.parent) / "config.json"
    if diffusers_layout and config_json.is_file():
        try:
            cfg = json.loads(config_json.read_text())
        except ValueError as exc:
            raise ModelLoadError(f"{config_json} is not valid JSON ({exc})") from None
        if "latents_mean" in cfg and "latents_std" in cfg:
            model.latents_mean = torch.tensor(cfg["latents_mean"], dtype=torch.float32).view(1, -1, 1, 1, 1)
            model.latents_std = torch.tensor(cfg["latents_std"], dtype=torch.float32).view(1, -1, 1, 1, 1)
    return model.to(device=device, dtype=dtype).eval().requires_grad_(False)
