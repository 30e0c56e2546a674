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
command. :func:`pull` downloads through ``huggingface_hub`` (progress bars, resumable, the standard
cache), failing fast without network and checking free disk space first. :func:`verify` checks
what it can — the exact size and SHA-256 or git blob id where the registry knows them, the file's
format header, its tensor names and shapes against the model config (``livestyle.models.filecheck``)
— and lists what it could not check as unverified.

Model-level keys besides ``files``: ``container`` (which weight set of a training save the model
streams: what its upstream inference loader takes) and ``adapter`` (``rank``/``alpha`` of a LoRA
whose file does not carry them). File-level: ``license`` (as the upstream card or repository says,
or ``unverified``) and ``git_sha1`` (the git blob id of a file pinned from a GitHub repository).
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from livestyle.errors import WeightsError

log = logging.getLogger(__name__)

__all__ = [
    "FileSpec",
    "FileStatus",
    "ModelSpec",
    "generated_dir",
    "get_model",
    "git_blob_sha1",
    "human_size",
    "list_models",
    "locate",
    "pull",
    "registry_dir",
    "resolve",
    "verify",
]

WEIGHTS_DIR_ENV = "LIVESTYLE_WEIGHTS_DIR"
REGISTRY_ENV = "LIVESTYLE_MODELS_DIR"


@dataclass(frozen=True)
class FileSpec:
    """One file (or folder) a model needs.

    ``repo``/``revision``: Hub repository; ``file``: path of a file in it; ``folder``: path of a
    folder in it (all files below are fetched); ``size``/``sha256``: exact values when known
    (checked by :func:`verify`); ``approx_size``: bytes for disk-space planning when the exact size
    is unknown; ``generate``: ``"module:function"`` writing the file locally instead of downloading;
    ``url``: an alternative public source, for the error message; ``optional``: the model runs
    without it (e.g. the TAEHV fast decoder); ``license``: the file's licence as its upstream card
    or repository states it (``"unverified"`` when not read); ``git_sha1``: the git blob id of the
    pinned upstream file (checked by :func:`verify`).
    """

    role: str
    repo: str | None = None
    file: str | None = None
    folder: str | None = None
    revision: str = "main"
    size: int | None = None
    sha256: str | None = None
    approx_size: int | None = None
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
        return self.size if self.size is not None else self.approx_size

    def describe(self) -> str:
        where = f"{self.repo}/{self.path}" if self.repo else self.path
        return f"{self.role} ({where})"


@dataclass(frozen=True)
class ModelSpec:
    """A registry entry. ``pipeline`` is the family-defaults mapping, read by ``livestyle.pipeline``.

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
        return sum(f.planned_size or 0 for f in self.files.values())


# -- registry ---------------------------------------------------------------------------------------


def registry_dir() -> Path:
    """``$LIVESTYLE_MODELS_DIR``, else the repository's ``configs/models``."""
    env = os.environ.get(REGISTRY_ENV)
    return Path(env) if env else Path(__file__).resolve().parents[2] / "configs" / "models"


def generated_dir() -> Path:
    """Where generated (test) model files are written: ``$LIVESTYLE_CACHE_DIR/weights`` or ``~/.cache/livestyle/weights``."""
    root = os.environ.get("LIVESTYLE_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "livestyle")
    return Path(root) / "weights"


_FILE_KEYS = {"repo", "file", "folder", "revision", "size", "sha256", "approx_size", "generate", "url", "optional",
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


def _weights_dir(weights_dir: str | Path | None) -> Path | None:
    if weights_dir is not None:
        return Path(weights_dir).expanduser()
    env = os.environ.get(WEIGHTS_DIR_ENV)
    return Path(env).expanduser() if env else None


def _usable(path: Path, spec: FileSpec) -> bool:
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
    return folder if _usable(folder, spec) else None


def locate(model: ModelSpec, role: str, *, weights_dir: str | Path | None = None) -> tuple[Path | None, list[Path]]:
    """Where ``role`` of ``model`` is: ``(path or None, local paths that were looked at)``."""
    spec = model.file(role)
    looked: list[Path] = []
    root = _weights_dir(weights_dir)
    if root is not None:
        for candidate in _local_candidates(model, spec, root):
            looked.append(candidate)
            if _usable(candidate, spec):
                return candidate, looked
    cached = _hub_cached(spec)
    if cached is not None:
        return cached, looked
    if spec.generate:
        candidate = generated_dir() / model.name / spec.path
        looked.append(candidate)
        if _usable(candidate, spec):
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


# -- download -------------------------------------------------------------------------------------


def human_size(n: int | None) -> str:
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"


def _offline() -> bool:
    from huggingface_hub import constants

    value = os.environ.get("HF_HUB_OFFLINE", "")
    return bool(constants.HF_HUB_OFFLINE) or value.upper() in {"1", "ON", "YES", "TRUE"}


def _offline_message(model: ModelSpec, spec: FileSpec, why: str) -> str:
    return (
        f"cannot download {spec.repo}/{spec.path} for {model.name!r}: {why}; "
        f"download it elsewhere and put it at DIR/{model.name}/{spec.path}, then pass --weights-dir DIR "
        f"(or set {WEIGHTS_DIR_ENV}=DIR)"
    )


def _free_bytes(path: Path) -> int:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def _hub_cache_dir() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _target_dir(model: ModelSpec, weights_dir: Path | None) -> Path | None:
    return weights_dir / model.name if weights_dir is not None else None


def _check_space(model: ModelSpec, todo: list[FileSpec], dest: Path, sizes: dict[str, int | None]) -> None:
    need = sum(sizes.get(s.role) or 0 for s in todo)
    if not need:
        return
    free = _free_bytes(dest)
    if need > free:
        raise WeightsError(
            f"not enough disk space for {model.name!r} in {dest}: {human_size(need)} needed, {human_size(free)} free; "
            "free some space, or download elsewhere with --weights-dir DIR (or HF_HOME=DIR for the Hugging Face cache)"
        )


def _remote_size(spec: FileSpec) -> int | None:
    """Exact size from the Hub (a HEAD request), or None for folders / on failure."""
    if spec.is_folder or not spec.repo:
        return None
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    meta = get_hf_file_metadata(hf_hub_url(spec.repo, spec.path, revision=spec.revision), timeout=10, retry_on_errors=False)
    return meta.size


def _hub_error(model: ModelSpec, spec: FileSpec, exc: Exception) -> WeightsError:
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    target = f"{spec.repo}/{spec.path}"
    if _is_connection_error(exc):
        return WeightsError(_offline_message(model, spec, "no connection to the Hugging Face Hub"))
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, HfHubHTTPError):  # the HTTP error behind a wrapper
        cause = cause.__cause__ or cause.__context__
    err: BaseException = cause if cause is not None else exc
    if isinstance(err, GatedRepoError):
        return WeightsError(f"{spec.repo} is gated: accept its terms on huggingface.co and log in (`hf auth login`), then pull again")
    if isinstance(err, RepositoryNotFoundError):
        return WeightsError(f"repository {spec.repo} not found on the Hugging Face Hub (or it is private); check configs/models/{model.name}.yaml")
    if isinstance(err, RevisionNotFoundError):
        return WeightsError(f"revision {spec.revision!r} of {spec.repo} not found; check configs/models/{model.name}.yaml")
    if isinstance(err, EntryNotFoundError):
        return WeightsError(f"{target} not found on the Hugging Face Hub; check configs/models/{model.name}.yaml")
    if isinstance(err, LocalEntryNotFoundError):
        return WeightsError(_offline_message(model, spec, "no connection to the Hugging Face Hub"))
    first_line = str(err).splitlines()[0] if str(err) else type(err).__name__
    return WeightsError(f"downloading {target} failed: {first_line}")


def _is_connection_error(exc: BaseException) -> bool:
    names = {"ConnectError", "ConnectTimeout", "ConnectionError", "ReadTimeout", "TimeoutException", "NetworkError", "OfflineModeIsEnabled"}
    seen: BaseException | None = exc
    while seen is not None:
        if type(seen).__name__ in names or isinstance(seen, (ConnectionError, TimeoutError)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _generate(model: ModelSpec, spec: FileSpec, dest: Path) -> Path:
    module_name, _, func_name = (spec.generate or "").partition(":")
    try:
        writer: Callable[..., Any] = getattr(importlib.import_module(module_name), func_name)
    except (ImportError, AttributeError) as exc:
        raise WeightsError(f"{model.name}: generator {spec.generate!r} for {spec.role} cannot be imported ({exc})") from None
    dest.parent.mkdir(parents=True, exist_ok=True)
    writer(dest)
    return dest


def pull(
    name: str | ModelSpec,
    *,
    weights_dir: str | Path | None = None,
    roles: Iterable[str] | None = None,
    include_optional: bool = True,
    progress: bool = True,
    on_file: Callable[[FileSpec, Path, str], None] | None = None,
) -> dict[str, Path]:
    """Fetch every file of ``name`` that is not already present; return ``role -> path``.

    Hub files go to the standard Hugging Face cache (or ``DIR/<model>/`` with ``weights_dir``)
    through ``hf_hub_download`` / ``snapshot_download``, which show progress bars and resume
    interrupted downloads (``progress=False`` hides the bars). Generated files are written locally. ``on_file(spec, path, status)``
    is called per file with status ``"present"``, ``"downloaded"`` or ``"generated"``.
    Raises :class:`WeightsError` when offline, out of disk space, or on a Hub error.
    """
    model = name if isinstance(name, ModelSpec) else get_model(name)
    wanted = list(roles) if roles is not None else [r for r, s in model.files.items() if include_optional or not s.optional]
    root = _weights_dir(weights_dir)
    done: dict[str, Path] = {}
    todo: list[FileSpec] = []
    for role in wanted:
        spec = model.file(role)
        found, _ = locate(model, role, weights_dir=root)
        if found is not None:
            done[role] = found
            if on_file:
                on_file(spec, found, "present")
        else:
            todo.append(spec)
    generate = [s for s in todo if s.generate and not s.repo]
    hub = [s for s in todo if s.repo]
    for spec in generate:
        base = _target_dir(model, root) or generated_dir() / model.name
        done[spec.role] = _generate(model, spec, base / spec.path)
        if on_file:
            on_file(spec, done[spec.role], "generated")
    if not hub:
        return done
    if _offline():
        raise WeightsError(_offline_message(model, hub[0], "HF_HUB_OFFLINE is set"))
    dest = _target_dir(model, root) or _hub_cache_dir()
    _check_space(model, hub, dest, {s.role: s.planned_size for s in hub})  # what the registry knows, before any network
    sizes: dict[str, int | None] = {}
    for spec in hub:  # one HEAD per file, without retries: fails fast with no network, gives exact sizes
        try:
            size = _remote_size(spec)
        except Exception as exc:  # noqa: BLE001 - every hub/network failure becomes one WeightsError
            raise _hub_error(model, spec, exc) from None
        sizes[spec.role] = size if size is not None else spec.planned_size
    _check_space(model, hub, dest, sizes)

    from huggingface_hub import hf_hub_download, snapshot_download
    from huggingface_hub.utils import (
        are_progress_bars_disabled,
        disable_progress_bars,
        enable_progress_bars,
    )

    bars_were_off = are_progress_bars_disabled()
    if not progress:
        disable_progress_bars()
    try:
        _download(model, hub, root, done, on_file, hf_hub_download, snapshot_download)
    finally:
        if not progress and not bars_were_off:
            enable_progress_bars()
    return done


def _download(
    model: ModelSpec,
    hub: list[FileSpec],
    root: Path | None,
    done: dict[str, Path],
    on_file: Callable[[FileSpec, Path, str], None] | None,
    hf_hub_download: Callable[..., str],
    snapshot_download: Callable[..., str],
) -> None:
    for spec in hub:
        local_dir = str(_target_dir(model, root)) if root is not None else None
        try:
            if spec.is_folder:
                snap = snapshot_download(
                    spec.repo, revision=spec.revision, allow_patterns=[f"{spec.path}/*"], local_dir=local_dir
                )
                path = Path(snap) / spec.path
            else:
                path = Path(
                    hf_hub_download(spec.repo, spec.path, revision=spec.revision, local_dir=local_dir)  # type: ignore[arg-type]
                )
        except Exception as exc:  # noqa: BLE001 - mapped to one-line WeightsErrors
            raise _hub_error(model, spec, exc) from None
        if not _usable(path, spec):
            raise WeightsError(f"{spec.repo}/{spec.path} downloaded but {path} is empty; check configs/models/{model.name}.yaml")
        done[spec.role] = path
        if on_file:
            on_file(spec, path, "downloaded")


# -- verification ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileStatus:
    """Result of checking one file.

    ``ok`` False with ``problem`` set when missing or wrong. ``checked``: the checks it passed;
    ``unverified``: what could not be checked (no published hash, no exact size, ...). ``state``
    sums it up: ``verified`` (content hash matched), ``checked`` (everything checkable passed, the
    rest is listed as unverified), ``FAIL``, ``missing`` or ``optional, absent``.
    """

    spec: FileSpec
    path: Path | None
    ok: bool
    size: int | None
    problem: str = ""
    checked: tuple[str, ...] = ()
    unverified: tuple[str, ...] = ()

    @property
    def state(self) -> str:
        if self.path is None:
            return "optional, absent" if self.ok else "missing"
        if not self.ok:
            return "FAIL"
        return "verified" if any(c.startswith(("sha256", "git blob")) for c in self.checked) else "checked"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def git_blob_sha1(path: Path) -> str:
    """The id git gives the file's content (``sha1("blob <size>\\0" + bytes)``), as ``git ls-tree`` shows it."""
    h = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _check_file(model: ModelSpec, spec: FileSpec, path: Path, check_hashes: bool) -> FileStatus:
    from livestyle.models.filecheck import STRUCTURE_ROLES, check_structure

    size = _folder_size(path) if spec.is_folder else path.stat().st_size
    checked: list[str] = []
    unverified: list[str] = []

    def fail(problem: str) -> FileStatus:
        return FileStatus(spec, path, False, size, problem, tuple(checked), tuple(unverified))

    if spec.is_folder:
        unverified.append("folder contents (no sizes or hashes published per file)")
    elif spec.size is not None:
        if size != spec.size:
            return fail(f"size {size} bytes, expected {spec.size} (truncated or wrong file)")
        checked.append(f"size {size} bytes")
    else:
        unverified.append("exact size (registry has none)")
    try:
        checked += check_structure(spec.role, path, model)
    except WeightsError as exc:
        return fail(str(exc))
    if spec.role not in STRUCTURE_ROLES:
        unverified.append(f"tensor names and shapes (no check for role {spec.role!r})")
    if spec.is_folder:
        return FileStatus(spec, path, True, size, "", tuple(checked), tuple(unverified))
    if spec.sha256 and check_hashes:
        digest = _sha256(path)
        if digest != spec.sha256:
            return fail(f"sha256 {digest[:12]}..., expected {spec.sha256[:12]}...")
        checked.append("sha256 matches the registry")
    elif spec.git_sha1 and check_hashes:
        blob = git_blob_sha1(path)
        if blob != spec.git_sha1:
            where = f"; get the pinned file from {spec.url}" if spec.url else ""
            return fail(f"git blob {blob[:12]} is not the pinned upstream file {spec.git_sha1[:12]}{where}")
        checked.append(f"git blob {blob[:12]} = the pinned upstream file")
    else:
        unverified.append("content hash (skipped: --no-hash)" if (spec.sha256 or spec.git_sha1) else "content hash (none published)")
    return FileStatus(spec, path, True, size, "", tuple(checked), tuple(unverified))


def verify(name: str | ModelSpec, *, weights_dir: str | Path | None = None, check_hashes: bool = True) -> list[FileStatus]:
    """Check each file of ``name``: present; exact size, SHA-256 or git blob id where the registry
    knows them; format header, tensor names and shapes against the model config. Each result lists
    what was checked and what stayed unverified; nothing is reported as plainly "ok"."""
    model = name if isinstance(name, ModelSpec) else get_model(name)
    results: list[FileStatus] = []
    for role, spec in model.files.items():
        path, _ = locate(model, role, weights_dir=weights_dir)
        if path is None:
            problem = "optional, not downloaded" if spec.optional else "missing"
            results.append(FileStatus(spec, None, spec.optional, None, problem))
            continue
        results.append(_check_file(model, spec, path, check_hashes))
    return results
