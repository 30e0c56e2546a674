"""The model registry (``configs/models/*.yaml``) and where each model's files are on disk.

A registry entry names a model and the files it needs by *role* (``dit``, ``vae``,
``text_encoder``, ``tokenizer``, ``taehv``, ``lora``, ...). Each file lives in a Hugging Face Hub
repo (``repo`` + ``file``, or ``folder`` for a directory such as the tokenizer), or is written
locally by a generator (``generate: module:function``, the ``tiny`` test model).

Resolution order for a file (:func:`resolve`):

1. a local weights folder, ``--weights-dir DIR`` or ``$LIVESTYLE_WEIGHTS_DIR``: ``DIR/<model>/<file>``,
   ``DIR/<repo>/<file>``, ``DIR/<file>``, then ``DIR/<basename of file>``;
2. the Hugging Face cache (``HF_HOME`` / ``HF_HUB_CACHE``), as filled by :func:`pull`;
3. generated files: ``<generated dir>/<model>/<file>`` (``$LIVESTYLE_CACHE_DIR/weights``).

A missing file raises :class:`WeightsError` naming the file and the ``livestyle weights pull``
command. Downloading is :func:`livestyle.models.weights_pull.pull`; checking the files on disk is
:func:`livestyle.models.weights_verify.verify`.

Model-level keys besides ``files``: ``container`` (which weight set of a training save the model
streams: what its upstream inference loader takes) and ``adapter`` (``rank``/``alpha`` of a LoRA
whose file does not carry them). File-level: ``license`` (as the upstream card or repository says,
or ``unverified``) and ``git_sha1`` (the git blob id of a file pinned from a GitHub repository).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from livestyle.errors import WeightsError

log = logging.getLogger(__name__)

__all__ = [
    "FileSpec",
    "ModelSpec",
    "file_present",
    "generated_dir",
    "get_model",
    "human_size",
    "list_models",
    "local_weights_dir",
    "locate",
    "registry_dir",
    "resolve",
]

WEIGHTS_DIR_ENV = "LIVESTYLE_WEIGHTS_DIR"
REGISTRY_ENV = "LIVESTYLE_MODELS_DIR"


@dataclass(frozen=True)
class FileSpec:
    """One file (or folder) a model needs.

    ``repo``/``revision``: Hub repository; ``file``: path of a file in it; ``folder``: path of a
    folder in it (all files below are fetched); ``size``/``sha256``: exact values when known
    (checked by :func:`~livestyle.models.weights_verify.verify`); ``approx_size``: bytes for disk-space planning when the exact size
    is unknown; ``min_size``: a lower bound when not even an estimate is known (the DiT weights in
    bf16 inside a training save of unknown layout); ``generate``: ``"module:function"`` writing the file locally instead of downloading;
    ``url``: an alternative public source, for the error message; ``optional``: the model runs
    without it (e.g. the TAEHV fast decoder); ``license``: the file's licence as its upstream card
    or repository states it (``"unverified"`` when not read); ``git_sha1``: the git blob id of the
    pinned upstream file (checked by :func:`~livestyle.models.weights_verify.verify`).
    """

    role: str
    repo: str | None = None
    file: str | None = None
    folder: str | None = None
    revision: str = "main"
    size: int | None = None
    sha256: str | None = None
    approx_size: int | None = None
    min_size: int | None = None
    generate: str | None = None
    url: str | None = None
    optional: bool = False
    license: str = "unverified"
    git_sha1: str | None = None

    @property
    def path(self) -> str:
        """The file's (or folder's) path inside its repo / model folder."""
        return self.file or self.folder or ""

    @property
    def is_folder(self) -> bool:
        return self.folder is not None

    @property
    def planned_size(self) -> int | None:
        """Bytes to plan for: the exact size, else the estimate, else the lower bound (None: unknown)."""
        for value in (self.size, self.approx_size, self.min_size):
            if value is not None:
                return value
        return None

    @property
    def size_is_estimate(self) -> bool:
        """Whether :attr:`planned_size` is at best an estimate (not the exact byte count)."""
        return self.size is None and self.approx_size is not None

    def describe(self) -> str:
        where = f"{self.repo}/{self.path}" if self.repo else self.path
        return f"{self.role} ({where})"


@dataclass(frozen=True)
class ModelSpec:
    """A registry entry. ``pipeline`` is the family-defaults mapping, read by ``livestyle.diffusion.family``.

    ``container``: the key of a training-save ``.pt`` whose weights the model streams (``None``: a
    flat file); ``adapter``: ``{"rank", "alpha"}`` of the model's LoRA when the file lacks them.
    """

    name: str
    title: str
    family: str
    dit: str | None
    files: dict[str, FileSpec]
    pipeline: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    source: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    container: str | None = None
    adapter: dict[str, float] = field(default_factory=dict)

    def file(self, role: str) -> FileSpec:
        if role not in self.files:
            raise WeightsError(f"model {self.name!r} has no {role!r} file; it has: {', '.join(self.files)}")
        return self.files[role]

    @property
    def planned_size(self) -> int:
        """The known bytes of every file (estimates and lower bounds included; unknown ones count 0)."""
        return sum(f.planned_size or 0 for f in self.files.values())

    @property
    def download_text(self) -> str:
        """The download as a user reads it: ``1.2 GB`` exact, ``~1.2 GB`` estimated, ``≥1.2 GB`` when a
        file's size is only bounded from below or unknown (so no file silently drops out of the sum)."""
        files = self.files.values()
        if any(f.size is None and f.approx_size is None for f in files):
            return f"≥{human_size(self.planned_size)}"
        return ("~" if any(f.size_is_estimate for f in files) else "") + human_size(self.planned_size)


# -- registry ---------------------------------------------------------------------------------------


def registry_dir() -> Path:
    """``$LIVESTYLE_MODELS_DIR``, else the repository's ``configs/models``."""
    env = os.environ.get(REGISTRY_ENV)
    return Path(env) if env else Path(__file__).resolve().parents[2] / "configs" / "models"


def generated_dir() -> Path:
    """Where generated (test) model files are written: ``$LIVESTYLE_CACHE_DIR/weights`` or ``~/.cache/livestyle/weights``."""
    root = os.environ.get("LIVESTYLE_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "livestyle")
    return Path(root) / "weights"


_FILE_KEYS = {"repo", "file", "folder", "revision", "size", "sha256", "approx_size", "min_size", "generate", "url", "optional",
              "license", "git_sha1"}
_CONTAINER_KEYS = ("generator", "generator_ema", "model", "state_dict")


def _int_or_none(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise WeightsError(f"{where} must be a byte count or null, got {value!r}")
    return value


def _parse_file(role: str, raw: Any, top: dict[str, Any], where: str) -> FileSpec:
    if isinstance(raw, str):  # short form: `role: path` with a top-level repo (and sha256 map)
        sha = (top.get("sha256") or {}).get(role) if isinstance(top.get("sha256"), dict) else None
        raw = {"repo": top.get("repo"), "file": raw, "revision": top.get("revision", "main"), "sha256": sha}
    if not isinstance(raw, dict):
        raise WeightsError(f"{where}: files.{role} must be a mapping or a path, got {type(raw).__name__}")
    unknown = set(raw) - _FILE_KEYS
    if unknown:
        raise WeightsError(f"{where}: files.{role} has unknown keys {sorted(unknown)}; known: {sorted(_FILE_KEYS)}")
    if bool(raw.get("file")) == bool(raw.get("folder")):
        raise WeightsError(f"{where}: files.{role} needs exactly one of 'file' or 'folder'")
    if not raw.get("repo") and not raw.get("generate"):
        raise WeightsError(f"{where}: files.{role} needs a 'repo' (Hugging Face Hub) or 'generate' (local writer)")
    sha = raw.get("sha256")
    if sha is not None and (not isinstance(sha, str) or len(sha) != 64):
        raise WeightsError(f"{where}: files.{role}.sha256 must be 64 hex digits or null")
    git = raw.get("git_sha1")
    if git is not None and (not isinstance(git, str) or len(git) != 40):
        raise WeightsError(f"{where}: files.{role}.git_sha1 must be 40 hex digits or null")
    return FileSpec(
        role=role,
        repo=raw.get("repo"),
        file=raw.get("file"),
        folder=raw.get("folder"),
        revision=str(raw.get("revision") or "main"),
        size=_int_or_none(raw.get("size"), f"{where}: files.{role}.size"),
        sha256=sha.lower() if sha else None,
        approx_size=_int_or_none(raw.get("approx_size"), f"{where}: files.{role}.approx_size"),
        min_size=_int_or_none(raw.get("min_size"), f"{where}: files.{role}.min_size"),
        generate=raw.get("generate"),
        url=raw.get("url"),
        optional=bool(raw.get("optional", False)),
        license=str(raw.get("license") or "unverified"),
        git_sha1=git.lower() if git else None,
    )


def _parse_model(path: Path) -> ModelSpec:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise WeightsError(f"cannot read model registry file {path}: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict) or not isinstance(data.get("files"), dict):
        raise WeightsError(f"{path} is not a model registry entry (needs 'name' and a 'files' mapping)")
    name = data.get("name") or path.stem
    if name != path.stem:
        raise WeightsError(f"{path}: name {name!r} must match the file name {path.stem!r}")
    files = {role: _parse_file(str(role), raw, data, str(path)) for role, raw in data["files"].items()}
    container = data.get("container")
    if container is not None and container not in _CONTAINER_KEYS:
        raise WeightsError(f"{path}: container must be one of {', '.join(_CONTAINER_KEYS)} or null, got {container!r}")
    adapter = data.get("adapter") or {}
    if not isinstance(adapter, dict) or set(adapter) - {"rank", "alpha"} or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in adapter.values()):
        raise WeightsError(f"{path}: adapter must be a mapping with a positive rank and alpha, got {adapter!r}")
    known = {"name", "title", "family", "dit", "files", "pipeline", "description", "repo", "revision", "sha256",
             "container", "adapter"}
    return ModelSpec(
        name=name,
        title=str(data.get("title") or data.get("description") or name),
        family=str(data.get("family") or ""),
        dit=str(data["dit"]) if data.get("dit") is not None else None,
        files=files,
        pipeline=dict(data.get("pipeline") or {}),
        description=str(data.get("description") or ""),
        source=path,
        extra={k: v for k, v in data.items() if k not in known},
        container=container,
        adapter=dict(adapter),
    )


def list_models(directory: Path | None = None) -> list[ModelSpec]:
    """Every registry entry, sorted by name."""
    folder = directory or registry_dir()
    return [_parse_model(p) for p in sorted(folder.glob("*.yaml"))]


def get_model(name: str, directory: Path | None = None) -> ModelSpec:
    """The registry entry called ``name``; an unknown name raises :class:`WeightsError` listing the valid ones."""
    folder = directory or registry_dir()
    path = folder / f"{name}.yaml"
    if not path.is_file():
        names = ", ".join(sorted(p.stem for p in folder.glob("*.yaml"))) or "(none)"
        raise WeightsError(f"unknown model {name!r}; known models: {names}")
    return _parse_model(path)


# -- resolution -------------------------------------------------------------------------------------


def local_weights_dir(weights_dir: str | Path | None) -> Path | None:
    """The local weights folder: ``weights_dir``, else ``$LIVESTYLE_WEIGHTS_DIR``, else None."""
    if weights_dir is not None:
        return Path(weights_dir).expanduser()
    env = os.environ.get(WEIGHTS_DIR_ENV)
    return Path(env).expanduser() if env else None


def file_present(path: Path, spec: FileSpec) -> bool:
    """``path`` holds ``spec``: an existing file, or a folder that is not empty."""
    if spec.is_folder:
        return path.is_dir() and any(path.iterdir())
    return path.is_file()


def _local_candidates(model: ModelSpec, spec: FileSpec, root: Path) -> list[Path]:
    rel = spec.path
    candidates = [root / model.name / rel]
    if spec.repo:
        candidates.append(root / spec.repo / rel)
    candidates += [root / rel, root / Path(rel).name]
    return list(dict.fromkeys(candidates))


def _hub_cached(spec: FileSpec) -> Path | None:
    if not spec.repo:
        return None
    from huggingface_hub import snapshot_download, try_to_load_from_cache
    from huggingface_hub.errors import LocalEntryNotFoundError

    if not spec.is_folder:
        found = try_to_load_from_cache(spec.repo, spec.path, revision=spec.revision)
        return Path(found) if isinstance(found, str) else None
    try:
        root = snapshot_download(spec.repo, revision=spec.revision, allow_patterns=[f"{spec.path}/*"], local_files_only=True)
    except (LocalEntryNotFoundError, OSError, ValueError):
        return None
    folder = Path(root) / spec.path
    return folder if file_present(folder, spec) else None


def locate(model: ModelSpec, role: str, *, weights_dir: str | Path | None = None) -> tuple[Path | None, list[Path]]:
    """Where ``role`` of ``model`` is: ``(path or None, local paths that were looked at)``."""
    spec = model.file(role)
    looked: list[Path] = []
    root = local_weights_dir(weights_dir)
    if root is not None:
        for candidate in _local_candidates(model, spec, root):
            looked.append(candidate)
            if file_present(candidate, spec):
                return candidate, looked
    cached = _hub_cached(spec)
    if cached is not None:
        return cached, looked
    if spec.generate:
        candidate = generated_dir() / model.name / spec.path
        looked.append(candidate)
        if file_present(candidate, spec):
            return candidate, looked
    return None, looked


def resolve(name: str | ModelSpec, role: str, *, weights_dir: str | Path | None = None) -> Path:
    """Path of the file ``role`` of model ``name`` (local weights folder first, then the Hub cache).

    Raises :class:`WeightsError` saying exactly which file is missing and how to get it.
    """
    model = name if isinstance(name, ModelSpec) else get_model(name)
    found, looked = locate(model, role, weights_dir=weights_dir)
    if found is not None:
        return found
    spec = model.file(role)
    where = f"{spec.repo}/{spec.path}" if spec.repo else spec.path
    places = f"{looked[0]} or the Hugging Face cache" if looked else "the Hugging Face cache (no --weights-dir given)"
    raise WeightsError(
        f"model {model.name!r} is missing its {role} file {where} (looked in {places}); "
        f"run `livestyle weights pull {model.name}` or put the file at DIR/{model.name}/{spec.path} and pass --weights-dir DIR"
    )


def human_size(n: int | None) -> str:
    """``n`` bytes as ``1.2 GB`` (``?`` for None)."""
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"
