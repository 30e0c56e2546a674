"""Run test code inside a private network namespace (only ``lo``), so nothing leaves the machine.

Network namespaces belong to threads: :class:`NetnsRunner` owns one worker thread that calls
``unshare(CLONE_NEWNET)``, brings ``lo`` up and adds ``127.0.0.2/8`` (aioice skips 127.0.0.1 when
it gathers candidates). Everything that worker starts — server threads, aiortc's threads,
Chromium — lives in that namespace; the rest of the pytest process does not.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

__all__ = ["NetnsRunner", "netns_unavailable_reason"]

CLONE_NEWNET = 0x40000000
T = TypeVar("T")


def _enter() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare(CLONE_NEWNET) failed: {os.strerror(err)}")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    subprocess.run(["ip", "addr", "add", "127.0.0.2/8", "dev", "lo"], check=True)


def netns_unavailable_reason() -> str | None:
    """Why a network namespace cannot be made here (None: it can)."""
    if os.geteuid() != 0:
        return "needs root for unshare(CLONE_NEWNET)"
    if subprocess.run(["sh", "-c", "command -v ip"], capture_output=True).returncode != 0:
        return "needs the 'ip' command (apt-get install iproute2)"
    try:
        NetnsRunner().close()
    except OSError as exc:
        return str(exc)
    return None


class NetnsRunner:
    """A single worker thread inside a fresh network namespace."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, initializer=_enter, thread_name_prefix="netns")
        self.run(lambda: None)  # enter now; raises OSError if unshare fails

    def run(self, fn: Callable[..., T], *args: Any, timeout: float = 120.0) -> T:
        """``fn(*args)`` on the namespace's thread; its exceptions propagate."""
        try:
            return self._pool.submit(fn, *args).result(timeout)
        except Exception as exc:
            if "BrokenThreadPool" in type(exc).__name__ and exc.__cause__ is not None:
                raise exc.__cause__ from None
            raise

    def close(self) -> None:
        self._pool.shutdown(wait=True)
