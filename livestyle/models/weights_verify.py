"""``livestyle weights verify``: checking a registry model's files on disk.

:func:`verify` checks what it can of each file — the exact size and SHA-256 or git blob id where
the registry knows them, the file's format header, its tensor names and shapes against the model
config (:mod:`livestyle.models.filecheck`) — and lists what it could not check as unverified.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from livestyle.errors import WeightsError
from livestyle.models.weights import FileSpec, ModelSpec, get_model, locate

__all__ = ["FileStatus", "git_blob_sha1", "verify"]


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
        try:
            results.append(_check_file(model, spec, path, check_hashes))
        except OSError as exc:  # unreadable (permissions, a dangling link, I/O error): a result, not a traceback
            why = exc.strerror or type(exc).__name__
            results.append(FileStatus(spec, path, False, None, f"cannot be read ({why.lower()}): fix its permissions "
                                      f"or pull it again (livestyle weights pull {model.name})"))
    return results
