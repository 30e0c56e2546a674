"""What tests borrow from the machine they run on: free loopback ports, a private X display, a
full disk (a small tmpfs, filled), and polling for a condition with a deadline.

Import as a sibling module (``from host_helpers import free_udp_port``), like ``host_canary``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 that was free a moment ago (bound to port 0, read back, released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_tcp_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago: nothing listens on it once this returns,
    so a connection to it is refused until a test starts a listener there."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_xvfb(*args: str) -> tuple[str, subprocess.Popen[bytes]]:
    """Xvfb on a free display number (it picks one and reports it once it accepts clients).

    ``args`` go to Xvfb after ``-displayfd N -nolisten tcp`` (e.g. ``"-screen", "0", "320x240x24"``).
    Returns the display (``":N"``) and the process; the caller terminates it. Needs ``Xvfb`` on PATH.
    """
    read, write = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-nolisten", "tcp", *args],
                            pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        number = pipe.readline().strip()
    if not number:
        proc.kill()
        raise AssertionError(f"Xvfb did not start (exit code {proc.wait(5)})")
    return f":{number.decode()}", proc


def wait_for(check: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Call ``check`` every 20 ms until it returns something truthy and return that;
    an AssertionError naming ``what`` once ``timeout`` seconds have passed without."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def can_mount_tmpfs() -> bool:
    """Whether this process may mount a tmpfs (root, and a kernel/container that allows it)."""
    return os.geteuid() == 0 and subprocess.run(["unshare", "-m", "mount", "-t", "tmpfs", "tmpfs", "/mnt"],
                                                capture_output=True, check=False).returncode == 0


@contextlib.contextmanager
def full_tmpfs(mount: Path, size: str = "64k") -> Iterator[Path]:
    """A real full disk at ``mount``: a ``size`` tmpfs mounted there (root only; see
    :func:`can_mount_tmpfs`) with every block taken by a ``fill`` file, so any write that needs
    a new block fails with ENOSPC. Unmounted at the end."""
    mount.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], check=True)
    try:
        with contextlib.suppress(OSError), open(mount / "fill", "wb", buffering=0) as fill:
            while True:
                fill.write(b"\0" * 4096)
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
