"""Lazy imports of the optional I/O libraries, with the install hint when one is missing."""

from __future__ import annotations

import importlib
from types import ModuleType

from livestyle.errors import SourceError

__all__ = ["require"]

_PACKAGES = {"av": "av (PyAV)", "cv2": "opencv-python-headless"}


def require(module: str, extra: str = "io") -> ModuleType:
    """Import ``module`` or raise SourceError saying which extra provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        package = _PACKAGES.get(module, module)
        raise SourceError(
            f"{package} is not installed ({exc}): pip install 'livestyle[{extra}]'"
        ) from exc
