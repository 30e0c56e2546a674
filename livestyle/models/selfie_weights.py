"""The MediaPipe selfie mask files, taken from the ``mediapipe`` wheel on PyPI.

Google publishes ``selfie_segmentation.tflite`` (256x256 input),
``selfie_segmentation_landscape.tflite`` (256x144) and the short-range face detector
``face_detection_short_range.tflite`` under Apache-2.0 inside the ``mediapipe`` wheels
(``mediapipe/modules/...``); there is no Hub repository to download them from. The registry entry
``configs/models/mediapipe-selfie.yaml`` therefore names :func:`write_selfie_file` as the
``generate`` writer of its files: ``livestyle weights pull mediapipe-selfie`` runs ``pip download
--no-deps mediapipe==0.10.21`` for one fixed wheel (Linux x86-64, CPython 3.11: every wheel of a
release holds the same model files; pip fetches it on any platform), unzips the three files,
checks their SHA-256 against the registry and deletes the wheel. The ``mediapipe`` package itself
is never installed or imported.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from livestyle.errors import WeightsError

__all__ = ["MEDIAPIPE_VERSION", "REGISTRY_NAME", "WHEEL_FILES", "download_wheel", "extract_selfie_files", "write_selfie_file"]

MEDIAPIPE_VERSION = "0.10.21"
"""The mediapipe release whose wheel the files come from (the SHA-256s in the registry are its files')."""
REGISTRY_NAME = "mediapipe-selfie"
WHEEL_FILES = (
    "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite",
    "mediapipe/modules/selfie_segmentation/selfie_segmentation_landscape.tflite",
    "mediapipe/modules/face_detection/face_detection_short_range.tflite",
)
"""The model files' paths inside the wheel (and below the model's folder on disk)."""

# One fixed wheel, whatever the platform pip runs on (about 36 MB, deleted after unzipping).
_PIP_WHEEL_FLAGS = (
    "--only-binary=:all:", "--platform", "manylinux_2_28_x86_64",
    "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
)  # fmt: skip
_PIP_TIMEOUT_S = 600


def _manual_hint() -> str:
    return (
        f"or do it by hand: `pip download --no-deps mediapipe=={MEDIAPIPE_VERSION}`, unzip "
        f"{', '.join(WHEEL_FILES)} from the wheel into DIR/{REGISTRY_NAME}/ and pass --weights-dir DIR"
    )


def download_wheel(folder: Path) -> Path:
    """Download the mediapipe wheel into ``folder`` with ``pip download --no-deps``; return its path.

    Raises :class:`WeightsError` (with pip's last lines and the manual route) when pip fails.
    """
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "--quiet",
        *_PIP_WHEEL_FLAGS, "--dest", str(folder), f"mediapipe=={MEDIAPIPE_VERSION}",
    ]  # fmt: skip
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=_PIP_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise WeightsError(f"`pip download mediapipe=={MEDIAPIPE_VERSION}` did not run ({exc}); {_manual_hint()}") from None
    wheels = sorted(folder.glob(f"mediapipe-{MEDIAPIPE_VERSION}-*.whl"))
    if done.returncode != 0 or not wheels:
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:]) or f"exit status {done.returncode}"
        raise WeightsError(f"`pip download mediapipe=={MEDIAPIPE_VERSION}` failed: {tail}; {_manual_hint()}")
    return wheels[0]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def extract_selfie_files(wheel: Path, root: Path, sha256: dict[str, str] | None = None) -> list[Path]:
    """Unzip :data:`WHEEL_FILES` from ``wheel`` to the same paths below ``root``; return them.

    ``sha256`` maps wheel path → expected digest; a mismatch raises :class:`WeightsError` before
    that file is written. Each file is written under a temporary name and renamed, so a reader
    (another test worker) never sees half a file.
    """
    written = []
    try:
        archive = zipfile.ZipFile(wheel)
    except (OSError, zipfile.BadZipFile) as exc:
        raise WeightsError(f"{wheel} is not a readable wheel ({exc}); {_manual_hint()}") from None
    with archive:
        for name in WHEEL_FILES:
            try:
                data = archive.read(name)
            except KeyError:
                raise WeightsError(f"{wheel.name} has no {name}; {_manual_hint()}") from None
            expected = (sha256 or {}).get(name)
            digest = hashlib.sha256(data).hexdigest()
            if expected and digest != expected:
                raise WeightsError(
                    f"{name} in {wheel.name} has sha256 {digest[:12]}..., the registry expects {expected[:12]}...; "
                    f"check configs/models/{REGISTRY_NAME}.yaml"
                )
            dest = root / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, dest)
            written.append(dest)
    return written


def _registry_hashes() -> dict[str, str]:
    from livestyle.models.weights import get_model

    model = get_model(REGISTRY_NAME)
    return {s.path: s.sha256 for s in model.files.values() if s.sha256}


def write_selfie_file(dest: Path) -> None:
    """Registry writer (``generate:``) for one selfie model file at ``dest``.

    ``dest`` must end with one of :data:`WHEEL_FILES`. Downloads the wheel once into a temporary
    folder and writes *all* the files to their places beside ``dest`` (the registry's other files
    are then already present); does nothing when ``dest`` exists with the registry's SHA-256.
    """
    wheel_path = next((p for p in WHEEL_FILES if dest.as_posix().endswith("/" + p)), None)
    if wheel_path is None:
        raise WeightsError(f"{dest} is not one of the selfie mask files {WHEEL_FILES}; check configs/models/{REGISTRY_NAME}.yaml")
    hashes = _registry_hashes()
    if dest.is_file() and hashes.get(wheel_path) in (None, _sha256(dest)):
        return
    root = Path(dest.as_posix()[: -len(wheel_path)])
    with tempfile.TemporaryDirectory(prefix="livestyle-mediapipe-") as tmp:
        extract_selfie_files(download_wheel(Path(tmp)), root, hashes)
