"""Ctrl-C, SIGTERM and SIGHUP during a run: a clean stop first, the previous handlers after.

:func:`install_stop_handlers` is what :meth:`livestyle.engine.runner.Runner.run` installs while
it streams in the main thread. The exit code a signal leads to is the CLI's business
(``livestyle/cli/signals.py``, docs/exit-codes.md).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType

__all__ = ["install_stop_handlers"]


def install_stop_handlers(stop: Callable[[int], None], hurry: Callable[[], None]) -> Callable[[], None]:
    """Route SIGINT, SIGTERM and SIGHUP to ``stop(signum)``; return the function that restores the
    previous handlers.

    The first signal calls ``stop``; a second calls ``hurry`` and restores the previous handlers, so
    a third one aborts. SIGHUP (the terminal closed) finishes the recordings like SIGTERM does.
    Outside the main thread nothing is installed and the restore function does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        return _noop
    count = 0
    sigs = [signal.SIGINT, signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
    previous = {s: signal.getsignal(s) for s in sigs}

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal count
        count += 1
        if count == 1:
            stop(signum)
        else:
            hurry()
            for sig, prev in previous.items():
                signal.signal(sig, prev)

    for sig in previous:
        signal.signal(sig, handler)

    def restore() -> None:
        for sig, prev in previous.items():
            if signal.getsignal(sig) is handler:
                signal.signal(sig, prev)

    return restore


def _noop() -> None:
    return None
