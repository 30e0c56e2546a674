"""Which signal ended the process, for honest exit codes; SIGHUP handled like SIGTERM.

The CLI's convention (``README``/``docs/exit-codes.md``): a run stopped by a signal exits with
``128 + signal number`` once the recordings are finalized — 130 for Ctrl-C (SIGINT), 143 for
SIGTERM, 129 for SIGHUP (the terminal closed) — like a shell reports a process the signal killed,
so supervisors and scripts see *why* it stopped.

:class:`SignalWatch` records each SIGINT/SIGTERM/SIGHUP that reaches the process through
:func:`signal.set_wakeup_fd`, which sees every signal that has a Python handler, whoever installed
it (the runner installs its own clean-stop handlers for SIGINT and SIGTERM while it streams).
Outside a run, SIGTERM and SIGHUP raise :class:`Terminated` so start-up unwinds through
``finally`` blocks like Ctrl-C's ``KeyboardInterrupt`` does; during a run, SIGHUP calls the
runner's SIGTERM handler, so closing the terminal finalizes the recordings.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from types import FrameType, TracebackType
from typing import Any

__all__ = ["STOP_SIGNALS", "SignalWatch", "Terminated", "signal_exit_code"]

STOP_SIGNALS: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Terminated(BaseException):  # noqa: N818 - named like KeyboardInterrupt, its sibling
    """SIGTERM or SIGHUP outside a run (during start-up or model load); ``signum`` says which."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def signal_exit_code(signum: int) -> int:
    """``128 + signum``: 130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP."""
    return 128 + int(signum)


class SignalWatch:
    """Context manager (main thread only; elsewhere it records nothing) described in the module docstring."""

    def __init__(self) -> None:
        self._active = False
        self._read_fd: int | None = None
        self._write_fd: int | None = None
        self._old_wakeup = -1
        self._previous: dict[int, Any] = {}
        self._seen: list[int] = []
        self._terminate_handler = self._terminate

    def __enter__(self) -> SignalWatch:
        if threading.current_thread() is not threading.main_thread():
            return self
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        os.set_blocking(self._write_fd, False)
        self._old_wakeup = signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
        for sig in (signal.SIGTERM, signal.SIGHUP):
            self._previous[sig] = signal.getsignal(sig)
        signal.signal(signal.SIGTERM, self._terminate_handler)
        signal.signal(signal.SIGHUP, self._hangup)
        self._active = True
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if not self._active:
            return
        self.received()  # drain what is pending before the pipe goes
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        signal.set_wakeup_fd(self._old_wakeup)
        for fd in (self._read_fd, self._write_fd):
            if fd is not None:
                os.close(fd)
        self._read_fd = self._write_fd = None
        self._active = False

    def received(self) -> list[int]:
        """Stop signals that reached the process so far, in order (SIGINT, SIGTERM, SIGHUP only)."""
        if self._read_fd is not None:
            with contextlib.suppress(BlockingIOError):
                while data := os.read(self._read_fd, 512):
                    self._seen.extend(b for b in data if b in STOP_SIGNALS)
        return list(self._seen)

    def first(self) -> int | None:
        """The first stop signal received, or None."""
        seen = self.received()
        return seen[0] if seen else None

    def _terminate(self, signum: int, frame: FrameType | None) -> None:
        raise Terminated(signum)

    def _hangup(self, signum: int, frame: FrameType | None) -> None:
        handler = signal.getsignal(signal.SIGTERM)
        if handler is self._terminate_handler or not callable(handler):
            raise Terminated(signum)
        handler(signal.SIGTERM, frame)  # a run is in charge of SIGTERM: stop it cleanly
