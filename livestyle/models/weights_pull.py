"""``livestyle weights pull``: fetching a registry model's files that are not on disk yet.

:func:`pull` downloads Hub files through ``huggingface_hub`` (progress bars, resumable, the standard
cache, or ``DIR/<model>/`` with a weights folder) and writes generated files locally (``generate:``
in the registry, the ``tiny`` test model). It fails fast without network and checks free disk
space first; every Hub or network failure is one :class:`WeightsError` line saying what to do.
Where a file is looked for is :mod:`livestyle.models.weights`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from livestyle.errors import WeightsError
from livestyle.models.weights import (
    WEIGHTS_DIR_ENV,
    FileSpec,
    ModelSpec,
    file_present,
    generated_dir,
    get_model,
    human_size,
    local_weights_dir,
    locate,
)

__all__ = ["pull"]


def _offline() -> bool:
    from huggingface_hub import constants

    value = os.environ.get("HF_HUB_OFFLINE", "")
    return bool(constants.HF_HUB_OFFLINE) or value.upper() in {"1", "ON", "YES", "TRUE"}


def _offline_message(model: ModelSpec, specs: Sequence[FileSpec], why: str) -> str:
    """One line naming every file still to fetch (not only the first) and where each goes."""
    files = ", ".join(f"{s.repo}/{s.path}" for s in specs)
    places = ", ".join(f"DIR/{model.name}/{s.path}" for s in specs)
    them, it = ("them", "them") if len(specs) > 1 else ("it", "it")
    return (
        f"cannot download {files} for {model.name!r}: {why}; "
        f"download {them} elsewhere and put {it} at {places}, then pass --weights-dir DIR "
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


def _hub_error(model: ModelSpec, spec: FileSpec, exc: Exception, pending: Sequence[FileSpec] = ()) -> WeightsError:
    """One ``WeightsError`` line for a failed hub call on ``spec``; an offline failure names every
    file of ``pending`` (the ones still to fetch, ``spec`` first) rather than ``spec`` alone."""
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
        return WeightsError(_offline_message(model, pending or [spec], "no connection to the Hugging Face Hub"))
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
        return WeightsError(_offline_message(model, pending or [spec], "no connection to the Hugging Face Hub"))
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


def _testing_writer(module: str, function: str) -> Callable[[Path], None]:
    """``livestyle.models.testing.<module>.<function>(path)``, imported when a file is written."""
    def write(path: Path) -> None:
        from livestyle.models.testing import dit, stack

        getattr({"dit": dit, "stack": stack}[module], function)(path)

    return write


def _write_selfie_file(path: Path) -> None:
    from livestyle.models.selfie_weights import write_selfie_file

    write_selfie_file(path)


WRITERS: dict[str, Callable[[Path], None]] = {
    "livestyle.models.testing.dit:write_sdv2_checkpoint": _testing_writer("dit", "write_sdv2_checkpoint"),
    "livestyle.models.testing.stack:write_wan_vae_pth": _testing_writer("stack", "write_wan_vae_pth"),
    "livestyle.models.testing.stack:write_umt5_wan_pth": _testing_writer("stack", "write_umt5_wan_pth"),
    "livestyle.models.testing.stack:write_tokenizer": _testing_writer("stack", "write_tokenizer"),
    "livestyle.models.testing.stack:write_taehv": _testing_writer("stack", "write_taehv"),
    "livestyle.models.selfie_weights:write_selfie_file": _write_selfie_file,
}
"""The files a catalogue's ``generate:`` may name (``module:function``), each written by its
function; a fixed table, so no catalogue entry can make ``weights pull`` import arbitrary code."""


def _generate(model: ModelSpec, spec: FileSpec, dest: Path) -> Path:
    writer = WRITERS.get(spec.generate or "")
    if writer is None:
        raise WeightsError(f"{model.name}: generator {spec.generate!r} for {spec.role} is not one of "
                           f"{', '.join(sorted(WRITERS))}; fix configs/models/{model.name}.yaml") from None
    dest.parent.mkdir(parents=True, exist_ok=True)
    # written under a temporary name with the same suffix (writers pick the format from it), then
    # renamed: a full disk or a crash mid-way never leaves a truncated file under the final name
    tmp = dest.with_name(f".{dest.stem}.partial{dest.suffix}")
    try:
        writer(tmp)
        os.replace(tmp, dest)
    except (OSError, RuntimeError) as exc:  # torch.save reports a full disk as RuntimeError
        with contextlib.suppress(OSError):
            tmp.unlink()
        reason = "no space left on the disk" if _no_space(exc, dest.parent) else str(exc).splitlines()[0][:200]
        raise WeightsError(f"{model.name}: could not write {dest} ({reason}); free some space or set "
                           "LIVESTYLE_CACHE_DIR to a disk with room, then run again") from None
    return dest


def _no_space(exc: BaseException, folder: Path) -> bool:
    """Whether a failed write into ``folder`` was a full disk: ENOSPC in ``exc`` or what caused it,
    or under 64 MiB free after it (torch.save reports a full disk as "unexpected pos 64 vs 0")."""
    with contextlib.suppress(OSError):
        if shutil.disk_usage(folder).free < 64 * 2**20:
            return True
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno == errno.ENOSPC:
            return True
        if "No space left on device" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


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
    root = local_weights_dir(weights_dir)
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
        raise WeightsError(_offline_message(model, hub, "HF_HUB_OFFLINE is set"))
    dest = _target_dir(model, root) or _hub_cache_dir()
    _check_space(model, hub, dest, {s.role: s.planned_size for s in hub})  # what the registry knows, before any network
    sizes: dict[str, int | None] = {}
    for i, spec in enumerate(hub):  # one HEAD per file, without retries: fails fast with no network, gives exact sizes
        try:
            size = _remote_size(spec)
        except Exception as exc:  # noqa: BLE001 - every hub/network failure becomes one WeightsError
            raise _hub_error(model, spec, exc, hub[i:]) from None
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
    for i, spec in enumerate(hub):
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
            raise _hub_error(model, spec, exc, hub[i:]) from None
        if not file_present(path, spec):
            raise WeightsError(f"{spec.repo}/{spec.path} downloaded but {path} is empty; check configs/models/{model.name}.yaml")
        done[spec.role] = path
        if on_file:
            on_file(spec, path, "downloaded")
