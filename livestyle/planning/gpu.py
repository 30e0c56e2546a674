"""The local GPU and the throughput profile (``configs/gpus/*.yaml``) that describes it.

Each profile lists the device-name fragments it stands for (``match: ["rtx 4090"]``); a device
name matches when a fragment appears in it as whole words ("l4" matches "NVIDIA L4", not
"NVIDIA L40S"). :func:`detect_gpu` asks PyTorch (imported only here, only when called).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from livestyle.planning.budget import list_profiles, profile_dir

__all__ = ["LocalGpu", "detect_gpu", "match_profile"]


@dataclass(frozen=True)
class LocalGpu:
    """A CUDA device: its name, memory in GiB and the matching profile name (None: no match)."""

    name: str
    memory_gib: float
    profile: str | None


def _fragments(path: Path) -> list[str]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return []
    match = data.get("match", []) if isinstance(data, dict) else []
    return [str(m).lower() for m in match] if isinstance(match, list) else []


def match_profile(device_name: str, directory: Path | None = None) -> str | None:
    """The profile whose ``match`` fragments appear in ``device_name``; the longest fragment wins."""
    directory = directory or profile_dir()
    name = device_name.lower()
    best: tuple[int, str] | None = None
    for profile in list_profiles(directory):
        for fragment in _fragments(directory / f"{profile}.yaml"):
            hit = re.search(rf"(?<![a-z0-9]){re.escape(fragment)}(?![a-z0-9])", name)
            if hit and (best is None or len(fragment) > best[0]):
                best = (len(fragment), profile)
    return best[1] if best else None


def detect_gpu(index: int = 0) -> LocalGpu | None:
    """The CUDA device ``index`` of this machine, or None (no CUDA build, no GPU, or no torch)."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available() or index >= torch.cuda.device_count():
        return None
    props = torch.cuda.get_device_properties(index)
    return LocalGpu(props.name, props.total_memory / 2**30, match_profile(props.name))
