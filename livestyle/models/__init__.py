"""Pure torch model code: no threads, sockets or cameras. Imports nothing else of livestyle but errors.

``livestyle.models.load_dit(path, *, device="cpu", dtype=None, config=None, lora=None)`` loads any
supported Wan 2.1 transformer checkpoint (see ``livestyle.models.checkpoints``). Attributes are
resolved lazily so importing the package does not import torch.
"""

from __future__ import annotations

from typing import Any

__all__ = ["load_dit"]


def __getattr__(name: str) -> Any:
    if name == "load_dit":
        from livestyle.models.checkpoints import load_dit

        return load_dit
    raise AttributeError(f"module 'livestyle.models' has no attribute {name!r}")
