"""Lazy imports of the optional output libraries, with the install hint when one is missing."""

from __future__ import annotations

import importlib
from types import ModuleType

from livestyle.errors import SinkError

__all__ = ["require"]

_PACKAGES = {"av": "av (PyAV)", "cv2": "opencv-python", "pyvirtualcam": "pyvirtualcam"}


def require(module: str, extra: str = "io") -> ModuleType:
    """Import ``module`` or raise SinkError saying which extra provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        package = _PACKAGES.get(module, module)
        raise SinkError(
            f"{package} is not installed ({exc}): pip install 'livestyle[{extra}]'"
        ) from exc
