"""Optional dependencies, detected in one place: Python extras and the ``ffmpeg`` executable.

A leaf module beside :mod:`livestyle.errors` (it imports nothing else of ours), so that
``ingest/`` and ``output/``, which may import only ``pipeline.frames`` and ``errors``, can share
it without reaching into the rest of the package.

- :func:`require` imports an optional library lazily and, when it is missing, raises the caller's
  error type with the ``pip install 'livestyle[EXTRA]'`` hint.
- :func:`ffmpeg_protocols` / :func:`ffmpeg_with_srt` find an ``ffmpeg`` on PATH and whether it
  has libsrt (the FFmpeg inside the PyAV wheels has none, so ``srt://`` goes through it).
"""

from __future__ import annotations

import importlib
import logging
import shutil
import subprocess
from types import ModuleType

from livestyle.errors import LivestyleError

__all__ = ["ffmpeg_protocols", "ffmpeg_with_srt", "require"]

log = logging.getLogger(__name__)

_PACKAGES = {"av": "av (PyAV)", "cv2": "opencv-python-headless", "pyvirtualcam": "pyvirtualcam"}


def require(
    module: str, error: type[LivestyleError], extra: str = "io", *, package: str | None = None
) -> ModuleType:
    """Import ``module``, or raise ``error`` naming the pip ``package`` and the extra that has it.

    ``package`` defaults to the usual pip name of ``module`` (``cv2`` → opencv-python-headless).
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        name = package or _PACKAGES.get(module, module)
        raise error(f"{name} is not installed ({exc}): pip install 'livestyle[{extra}]'") from exc


def ffmpeg_protocols(exe: str) -> frozenset[str]:
    """The protocol names ``exe -protocols`` lists (input and output together).

    Raises ``OSError`` / ``subprocess.SubprocessError`` when ``exe`` does not run (10 s limit).
    """
    listing = subprocess.run(
        [exe, "-hide_banner", "-protocols"], capture_output=True, text=True, timeout=10, check=False
    ).stdout
    return frozenset(line.strip() for line in listing.splitlines() if line.strip())


def ffmpeg_with_srt() -> str | None:
    """Path of an ``ffmpeg`` on PATH that lists the ``srt`` protocol, else None."""
    exe = shutil.which("ffmpeg")
    if exe is None:
        return None
    try:
        protocols = ffmpeg_protocols(exe)
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("%s -protocols did not run (%s): srt:// is off", exe, exc)
        return None
    return exe if "srt" in protocols else None
