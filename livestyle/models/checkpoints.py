"""Wan 2.1 transformer checkpoints: format detection, key remapping, ``load_dit``.

``load_dit`` turns any Wan 2.1 transformer checkpoint (original, ComfyUI, diffusers,
Self-Forcing/CausVid, StreamDiffusionV2, Krea, LongLive base + LoRA) into a ``CausalWanDiT``:
``dit_state_dict`` reads the file (``livestyle.models.state_files.read_state_dict``), unwraps and
renames to original Wan keys, ``infer_dit_config`` reads the size off the tensors, the model is
built on the meta device and the tensors assigned. Every failure is a one-line ``ModelLoadError``.

Training saves hold several weight sets (``generator``, ``generator_ema``, ``critic``). Which one
a model streams is the registry's ``container:`` (what that model's upstream inference loader takes,
docs/models.md); without one, ``generator`` is taken. A file holding both ``generator`` and
``generator_ema`` always logs which one was taken and why.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch

from livestyle.errors import ModelLoadError
from livestyle.models.state_files import StateDict, read_state_dict

if TYPE_CHECKING:
    from livestyle.models.dit import CausalWanDiT, DiTConfig

log = logging.getLogger(__name__)

__all__ = [
    "DiTFormat",
    "detect_dit_format",
    "dit_state_dict",
    "dit_state_dict_from",
    "infer_dit_config",
    "load_dit",
    "read_lora",
]

# ---------------------------------------------------------------------------------------------
# The Wan DiT: format detection, key remapping, loading (docs/models.md)
# ---------------------------------------------------------------------------------------------

#: Layout names: ``wan`` (original safetensors), ``comfy`` (``model.diffusion_model.``), ``diffusers``,
#: ``krea`` (flat safetensors, ``model.``), ``pt_generator_ema`` (Self-Forcing), ``pt_generator``
#: (CausVid, StreamDiffusionV2, LongLive base, Self-Forcing without EMA), ``pt_state_dict``
#: (pickles with ``model``/``state_dict`` containers or bare tensor dicts, e.g. SDV2 variants).
DiTFormat = Literal["wan", "comfy", "diffusers", "krea", "pt_generator_ema", "pt_generator", "pt_state_dict"]

#: Container keys of pickled training saves, in the order taken when the caller names none:
#: ``generator`` first, as StreamDiffusionV2's ``load_generator_state_dict``, LongLive's inference
#: (``use_ema: false``) and CausVid load it; Self-Forcing's demo takes ``generator_ema``, which its
#: registry entry names (``container: generator_ema``).
_CONTAINERS = ("generator", "generator_ema", "model", "state_dict")
#: The keys that hold alternative weight sets of one generator; a file with two of them is ambiguous.
_GENERATOR_SETS = ("generator", "generator_ema")
_WRAPPER_PARTS = ("_fsdp_wrapped_module.", "_checkpoint_wrapped_module.", "_orig_mod.")
_DIFFUSERS_MARKERS = ("condition_embedder.", "scale_shift_table", ".attn1.", "proj_out.")
# diffusers -> original, applied in order to each key (the inverse of diffusers' Wan key conversion; docs/models.md)
_FROM_DIFFUSERS: tuple[tuple[str, str], ...] = (
    (r"^condition_embedder\.time_embedder\.linear_1\.", "time_embedding.0."),
    (r"^condition_embedder\.time_embedder\.linear_2\.", "time_embedding.2."),
    (r"^condition_embedder\.text_embedder\.linear_1\.", "text_embedding.0."),
    (r"^condition_embedder\.text_embedder\.linear_2\.", "text_embedding.2."),
    (r"^condition_embedder\.time_proj\.", "time_projection.1."),
    (r"^scale_shift_table$", "head.modulation"),
    (r"^proj_out\.", "head.head."),
    (r"\.scale_shift_table$", ".modulation"),
    (r"\.attn1\.", ".self_attn."),
    (r"\.attn2\.", ".cross_attn."),
    (r"\.to_out\.0\.", ".o."),
    (r"\.to_q\.", ".q."),
    (r"\.to_k\.", ".k."),
    (r"\.to_v\.", ".v."),
    (r"\.ffn\.net\.0\.proj\.", ".ffn.0."),
    (r"\.ffn\.net\.2\.", ".ffn.2."),
    (r"\.norm2\.", ".norm__swap."),
    (r"\.norm3\.", ".norm2."),
    (r"\.norm__swap\.", ".norm3."),
)


def _first_keys(keys: object, n: int = 4) -> str:
    items = sorted(str(k) for k in keys)  # type: ignore[attr-defined]
    more = f", … ({len(items) - n} more)" if len(items) > n else ""
    return ", ".join(items[:n]) + more


def _weight_sets(obj: dict) -> list[str]:
    return [name for name in _CONTAINERS if isinstance(obj.get(name), dict) and obj[name]]


def _unwrap_container(obj: dict, source: Path, container: str | None = None) -> tuple[str | None, dict]:
    """Pick the weights out of a training-save dict; returns (container name or None, flat dict).

    ``container``: the key the model's upstream loader takes (the registry's ``container:``); when
    the file lacks it, the first of ``_CONTAINERS`` present is taken and a warning says so.
    """
    if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        if container is not None:
            log.warning("%s is a bare state dict, not a training save with '%s'; loading it as is", source, container)
        return None, obj
    present = _weight_sets(obj)
    if not present:
        raise ModelLoadError(
            f"{source} holds a dict with keys [{_first_keys(obj.keys())}] but no weights; "
            f"expected tensors or one of {', '.join(_CONTAINERS)}"
        )
    if container is not None and container in present:
        name, why = container, "the registry names it: the model's upstream loader takes it"
    else:
        name = present[0]
        why = (f"the file has no '{container}', which the registry names" if container is not None
               else "no container was named and 'generator' is what StreamDiffusionV2, LongLive and CausVid load")
        if container is not None:
            log.warning("%s: took '%s' because %s", source, name, why)
    others = [c for c in present if c != name and c in _GENERATOR_SETS]
    if name in _GENERATOR_SETS and others:
        log.info("%s holds both %s; took '%s' because %s", source, " and ".join(f"'{c}'" for c in sorted({name, *others})), name, why)
    inner = obj[name]
    if not all(isinstance(v, torch.Tensor) for v in inner.values()):
        raise ModelLoadError(f"{source}: '{name}' holds non-tensor entries; expected a state dict of tensors")
    return name, inner


def _clean_key(key: str) -> str:
    for part in _WRAPPER_PARTS:
        key = key.replace(part, "")
    for prefix in ("model.diffusion_model.", "diffusion_model.", "model."):
        if key.startswith(prefix):
            return key[len(prefix):]
    return key


def _from_diffusers_key(key: str) -> str:
    for pattern, repl in _FROM_DIFFUSERS:
        key = re.sub(pattern, repl, key)
    return key


def _resolve_dit_path(path: Path) -> Path:
    if path.is_dir() and (path / "transformer").is_dir():
        return path / "transformer"
    return path


def detect_dit_format(raw: dict, container: str | None, path: Path) -> DiTFormat:
    """Name the layout of a raw (unwrapped) DiT state dict; informational, the loader handles all."""
    keys = list(raw)
    if any(any(m in k for m in _DIFFUSERS_MARKERS) for k in keys):
        return "diffusers"
    if container == "generator_ema":
        return "pt_generator_ema"
    if container == "generator":
        return "pt_generator"
    if container is not None or path.suffix in (".pt", ".pth", ".bin", ".ckpt") or path.is_dir() and not any(path.glob("*.safetensors*")):
        return "pt_state_dict"
    if any(k.startswith("model.diffusion_model.") for k in keys):
        return "comfy"
    if any(k.startswith("model.") for k in keys):
        return "krea"
    return "wan"


def dit_state_dict(path: str | Path, container: str | None = None) -> tuple[DiTFormat, StateDict]:
    """Read any supported DiT checkpoint into original Wan key names.

    Handles training-save containers (``container`` when the file has it, else ``generator`` >
    ``generator_ema`` > ``model`` > ``state_dict``), wrapper prefixes (``model.``,
    ``model.diffusion_model.``, FSDP / checkpoint / compile wrappers) and diffusers naming (inverse
    of docs/models.md). Tensors are returned as read (memory-mapped where the reader allows).
    """
    path = _resolve_dit_path(Path(path))
    return dit_state_dict_from(read_state_dict(path), path, container)


def dit_state_dict_from(obj: dict, path: str | Path, container: str | None = None) -> tuple[DiTFormat, StateDict]:
    """:func:`dit_state_dict` on a dict already read (``read_state_dict`` output, or meta tensors
    built from a file's header, as ``livestyle weights verify`` does)."""
    path = Path(path)
    used, raw = _unwrap_container(obj, path, container)
    fmt = detect_dit_format(raw, used, path)
    state: StateDict = {}
    for key, value in raw.items():
        new = _clean_key(key)
        if fmt == "diffusers":
            new = _from_diffusers_key(new)
        state[new] = value
    if "patch_embedding.weight" not in state and not any(k.startswith("blocks.") for k in state):
        raise ModelLoadError(
            f"{path} does not look like a Wan 2.1 transformer (found keys {_first_keys(raw.keys())}); "
            "expected original Wan, ComfyUI, diffusers, Self-Forcing/CausVid, StreamDiffusionV2, Krea or LongLive weights"
        )
    return fmt, state


def infer_dit_config(state: StateDict) -> "DiTConfig":
    """The ``DiTConfig`` the tensors imply: a preset when the sizes match one, else derived (head_dim 128)."""
    from dataclasses import replace

    from livestyle.models.dit import DIT_CONFIGS, DiTConfig

    def find(suffix: str) -> torch.Tensor | None:
        return next((v for k, v in state.items() if k.endswith(suffix)), None)

    qw = find("self_attn.q.weight")
    pe = state.get("patch_embedding.weight")
    dim = int(pe.shape[0]) if pe is not None else int(qw.shape[0]) if qw is not None else None
    if dim is None:
        raise ModelLoadError(f"cannot tell the transformer size: no patch_embedding or self_attn weights among {_first_keys(state)}")
    layers = 1 + max((int(m.group(1)) for k in state if (m := re.match(r"blocks\.(\d+)\.", k))), default=-1)
    ffn = find("ffn.0.weight")
    te = state.get("text_embedding.0.weight")
    hh = state.get("head.head.weight")
    in_dim = int(pe.shape[1]) if pe is not None else 16
    for preset in DIT_CONFIGS.values():
        if preset.dim != dim:
            continue
        return replace(
            preset,
            num_layers=layers if layers > 0 else preset.num_layers,
            ffn_dim=int(ffn.shape[0]) if ffn is not None else preset.ffn_dim,
            text_dim=int(te.shape[1]) if te is not None else preset.text_dim,
            in_dim=in_dim,
            out_dim=int(hh.shape[0]) // 4 if hh is not None else preset.out_dim,
        )
    if dim % 128 or ffn is None or te is None or layers <= 0:
        raise ModelLoadError(f"transformer with dim {dim} matches no known Wan size (1.3B: 1536, 14B: 5120)")
    return DiTConfig(dim=dim, ffn_dim=int(ffn.shape[0]), num_heads=dim // 128, num_layers=layers,
                     in_dim=in_dim, out_dim=int(hh.shape[0]) // 4 if hh is not None else 16, text_dim=int(te.shape[1]))


def _describe(cfg: "DiTConfig") -> str:
    return f"dim {cfg.dim}, {cfg.num_layers} layers, ffn {cfg.ffn_dim}, text_dim {cfg.text_dim}"


def _check_keys(state: StateDict, expected: dict[str, torch.Tensor], source: str) -> None:
    missing = [k for k in expected if k not in state]
    extra = [k for k in state if k not in expected]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} keys ({_first_keys(missing)})")
        if extra:
            parts.append(f"{len(extra)} unexpected keys ({_first_keys(extra)})")
        raise ModelLoadError(f"{source} does not fit the Wan transformer: " + "; ".join(parts))
    for key, ref in expected.items():
        if tuple(state[key].shape) != tuple(ref.shape):
            raise ModelLoadError(
                f"{source}: {key} has shape {tuple(state[key].shape)}, the model expects {tuple(ref.shape)}"
            )


# ---------------------------------------------------------------------------------------------
# LoRA (LongLive 1.0: PEFT on every Linear of every block, merged at load; livestyle.models.lora
# reads every layout and is the one merge, here and for live switching)
# ---------------------------------------------------------------------------------------------


def read_lora(path: str | Path) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], float | None]:
    """Read a LoRA file in any layout (``livestyle.models.lora``) into ``{module: (A [r, in], B [out, r])}``
    plus the alpha: the file's, else the layers' when they all say the same one, else None.

    Accepts LongLive's trainer save ``{"generator_lora": ..., "critic_lora": ..., "step": n}`` (the
    generator's LoRA is taken), PEFT adapter folders (``adapter_config.json``), ``lora_config``
    beside the weights, original-Wan and Kohya names with per-layer ``.alpha``.
    """
    from livestyle.models.lora import read_lora_file

    lora = read_lora_file(path)
    alphas = {layer.alpha for layer in lora.layers.values()}
    alpha = lora.alpha if lora.alpha is not None else (alphas.pop() if len(alphas) == 1 else None)
    return {m: (layer.down, layer.up) for m, layer in lora.layers.items()}, alpha


def _check_lora_rank(pairs: dict[str, tuple[torch.Tensor, torch.Tensor]], rank: int | None, source: str) -> None:
    if rank is None:
        return
    wrong = sorted({int(a.shape[0]) for a, _ in pairs.values()} - {rank})
    if wrong:
        raise ModelLoadError(f"{source} has rank {wrong[0]}, but the model's adapter config says rank {rank}; "
                             "it is another LoRA, or fix the registry's adapter.rank")


def load_dit(path_or_dir: str | Path, *, device: torch.device | str = "cpu", dtype: torch.dtype | None = None,
             config: "str | DiTConfig | None" = None, container: str | None = None, lora: str | Path | None = None,
             lora_alpha: float | None = None, lora_rank: int | None = None) -> "CausalWanDiT":
    """Load any supported Wan DiT checkpoint into a ``CausalWanDiT`` (eval mode, no grads).

    ``path_or_dir``: a ``.safetensors`` file, a sharded index or its folder, a diffusers pipeline
    folder or its ``transformer/``, or a ``.pt`` training save. ``container``: which weight set of
    a training save to take (the registry's ``container:``; see :func:`dit_state_dict`). The size
    comes from the tensors; ``config`` (a ``DIT_CONFIGS`` name or a ``DiTConfig``) only asserts
    it. ``dtype``: cast every floating tensor (default: the checkpoint's ``patch_embedding``
    dtype). ``lora``: a PEFT LoRA merged into the weights; its scale is alpha / rank with alpha from
    the file if it says, else ``lora_alpha`` (LongLive's file does not: its config says rank 256,
    alpha 256), else the rank (scale 1). ``lora_rank``: the rank the file must have. The model is
    built on the meta device and the tensors are assigned, not copied (mmap-backed until moved to
    ``device``).
    """
    from livestyle.models.dit import DIT_CONFIGS, CausalWanDiT

    fmt, state = dit_state_dict(path_or_dir, container)
    found = infer_dit_config(state)
    if config is not None:
        if isinstance(config, str):
            if config not in DIT_CONFIGS:
                raise ModelLoadError(f"unknown transformer config {config!r}; expected one of {', '.join(DIT_CONFIGS)}")
            wanted = DIT_CONFIGS[config]
        else:
            wanted = config
        if (wanted.dim, wanted.num_layers, wanted.ffn_dim, wanted.text_dim) != (found.dim, found.num_layers, found.ffn_dim, found.text_dim):
            raise ModelLoadError(
                f"{path_or_dir} holds a transformer with {_describe(found)}, but config "
                f"{config if isinstance(config, str) else 'given'} expects {_describe(wanted)}; pick the matching model size"
            )
        found = wanted
    with torch.device("meta"):
        model = CausalWanDiT(found)
    _check_keys(state, model.state_dict(), f"{path_or_dir} ({fmt} layout)")
    if lora is not None:
        from livestyle.models.lora import merge_into_state, read_lora_file

        lora_file = read_lora_file(lora)
        _check_lora_rank({m: (x.down, x.up) for m, x in lora_file.layers.items()}, lora_rank, f"LoRA {lora}")
        if lora_file.alpha is not None and lora_alpha is not None and lora_file.alpha != lora_alpha:
            log.warning("LoRA %s says alpha %g; using it instead of the configured %g", lora, lora_file.alpha, lora_alpha)
        default_alpha = lora_file.alpha if lora_file.alpha is not None else lora_alpha
        state = merge_into_state(state, lora_file, found, default_alpha=default_alpha)
    target = dtype or state["patch_embedding.weight"].dtype
    state = {k: (v.to(target) if v.is_floating_point() else v) for k, v in state.items()}
    model.load_state_dict(state, strict=True, assign=True)
    log.info("loaded %s transformer (%s) from %s", fmt, _describe(found), path_or_dir)
    return model.to(device).eval().requires_grad_(False)
