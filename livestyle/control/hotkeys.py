"""Hotkeys: single keys in the terminal that runs livestyle, and optional system-wide combinations.

Terminal (when stdin is a TTY): ``1``-``9`` select presets, ``n``/``p`` next/previous preset,
``b`` toggles bypass, ``r`` resets the generator's temporal state, ``q`` stops the stream. A reader
thread switches the terminal to unbuffered, no-echo input (Ctrl-C still interrupts) and restores
it when stopped.

System-wide (``pip install 'livestyle[hotkeys]'``, pynput): ``<ctrl>+<alt>+1`` .. ``9``,
``<ctrl>+<alt>+n``/``p``/``b``/``r`` by default, for when OBS or a game has focus. On Linux this
needs an X display (Wayland sessions block global key capture; use the OBS script instead).

Both feed :meth:`Controller.apply`, like every other command source.
"""

from __future__ import annotations

import logging
import os
import select
import sys
import threading
from collections.abc import Callable, Mapping
from typing import IO, Any

from livestyle.control.controller import Controller
from livestyle.errors import ConfigError, ControlError
from livestyle.engine.commands import (
    Command,
    NextPreset,
    PreviousPreset,
    Reset,
    SelectPreset,
    SetBypass,
    Stop,
)

__all__ = [
    "TerminalHotkeys",
    "GlobalHotkeys",
    "TERMINAL_KEYS",
    "GLOBAL_BINDINGS",
    "TERMINAL_HELP",
    "is_foreground",
]

log = logging.getLogger(__name__)

TERMINAL_KEYS: dict[str, Command] = {
    **{str(n): SelectPreset(n - 1) for n in range(1, 10)},
    "n": NextPreset(),
    "p": PreviousPreset(),
    "b": SetBypass(None),
    "r": Reset(),
    "q": Stop(),
}

TERMINAL_HELP = "keys: 1-9 preset, n/p next/previous, b bypass, r reset, q quit"

GLOBAL_BINDINGS: dict[str, Command] = {
    **{f"<ctrl>+<alt>+{n}": SelectPreset(n - 1) for n in range(1, 10)},
    "<ctrl>+<alt>+n": NextPreset(),
    "<ctrl>+<alt>+p": PreviousPreset(),
    "<ctrl>+<alt>+b": SetBypass(None),
    "<ctrl>+<alt>+r": Reset(),
}

ErrorFn = Callable[[str], None]


def is_foreground(fd: int) -> bool:
    """Whether this process's group is the foreground group of terminal ``fd``. A terminal that is
    not our controlling terminal has no job control over us, so it counts as foreground."""
    try:
        return os.tcgetpgrp(fd) == os.getpgrp()
    except OSError:
        return True


def _warn(message: str) -> None:
    log.warning("%s", message)


class TerminalHotkeys:
    """Read single key presses from a TTY on a thread and apply their commands.

    ``stream`` is the terminal to read (default stdin); ``on_error`` gets one-line messages for
    keys whose command fails (e.g. ``9`` with six presets), ``on_notice`` what an applied key did
    beyond the status line (:meth:`Controller.notice`), both by default logged as warnings.
    """

    def __init__(
        self,
        controller: Controller,
        *,
        stream: IO[Any] | None = None,
        keys: Mapping[str, Command] = TERMINAL_KEYS,
        on_error: ErrorFn = _warn,
        on_notice: ErrorFn = _warn,
    ) -> None:
        self._controller = controller
        self._stream = stream if stream is not None else sys.stdin
        self._keys = dict(keys)
        self._on_error = on_error
        self._on_notice = on_notice
        self._thread: threading.Thread | None = None
        self._wake: tuple[int, int] | None = None
        self._saved: list[Any] | None = None
        self._fd = -1

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def available(self) -> bool:
        """True when the stream is a TTY on a POSIX system (termios exists) and this process is in
        the terminal's foreground: a job started with ``&`` must not touch the terminal (changing
        its mode from the background stops the job with "Stopped (tty output)")."""
        try:
            import termios  # noqa: F401
        except ImportError:
            return False
        try:
            return self._stream.isatty() and is_foreground(self._stream.fileno())
        except (AttributeError, ValueError):
            return False

    def start(self) -> bool:
        """Switch the terminal to key-at-a-time input and start reading; False when not a TTY."""
        if self._thread is not None:
            return True
        if not self.available():
            log.debug("stdin is not a terminal: terminal hotkeys are off")
            return False
        import termios

        self._fd = self._stream.fileno()
        self._saved = termios.tcgetattr(self._fd)
        mode = termios.tcgetattr(self._fd)
        mode[3] &= ~(termios.ICANON | termios.ECHO)  # lflags: no line buffering, no echo; ISIG stays
        mode[6] = list(mode[6])
        mode[6][termios.VMIN] = 1
        mode[6][termios.VTIME] = 0
        termios.tcsetattr(self._fd, termios.TCSANOW, mode)
        self._wake = os.pipe()
        self._thread = threading.Thread(target=self._run, name="livestyle-keys", daemon=True)
        self._thread.start()
        return True

    def stop(self, timeout: float = 2.0) -> None:
        """Stop reading and restore the terminal exactly as it was."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        if self._wake is not None:
            os.write(self._wake[1], b"x")
        thread.join(timeout)
        self._restore()
        if self._wake is not None:
            for fd in self._wake:
                os.close(fd)
            self._wake = None

    def __enter__(self) -> TerminalHotkeys:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _restore(self) -> None:
        saved, self._saved = self._saved, None
        if saved is None:
            return
        import termios

        try:
            termios.tcsetattr(self._fd, termios.TCSADRAIN, saved)
        except termios.error as exc:  # the terminal went away (closed pty); nothing left to restore
            log.debug("could not restore the terminal: %s", exc)

    def _run(self) -> None:
        assert self._wake is not None
        wake = self._wake[0]
        try:
            while True:
                ready, _, _ = select.select([self._fd, wake], [], [])
                if wake in ready:
                    return
                try:
                    data = os.read(self._fd, 64)
                except OSError:
                    return
                if not data:  # end of input
                    return
                for char in data.decode("utf-8", "ignore"):
                    self.press(char)
        finally:
            self._restore()

    def press(self, key: str) -> bool:
        """Apply the command bound to ``key`` (case-insensitive); False when the key is unbound."""
        command = self._keys.get(key.lower())
        if command is None:
            return False
        try:
            self._controller.apply(command)
        except ControlError as exc:
            self._on_error(str(exc))
            return True
        notice = self._controller.notice(command)  # `r` says what it did; a look on passthrough that it does nothing
        if notice:
            self._on_notice(notice)
        return True


class GlobalHotkeys:
    """System-wide key combinations through pynput (an optional extra).

    ``bindings`` maps pynput hotkey strings (``"<ctrl>+<alt>+1"``) to commands. :meth:`start`
    raises :class:`~livestyle.errors.ConfigError` with the install hint when pynput is missing or
    cannot reach the desktop (no X display).
    """

    def __init__(
        self,
        controller: Controller,
        bindings: Mapping[str, Command] = GLOBAL_BINDINGS,
        *,
        on_error: ErrorFn = _warn,
    ) -> None:
        self._controller = controller
        self._bindings = dict(bindings)
        self._on_error = on_error
        self._listener: Any = None

    def start(self) -> None:
        if self._listener is not None:
            return
        try:
            from pynput import keyboard
        except ImportError as exc:
            raise ConfigError(
                "system-wide hotkeys need pynput and a desktop session: pip install 'livestyle[hotkeys]' "
                f"(import failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
            ) from None
        try:
            hotkeys = {combo: self._callback(command) for combo, command in self._bindings.items()}
            listener = keyboard.GlobalHotKeys(hotkeys)
        except ValueError as exc:
            raise ConfigError(f"bad hotkey binding: {exc}") from None
        listener.start()
        listener.wait()
        self._listener = listener

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.stop()
            # On some X servers pynput's record thread only notices at the next key event;
            # it is a daemon thread and no longer applies commands.
            listener.join(1.0)

    def __enter__(self) -> GlobalHotkeys:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _callback(self, command: Command) -> Callable[[], None]:
        def fire() -> None:
            # Runs on pynput's listener thread: an exception here would end that thread.
            if self._listener is None:  # stopped; pynput may still deliver a late event
                return
            try:
                self._controller.apply(command)
            except ControlError as exc:
                self._on_error(str(exc))
            except Exception:
                log.exception("hotkey command %r failed", command)

        return fire
