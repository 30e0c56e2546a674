"""Terminal hotkeys through a real pseudo-terminal; system-wide hotkeys through pynput on Xvfb."""

from __future__ import annotations

import importlib.util
import os
import pty
import shutil
import subprocess
import sys
import termios
from collections.abc import Iterator

import pytest
from host_helpers import start_xvfb, wait_for

from livestyle.control.controller import Controller, Params
from livestyle.control.hotkeys import GlobalHotkeys, TerminalHotkeys
from livestyle.control.presets import Preset, PresetBook
from livestyle.errors import ConfigError
from livestyle.engine.commands import Reset, SetBypass, Stop

BOOK = PresetBook([Preset("ink", "an ink drawing"), Preset("neon", "neon city"), Preset("clay", "claymation")])


def controller() -> tuple[Controller, list[object]]:
    sent: list[object] = []
    return Controller(BOOK, sent.append, Params("start", 0.5, 2, 1)), sent


@pytest.fixture
def terminal() -> Iterator[tuple[int, object]]:
    master, slave = pty.openpty()
    stream = os.fdopen(slave, "rb", buffering=0)
    try:
        yield master, stream
    finally:
        stream.close()
        os.close(master)


def test_keys_typed_into_a_pty_drive_the_controller(terminal: tuple[int, object]) -> None:
    master, stream = terminal
    original = termios.tcgetattr(stream.fileno())  # type: ignore[attr-defined]
    assert original[3] & termios.ICANON and original[3] & termios.ECHO
    ctl, sent = controller()
    errors: list[str] = []
    keys = TerminalHotkeys(ctl, stream=stream, on_error=errors.append)  # type: ignore[arg-type]
    assert keys.start()
    mode = termios.tcgetattr(stream.fileno())  # type: ignore[attr-defined]
    assert not mode[3] & termios.ICANON and not mode[3] & termios.ECHO
    assert mode[3] & termios.ISIG  # Ctrl-C still interrupts

    os.write(master, b"2")
    wait_for(lambda: ctl.params.preset == "neon")
    os.write(master, b"nN")  # no Enter needed; upper case works
    wait_for(lambda: ctl.params.preset == "ink")  # neon -> clay -> ink (wraps)
    os.write(master, b"p")
    wait_for(lambda: ctl.params.preset == "clay")
    os.write(master, b"bxr")  # 'x' is unbound and ignored
    wait_for(lambda: Reset() in sent)
    assert ctl.params.bypass and SetBypass(True) in sent
    os.write(master, b"9")
    wait_for(lambda: bool(errors))
    assert errors == ["no preset number 9 (3 loaded); valid: 1:ink, 2:neon, 3:clay"]
    os.write(master, b"q")
    wait_for(lambda: sent[-1] == Stop())
    assert ctl.params.stopped

    keys.stop()
    assert not keys.running
    assert termios.tcgetattr(stream.fileno()) == original  # type: ignore[attr-defined]


def test_end_of_input_ends_the_reader_and_restores(terminal: tuple[int, object]) -> None:
    master, stream = terminal
    original = termios.tcgetattr(stream.fileno())  # type: ignore[attr-defined]
    ctl, _ = controller()
    keys = TerminalHotkeys(ctl, stream=stream)  # type: ignore[arg-type]
    keys.start()
    os.write(master, b"\x04")  # Ctrl-D in non-canonical mode is just a byte; close the pty instead
    os.close(os.dup(master))
    keys.stop()
    assert termios.tcgetattr(stream.fileno()) == original  # type: ignore[attr-defined]


def test_not_a_tty_means_no_hotkeys(tmp_path: object) -> None:
    ctl, _ = controller()
    read, write = os.pipe()
    with os.fdopen(read, "rb", buffering=0) as pipe_stream:
        keys = TerminalHotkeys(ctl, stream=pipe_stream)  # type: ignore[arg-type]
        assert not keys.available()
        assert keys.start() is False
        keys.stop()
    os.close(write)


def test_missing_pynput_gives_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynput", None)
    ctl, _ = controller()
    with pytest.raises(ConfigError) as info:
        GlobalHotkeys(ctl).start()
    assert str(info.value).startswith("system-wide hotkeys need pynput and a desktop session: pip install 'livestyle[hotkeys]'")


def test_no_display_gives_a_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    if importlib.util.find_spec("pynput") is None:
        pytest.skip("needs the hotkeys extra: pip install 'livestyle[hotkeys]'")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    for name in [m for m in sys.modules if m.startswith("pynput")]:
        monkeypatch.delitem(sys.modules, name)
    ctl, _ = controller()
    with pytest.raises(ConfigError) as info:
        GlobalHotkeys(ctl).start()
    assert "(import failed: this platform is not supported" in str(info.value)
    assert "\n" not in str(info.value)


@pytest.fixture
def xvfb_display() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    if not (shutil.which("Xvfb") and shutil.which("xdotool")):
        pytest.skip("needs Xvfb and xdotool (apt-get install xvfb xdotool)")
    if importlib.util.find_spec("pynput") is None:
        pytest.skip("needs the hotkeys extra: pip install 'livestyle[hotkeys]'")
    display, proc = start_xvfb("-screen", "0", "320x240x24")
    try:
        yield display, proc
    finally:
        proc.terminate()
        proc.wait(5)


# pynput's X record thread only notices stop() at the next recorded event, which Xvfb never
# delivers; it ends (a daemon thread, raising) when Xvfb goes away, which this test waits for.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_global_hotkeys_on_a_real_x_server(
    xvfb_display: tuple[str, subprocess.Popen[bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    display, xvfb = xvfb_display
    monkeypatch.setenv("DISPLAY", display)
    ctl, sent = controller()
    hotkeys = GlobalHotkeys(ctl)
    with hotkeys:
        listener = hotkeys._listener
        env = {**os.environ, "DISPLAY": display}
        subprocess.run(["xdotool", "key", "ctrl+alt+2"], env=env, check=True)
        wait_for(lambda: ctl.params.preset == "neon")
        subprocess.run(["xdotool", "key", "ctrl+alt+b"], env=env, check=True)
        wait_for(lambda: ctl.params.bypass)
    assert sent[-1] == SetBypass(True)
    xvfb.terminate()
    xvfb.wait(5)
    listener.join(5)
    assert not listener.is_alive()
