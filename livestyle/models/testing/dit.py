"""Writers of random Wan DiT checkpoints in every real on-disk layout (docs/models.md).

Each writer draws a random *original-named* state dict for a ``DIT_CONFIGS`` preset (``"tiny"``
by default) with a fixed seed, lays it out exactly as the named family ships it, and returns the
original-named dict it wrote (what ``load_dit`` must reproduce). Unlike upstream, ``head.head`` is
non-zero so the model's output is not identically zero.

| writer | layout |
|---|---|
| ``write_wan_checkpoint(path)`` | original ``.safetensors``; ``prefix="model.diffusion_model."`` = ComfyUI |
| ``write_wan_checkpoint(dir, shards=3)`` | ``diffusion_pytorch_model-0000i-of-0000n.safetensors`` + index |
| ``write_diffusers_checkpoint(dir)`` | ``dir/transformer/{config.json, diffusion_pytorch_model.safetensors}`` (diffusers keys) |
| ``write_self_forcing_checkpoint(path)`` | ``.pt`` ``{"generator", "critic", "generator_ema" (fp32)}``, keys ``model.<orig>`` |
| ``write_causvid_checkpoint(path)`` | ``.pt`` ``{"generator", "critic"}``, keys ``model.<orig>`` |
| ``write_sdv2_checkpoint(path)`` | ``model.pt``: ``{"generator"|"state_dict": ...}`` or a bare dict; with or without ``model.`` |
| ``write_krea_checkpoint(path)`` | flat bf16 safetensors, keys ``model.<orig>`` |
| ``write_longlive_checkpoint(base, lora)`` | base ``{"generator", "critic", "generator_ema", "step"}`` + ``lora.pt`` ``{"generator_lora", "critic_lora", "step"}`` (no alpha) |

Every layout is written from the upstream loader and trainer code as read (docs/models.md names
the files and commits); the tests check that ``load_dit`` takes the tensors upstream takes.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from livestyle.models.dit import DIT_CONFIGS, CausalWanDiT, DiTConfig

__all__ = [
    "LORA_TARGETS",
    "diffusers_dit",
    "random_dit",
    "random_dit_state_dict",
    "to_diffusers_keys",
    "write_causvid_checkpoint",
    "write_diffusers_checkpoint",
    "write_krea_checkpoint",
    "write_longlive_checkpoint",
    "write_sdv2_checkpoint",
    "write_self_forcing_checkpoint",
    "write_wan_checkpoint",
]

StateDict = dict[str, torch.Tensor]

#: Linear layers LongLive's PEFT LoRA wraps inside every block.
LORA_TARGETS: tuple[str, ...] = (
    "self_attn.q", "self_attn.k", "self_attn.v", "self_attn.o",
    "cross_attn.q", "cross_attn.k", "cross_attn.v", "cross_attn.o",
    "ffn.0", "ffn.2",
)


def _config(config_name: str | DiTConfig) -> DiTConfig:
    return config_name if isinstance(config_name, DiTConfig) else DIT_CONFIGS[config_name]


def random_dit_state_dict(config_name: str | DiTConfig = "tiny", seed: int = 0, dtype: torch.dtype = torch.float32) -> StateDict:
    """Random original-named weights: matrices ~ N(0, 1/fan_in), vectors ~ N(0, 0.1), norms ~ 1 ± 0.1."""
    cfg = _config(config_name)
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in CausalWanDiT(cfg).state_dict().items()}
    gen = torch.Generator().manual_seed(seed)
    out: StateDict = {}
    for key, shape in shapes.items():
        if key.endswith(("norm_q.weight", "norm_k.weight", "norm3.weight")):
            t = 1.0 + 0.1 * torch.randn(shape, generator=gen)
        elif len(shape) >= 2 and not key.endswith("modulation"):
            fan_in = int(torch.tensor(shape[1:]).prod())
            t = torch.randn(shape, generator=gen) / fan_in**0.5
        else:
            t = 0.1 * torch.randn(shape, generator=gen)
        out[key] = t.to(dtype).contiguous()
    return out


def random_dit(config_name: str | DiTConfig = "tiny", seed: int = 0) -> CausalWanDiT:
    """A ``CausalWanDiT`` (eval mode, fp32, CPU) holding ``random_dit_state_dict(config_name, seed)``."""
    model = CausalWanDiT(_config(config_name))
    model.load_state_dict(random_dit_state_dict(config_name, seed))
    return model.eval()


def to_diffusers_keys(state: StateDict) -> StateDict:
    """Original → diffusers ``WanTransformer3DModel`` names, with diffusers' own converter."""
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    return convert_wan_transformer_to_diffusers(dict(state))


def diffusers_dit(config_name: str | DiTConfig = "tiny", seed: int = 0) -> torch.nn.Module:
    """diffusers' ``WanTransformer3DModel`` (eval, fp32, CPU) of the same sizes holding
    ``random_dit_state_dict(config_name, seed)``: the reference for ``random_dit(config_name, seed)``."""
    from diffusers import WanTransformer3DModel

    cfg = _config(config_name)
    ref = WanTransformer3DModel(
        patch_size=cfg.patch_size, num_attention_heads=cfg.num_heads, attention_head_dim=cfg.head_dim,
        in_channels=cfg.in_dim, out_channels=cfg.out_dim, text_dim=cfg.text_dim, freq_dim=cfg.freq_dim,
        ffn_dim=cfg.ffn_dim, num_layers=cfg.num_layers, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
        eps=cfg.eps, rope_max_seq_len=cfg.rope_max_frames,
    ).eval()
    missing, unexpected = ref.load_state_dict(to_diffusers_keys(random_dit_state_dict(cfg, seed)), strict=True)
    assert not missing and not unexpected
    return ref


def _save_safetensors(state: StateDict, path: Path, metadata: dict[str, str] | None = None) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(path), metadata=metadata)


def _prefixed(state: StateDict, prefix: str) -> StateDict:
    return {prefix + k: v for k, v in state.items()}


def write_wan_checkpoint(path: str | Path, config_name: str | DiTConfig = "tiny", seed: int = 0, *,
                         shards: int = 1, prefix: str = "") -> StateDict:
    """Original Wan naming. ``shards == 1``: one ``.safetensors`` at ``path``; ``shards > 1``:
    ``path`` is a folder receiving shards + ``diffusion_pytorch_model.safetensors.index.json``.
    ``prefix="model.diffusion_model."`` writes ComfyUI's repackaged layout."""
    state = random_dit_state_dict(config_name, seed)
    on_disk = _prefixed(state, prefix)
    path = Path(path)
    if shards <= 1:
        _save_safetensors(on_disk, path, {"format": "pt"})
        return state
    keys = list(on_disk)
    per = -(-len(keys) // shards)
    weight_map: dict[str, str] = {}
    total = 0
    for i in range(shards):
        name = f"diffusion_pytorch_model-{i + 1:05d}-of-{shards:05d}.safetensors"
        part = {k: on_disk[k] for k in keys[i * per:(i + 1) * per]}
        _save_safetensors(part, path / name, {"format": "pt"})
        weight_map.update({k: name for k in part})
        total += sum(t.numel() * t.element_size() for t in part.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (path / "diffusion_pytorch_model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    return state


def write_diffusers_checkpoint(root: str | Path, config_name: str | DiTConfig = "tiny", seed: int = 0) -> StateDict:
    """A diffusers pipeline folder's ``transformer/`` (config.json + safetensors, diffusers keys)."""
    cfg = _config(config_name)
    state = random_dit_state_dict(cfg, seed)
    folder = Path(root) / "transformer"
    _save_safetensors(to_diffusers_keys(state), folder / "diffusion_pytorch_model.safetensors", {"format": "pt"})
    config = {
        "_class_name": "WanTransformer3DModel",
        "patch_size": list(cfg.patch_size),
        "num_attention_heads": cfg.num_heads,
        "attention_head_dim": cfg.head_dim,
        "in_channels": cfg.in_dim,
        "out_channels": cfg.out_dim,
        "text_dim": cfg.text_dim,
        "freq_dim": cfg.freq_dim,
        "ffn_dim": cfg.ffn_dim,
        "num_layers": cfg.num_layers,
        "cross_attn_norm": True,
        "qk_norm": "rms_norm_across_heads",
        "eps": cfg.eps,
        "rope_max_seq_len": cfg.rope_max_frames,
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    return state


def _fsdp_block_keys(state: StateDict) -> StateDict:
    """``model.blocks.N.<rest>`` → ``model.blocks.N._fsdp_wrapped_module.<rest>``: the parameter names an
    EMA copy taken under ``FSDP.summon_full_params`` carries when each block is its own FSDP unit."""
    out: StateDict = {}
    for key, value in state.items():
        if key.startswith("blocks."):
            index, rest = key[len("blocks."):].split(".", 1)
            key = f"blocks.{index}._fsdp_wrapped_module.{rest}"
        out[f"model.{key}"] = value
    return out


def write_self_forcing_checkpoint(path: str | Path, config_name: str | DiTConfig = "tiny", seed: int = 0, *,
                                  ema: bool = True) -> StateDict:
    """Self-Forcing ``checkpoints/self_forcing_dmd.pt`` as its trainer saves it (guandeh17/Self-Forcing
    ``trainer/distillation.py`` ``save``): ``{"generator", "critic", "generator_ema"}``, each a
    ``WanDiffusionWrapper`` state dict (``model.<orig>``). ``generator_ema`` is the EMA shadow, fp32
    (``EMA_FSDP`` keeps ``.float()`` copies), with plain keys: the demo loads it strictly into the
    wrapper. Returns what the demo loads (``generator_ema``; ``generator`` with ``ema=False``).
    The three sets hold different values (seeds +0/+1/+2) so a loader taking the wrong one is caught.
    """
    gen = random_dit_state_dict(config_name, seed + 1 if ema else seed)
    obj: dict[str, StateDict] = {
        "generator": _prefixed(gen, "model."),
        "critic": _prefixed(random_dit_state_dict(config_name, seed + 2), "model."),
    }
    if not ema:
        torch.save(obj, str(path))
        return gen
    ema_state = random_dit_state_dict(config_name, seed, dtype=torch.float32)
    obj["generator_ema"] = _prefixed(ema_state, "model.")
    torch.save(obj, str(path))
    return ema_state


def write_causvid_checkpoint(path: str | Path, config_name: str | DiTConfig = "tiny", seed: int = 0) -> StateDict:
    """CausVid ``autoregressive_checkpoint/model.pt``: ``{"generator", "critic"}`` with ``model.`` keys, no EMA."""
    return write_self_forcing_checkpoint(path, config_name, seed, ema=False)


def write_sdv2_checkpoint(path: str | Path, config_name: str | DiTConfig = "tiny", seed: int = 0, *,
                          prefix: bool = True, container: str | None = "generator", ema_too: bool = False) -> StateDict:
    """StreamDiffusionV2 ``model.pt``: weights under ``container`` (``"generator"``,
    ``"generator_ema"``, ``"state_dict"`` or ``None`` for a bare dict), keys with or without ``model.``
    (upstream's ``load_generator_state_dict`` adds the prefix where it is missing). ``ema_too``: also
    write a different ``generator_ema`` beside ``generator``; upstream takes ``generator`` first.
    Returns the weights upstream loads."""
    state = random_dit_state_dict(config_name, seed)
    weights = _prefixed(state, "model.") if prefix else dict(state)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    obj: dict = {container: weights} if container else weights
    if ema_too:
        obj["generator_ema"] = _prefixed(random_dit_state_dict(config_name, seed + 1), "model.")
    torch.save(obj, str(path))
    return state


def write_krea_checkpoint(path: str | Path, config_name: str | DiTConfig = "tiny", seed: int = 0,
                          dtype: torch.dtype = torch.bfloat16) -> StateDict:
    """Krea Realtime ``krea-realtime-video-14b.safetensors`` layout: flat, ``model.`` keys, bf16."""
    state = random_dit_state_dict(config_name, seed, dtype=dtype)
    _save_safetensors(_prefixed(state, "model."), Path(path))
    return state


def _random_lora(base: StateDict, cfg: DiTConfig, rank: int, gen: torch.Generator) -> StateDict:
    """PEFT keys ``base_model.model.blocks.N.<linear>.lora_A/B.weight`` on every Linear of every block."""
    lora: StateDict = {}
    for i in range(cfg.num_layers):
        for target in LORA_TARGETS:
            name = f"blocks.{i}.{target}"
            w = base[f"{name}.weight"]
            lora[f"base_model.model.{name}.lora_A.weight"] = torch.randn(rank, w.shape[1], generator=gen) / w.shape[1] ** 0.5
            lora[f"base_model.model.{name}.lora_B.weight"] = 0.1 * torch.randn(w.shape[0], rank, generator=gen)
    return lora


def write_longlive_checkpoint(base_path: str | Path, lora_path: str | Path, config_name: str | DiTConfig = "tiny",
                              seed: int = 0, *, rank: int = 4, alpha: float = 8.0, step: int = 3000) -> StateDict:
    """LongLive 1.0 (NVlabs/LongLive, branch v1.0) as its trainer saves the two files.

    ``longlive_base.pt``: ``{"generator", "critic", "generator_ema", "step"}`` — wrapper keys
    ``model.<orig>``; the EMA copy (fp32, FSDP block names ``model.blocks.N._fsdp_wrapped_module.…``,
    written after the trainer's ``ema_start_step``) differs from ``generator``, which the inference
    configs load (``use_ema: false``).
    ``lora.pt``: ``{"generator_lora", "critic_lora", "step"}`` (``trainer/distillation.py`` ``save``),
    PEFT keys ``base_model.model.blocks.N.<linear>.lora_A.weight`` / ``.lora_B.weight`` on every
    Linear of every block (``utils/lora_utils.py``: self_attn q/k/v/o, cross_attn q/k/v/o, ffn.0,
    ffn.2). Rank and alpha live in the config (``adapter: {rank: 256, alpha: 256}``), not the file:
    ``alpha`` here only sets the returned merge. Returns the *merged* original-named state dict
    (``generator + alpha/rank · B @ A``).
    """
    cfg = _config(config_name)
    base = random_dit_state_dict(cfg, seed)
    torch.save({
        "generator": _prefixed(base, "model."),
        "critic": _prefixed(random_dit_state_dict(cfg, seed + 2), "model."),
        "generator_ema": _fsdp_block_keys(random_dit_state_dict(cfg, seed + 1)),
        "step": step,
    }, str(base_path))
    gen = torch.Generator().manual_seed(seed + 1000)
    lora = _random_lora(base, cfg, rank, gen)
    critic_lora = _random_lora(base, cfg, rank, gen)
    torch.save({"generator_lora": lora, "critic_lora": critic_lora, "step": step}, str(lora_path))
    merged = dict(base)
    for i in range(cfg.num_layers):
        for target in LORA_TARGETS:
            name = f"blocks.{i}.{target}"
            a = lora[f"base_model.model.{name}.lora_A.weight"]
            b = lora[f"base_model.model.{name}.lora_B.weight"]
            merged[f"{name}.weight"] = base[f"{name}.weight"] + (alpha / rank) * (b @ a)
    return merged
