"""Reading checkpoint files into flat state dicts, with one-line errors for bad files.

``read_state_dict`` understands every container the supported checkpoints use: single
``.safetensors`` files (memory-mapped), sharded safetensors with a ``*.index.json``, a folder
holding either, and pickled ``.pt``/``.pth`` dicts, which are always read with
``weights_only=True`` so a checkpoint can never execute code.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from livestyle.errors import ModelLoadError

__all__ = ["read_state_dict", "StateDict"]

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
