"""Path checks shared by sources, sinks and the files livestyle writes: a path from a user is checked
before it reaches the file system or an encoder, and no output may resolve to an input.

* :func:`check_path`: a NUL byte, a name over ``NAME_MAX`` (255) bytes or a path over
  ``PATH_MAX`` (4096) bytes is a one-line error, never ``OSError: [Errno 36]`` from deep inside
  ``os.stat`` or FFmpeg.
* :func:`check_apart`: an output that is an input (the same path, a symlink to it, a hard link, the
  same file through a symlinked folder) or another output is refused before anything is opened;
  otherwise the recording would overwrite the file it reads.
* :func:`write_atomically`: a file is written to a temporary name in its folder and renamed, so a
  full disk or a crash never leaves a truncated file under the final name.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

__all__ = ["NAME_MAX", "PATH_MAX", "check_apart", "check_path", "same_file", "write_atomically"]

NAME_MAX = 255
"""Bytes in one path component (Linux, macOS and Windows file systems alike)."""
PATH_MAX = 4096
"""Bytes in a whole path (Linux)."""


def check_path(path: str | os.PathLike[str], error: type[Exception], what: str = "path") -> None:
    """Raise ``error`` naming what is wrong when ``path`` cannot be a file name on this system."""
    text = os.fspath(path)
    if "\0" in text:
        raise error(f"{what} {text!r} contains a NUL byte")
    try:
        raw = os.fsencode(text)
    except UnicodeEncodeError as exc:
        raise error(f"{what} {text!r} cannot be encoded for the file system: {exc.reason}") from None
    if len(raw) > PATH_MAX - 1:
        raise error(f"{what} is {len(raw)} bytes long: paths are at most {PATH_MAX - 1} bytes")
    for part in raw.split(b"/"):
        if len(part) > NAME_MAX:
            shown = os.fsdecode(part[:40]) + "..."
            raise error(f"{what} has a name of {len(part)} bytes ({shown}): names are at most {NAME_MAX} bytes")


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """True when ``a`` and ``b`` name the same file: the same resolved path (symlinks, ``..`` and
    symlinked folders followed; a file that does not exist yet included) or, both existing, the
    same inode (a hard link)."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): the resolved paths decided
        return False


def check_apart(outputs: Iterable[tuple[str, str]], inputs: Iterable[tuple[str, str]],
                error: type[Exception]) -> None:
    """Raise ``error`` when an output path is an input path or another output.

    Args:
        outputs, inputs: ``(what, path)`` pairs, ``what`` naming the option in the message
            (``"--sink out.mp4"``).
    """
    ins = list(inputs)
    seen: list[tuple[str, str]] = []
    for what, path in outputs:
        for in_what, in_path in ins:
            if same_file(path, in_path):
                raise error(f"{what} is the same file as {in_what}: the recording would overwrite its input; "
                            "write to another path")
        for out_what, out_path in seen:
            if same_file(path, out_path):
                raise error(f"{what} is the same file as {out_what}: give each recording its own path")
        seen.append((what, path))


def write_atomically(path: str | os.PathLike[str], write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` for a temporary file next to ``path``, then rename it to ``path``.

    When ``write`` raises (a full disk, a crash mid-way), the temporary file is removed and
    ``path`` is left as it was; the exception propagates."""
    target = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name[:64]}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
