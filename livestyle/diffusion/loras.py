"""The LoRA folder of a stream: which names resolve to which files, parsed LoRAs cached on the device.

A LoRA is named by its file in the folder without the ending (``ink-wash`` for
``ink-wash.safetensors``, ``owner--repo/style`` for a file ``livestyle weights pull`` put in a
sub-folder), or by a path the local operator gave (``--lora FILE``, a preset file): those paths are
allowed with :meth:`LoraLibrary.allow`. Names from remote clients (API, WebSocket, OBS) resolve
only inside the folder, so a client cannot make the server read an arbitrary file.

The folder: ``model.lora_dir``, else ``$LIVESTYLE_LORA_DIR``, else ``$LIVESTYLE_CACHE_DIR/loras``,
else ``~/.cache/livestyle/loras``.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from livestyle.errors import ControlError, ModelLoadError, WeightsError
from livestyle.models.lora import LORA_SUFFIXES, LoraFile, check_lora, read_lora_file
from livestyle.paths import check_path

if TYPE_CHECKING:
    from livestyle.models.dit import DiTConfig

__all__ = ["LoraLibrary", "default_lora_dir", "list_loras", "lora_name", "pull_lora"]

log = logging.getLogger(__name__)


def default_lora_dir() -> Path:
    """``$LIVESTYLE_LORA_DIR``, else ``$LIVESTYLE_CACHE_DIR/loras``, else ``~/.cache/livestyle/loras``."""
    env = os.environ.get("LIVESTYLE_LORA_DIR")
    if env:
        return Path(env).expanduser()
    root = os.environ.get("LIVESTYLE_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "livestyle")
    return Path(root) / "loras"


def _stem(path: Path) -> str:
    name = path.as_posix()
    for suffix in LORA_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def lora_name(path: Path, folder: Path) -> str:
    """The name ``path`` (a file under ``folder``) goes by: its relative path without the ending."""
    return _stem(Path(path).resolve().relative_to(Path(folder).expanduser().resolve()))


def _inside(path: Path, root: Path) -> Path | None:
    """``path`` resolved, when it is a file inside ``root`` (resolved); None for a file a symlink
    takes outside, a symlink loop, a name the file system refuses (too long) or anything else."""
    try:
        real = path.resolve()
        return real if real.is_relative_to(root) and real.is_file() else None
    except (OSError, RuntimeError):  # ENAMETOOLONG, ELOOP; RuntimeError: "Symlink loop" (Python < 3.13)
        return None


def list_loras(folder: Path) -> list[dict[str, Any]]:
    """Every LoRA file under ``folder`` (recursive), sorted: ``{"name", "file", "bytes"}``; [] if absent.

    Only files inside the folder: a symlink to a file elsewhere is not listed (nor its size), and
    a symlink loop or an unreadable sub-folder is skipped with a warning, never an error."""
    try:
        if not folder.is_dir():
            return []
        root = folder.resolve()
        paths = sorted(folder.rglob("*"))
    except (OSError, RuntimeError) as exc:
        log.warning("cannot list the LoRA folder %s: %s", folder, exc)
        return []
    out = []
    for path in paths:
        rel = path.relative_to(folder)
        if not path.name.endswith(LORA_SUFFIXES) or any(p.startswith(".") for p in rel.parts):
            continue
        real = _inside(path, root)
        if real is None:
            continue
        try:
            size = real.stat().st_size
        except OSError:
            continue
        out.append({"name": _stem(rel), "file": rel.as_posix(), "bytes": size})
    return out


class LoraLibrary:
    """Resolve LoRA names, read, check against the model and cache them on ``device`` (thread-safe).

    ``config``: the transformer the LoRAs must fit (None: no size check, for listing only).
    """

    def __init__(self, folder: Path | str | None = None, config: DiTConfig | None = None, *,
                 device: torch.device | str = "cpu") -> None:
        self.folder = Path(folder).expanduser() if folder is not None else default_lora_dir()
        self.config = config
        self.device = torch.device(device)
        self._allowed: dict[str, Path] = {}
        self._cache: dict[tuple[str, int, int], LoraFile] = {}
        self._lock = threading.Lock()

    def list(self) -> list[dict[str, Any]]:
        """The LoRAs of the folder (:func:`list_loras`)."""
        return list_loras(self.folder)

    def catalog(self) -> dict[str, Any]:
        """``{"folder", "loras"}``: what ``GET /api/loras`` shows."""
        return {"folder": str(self.folder), "loras": self.list()}

    def allow(self, name: str) -> None:
        """Let ``name`` (a path given by the local operator) resolve to that file, for every client."""
        path = Path(name).expanduser()
        if path.exists() and not path.is_file():  # a FIFO would block the read forever
            raise ControlError(f"LoRA {name!r} is not a regular file (a FIFO, socket, device or folder)")
        if path.exists():
            self._allowed[name] = path.resolve()

    def resolve(self, name: str) -> Path:
        """The file ``name`` means; :class:`ControlError` naming the choices when there is none."""
        if name in self._allowed:
            return self._allowed[name]
        check_path(name, ControlError, "LoRA name")  # a name over 255 bytes: one line, not ENAMETOOLONG
        folder = self.folder.resolve()
        for candidate in (name, *(name + s for s in LORA_SUFFIXES)):
            path = _inside(folder / candidate, folder)
            if path is not None:
                return path
        names = [item["name"] for item in self.list()]
        shown = ", ".join(names[:12]) + (f", … ({len(names) - 12} more)" if len(names) > 12 else "")
        raise ControlError(f"unknown LoRA {name!r}; in {self.folder}: {shown or 'none'} "
                           "(put .safetensors files there, or `livestyle weights pull OWNER/REPO`)")

    def load(self, name: str) -> LoraFile:
        """The parsed LoRA ``name`` on the device, checked against ``config`` (cached per file and mtime).

        Raises :class:`ControlError` for an unknown name and :class:`ModelLoadError` (one line, first
        bad key) for a file that is not a LoRA for this model.
        """
        path = self.resolve(name)
        stat = path.stat()
        key = (str(path), stat.st_mtime_ns, stat.st_size)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                return hit
            lora = read_lora_file(path)
            if self.config is not None:
                check_lora(lora, self.config)
            lora = lora.to(self.device)
            self._cache = {k: v for k, v in self._cache.items() if k[0] != key[0]}
            self._cache[key] = lora
            log.info("LoRA %s: %d layers, rank %s", path, len(lora.layers), "/".join(map(str, lora.ranks)))
            return lora

    def load_checked(self, name: str) -> LoraFile:
        """:meth:`load` with a bad file reported as a :class:`ControlError` (a command's error)."""
        try:
            return self.load(name)
        except ModelLoadError as exc:
            raise ControlError(f"LoRA {name!r} cannot be used: {exc}") from None


def pull_lora(repo_id: str, *, filename: str | None = None, folder: Path | str | None = None, revision: str | None = None,
              download: Any = None, list_files: Any = None) -> Path:
    """Download a LoRA from a Hugging Face Hub repo into the LoRA folder: ``FOLDER/owner--repo/FILE``.

    ``filename``: the file in the repo; None picks the repo's only LoRA file (``.safetensors`` first)
    and refuses, listing them, when there are several. The file is read and checked to be a LoRA
    (any layout) before the name is printed. ``download`` / ``list_files``: ``hf_hub_download`` /
    ``list_repo_files`` (injected by tests; no network there). Raises :class:`WeightsError`.
    """
    if download is None or list_files is None:
        from huggingface_hub import hf_hub_download, list_repo_files

        download = download or hf_hub_download
        list_files = list_files or list_repo_files
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise WeightsError(f"{repo_id!r} is not a Hub repo id; expected OWNER/REPO")
    if filename is None:
        try:
            files = [f for f in list_files(repo_id, revision=revision) if f.endswith(LORA_SUFFIXES)]
        except Exception as exc:  # noqa: BLE001 - huggingface_hub raises many HTTP/offline types; one line for all
            raise WeightsError(f"cannot list {repo_id} on the Hub ({type(exc).__name__}: {exc}); check the name and the network") from None
        picks = [f for f in files if f.endswith(".safetensors")] or files
        if len(picks) != 1:
            found = ", ".join(picks[:8]) or "none"
            raise WeightsError(f"{repo_id} holds {len(picks)} LoRA files ({found}); name one with --file")
        filename = picks[0]
    target = (Path(folder).expanduser() if folder is not None else default_lora_dir()) / repo_id.replace("/", "--")
    try:
        path = Path(download(repo_id, filename, revision=revision, local_dir=str(target)))
    except Exception as exc:  # noqa: BLE001 - as above
        raise WeightsError(f"cannot download {filename} from {repo_id} ({type(exc).__name__}: {exc})") from None
    try:
        read_lora_file(path)
    except ModelLoadError as exc:
        raise WeightsError(f"downloaded {path}, but it is not a Wan 2.1 LoRA livestyle reads: {exc}") from None
    return path
