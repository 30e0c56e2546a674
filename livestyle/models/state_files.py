"""Reading checkpoint files into flat state dicts, and assigning them into modules, with one-line errors.

``read_state_dict`` understands every container the supported checkpoints use: single
``.safetensors`` files (memory-mapped), sharded safetensors with a ``*.index.json``, a folder
holding either, and pickled ``.pt``/``.pth`` dicts, which are always read with
``weights_only=True`` so a checkpoint can never execute code. ``assign_state_dict`` loads such a
dict into a model built on the meta device. Every loader (the DiT in ``checkpoints``, LoRAs, the
VAE, TAEHV, umT5, the person masks) reads its files through here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from livestyle.errors import ModelLoadError

__all__ = ["StateDict", "assign_state_dict", "read_state_dict"]

StateDict = dict[str, torch.Tensor]

_SAFETENSORS_SUFFIXES = (".safetensors",)
_PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")


def _read_safetensors(path: Path) -> StateDict:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelLoadError(
            f"{path} is not a readable safetensors file ({exc}); it may be truncated — "
            "download it again (livestyle weights pull NAME)"
        ) from None


def _read_sharded(index_path: Path) -> StateDict:
    try:
        index = json.loads(index_path.read_text())
        weight_map: dict[str, str] = index["weight_map"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelLoadError(f"{index_path} is not a valid shard index ({exc})") from None
    state: StateDict = {}
    for shard in sorted(set(weight_map.values())):
        shard_path = index_path.parent / shard
        if not shard_path.is_file():
            raise ModelLoadError(f"shard {shard} listed in {index_path.name} is missing from {index_path.parent}")
        state.update(read_state_dict(shard_path))
    return state


def _read_pickle(path: Path) -> dict:
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:
        # Old (non-zip) pickles cannot be memory-mapped; read them whole.
        try:
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many types for corrupt pickles
            raise ModelLoadError(f"{path} is not a readable PyTorch checkpoint ({type(exc).__name__}: {exc})") from None
    except Exception as exc:
        raise ModelLoadError(f"{path} is not a readable PyTorch checkpoint ({type(exc).__name__}: {str(exc)[:200]})") from None
    if not isinstance(obj, dict):
        raise ModelLoadError(f"{path} holds a {type(obj).__name__}, expected a dict of tensors")
    return obj


def read_state_dict(path: str | Path) -> dict:
    """Read a checkpoint file or folder into a dict (a flat state dict, or a pickled container dict).

    Folders: the first of ``*.safetensors.index.json``, a single ``*.safetensors``, a single
    ``*.pt``/``*.pth`` is read. Pickled containers are returned as found (e.g. ``{"generator": ...}``);
    unwrapping them is the caller's business because it differs per model.
    """
    path = Path(path)
    if not path.exists():
        raise ModelLoadError(f"checkpoint {path} does not exist")
    if path.is_dir():
        indexes = sorted(path.glob("*.safetensors.index.json"))
        if indexes:
            return _read_sharded(indexes[0])
        singles = sorted(path.glob("*.safetensors"))
        if len(singles) == 1:
            return _read_safetensors(singles[0])
        pickles = sorted(p for p in path.iterdir() if p.suffix in _PICKLE_SUFFIXES)
        if len(pickles) == 1:
            return _read_pickle(pickles[0])
        raise ModelLoadError(
            f"{path} holds no single checkpoint (found {len(singles)} .safetensors, {len(pickles)} pickles, "
            "no *.safetensors.index.json); point at the file itself"
        )
    name = path.name
    if name.endswith(".safetensors.index.json"):
        return _read_sharded(path)
    if name.endswith(_SAFETENSORS_SUFFIXES):
        return _read_safetensors(path)
    if name.endswith(_PICKLE_SUFFIXES):
        return _read_pickle(path)
    with path.open("rb") as fh:
        head = fh.read(8)
    if head[:2] == b"PK":
        return _read_pickle(path)
    raise ModelLoadError(
        f"{path} is not a checkpoint livestyle knows (expected .safetensors, .safetensors.index.json, .pt or .pth)"
    )


def assign_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor | None], where: str | Path,
                      what: str, dtype: torch.dtype) -> None:
    """Load ``state`` into ``model`` (built on the meta device) with ``assign=True``, strictly.

    Floating-point tensors are cast to ``dtype``; others are kept. A key that is missing (or
    ``None``), an extra key or a wrong shape raises a one-line :class:`ModelLoadError` naming
    ``where`` and ``what`` the file should have matched.
    """
    expected = model.state_dict()
    missing = [k for k in expected if state.get(k) is None]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise ModelLoadError(
            f"{where} does not match {what}: {len(missing)} missing keys (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})"
        )
    loaded: dict[str, torch.Tensor] = {}
    for k, ref in expected.items():
        tensor = state[k]
        assert tensor is not None
        if tuple(tensor.shape) != tuple(ref.shape):
            raise ModelLoadError(f"{where}: {k} has shape {tuple(tensor.shape)}, expected {tuple(ref.shape)}")
        loaded[k] = tensor.to(dtype) if tensor.is_floating_point() else tensor
    model.load_state_dict(loaded, assign=True)
