"""The preview window (issue 27, point 2): a real Tk window on a real X server (Xvfb), in its own
process that never loads PyAV (in one process with PyAV, OpenCV's Qt hung inside PyAV's bundled
libxcb: 100% CPU, deaf to SIGINT and SIGTERM). Checked by a screenshot of the screen."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from host_helpers import start_xvfb, wait_for

pytestmark = pytest.mark.skipif(shutil.which("Xvfb") is None, reason="needs Xvfb (apt-get install xvfb)")

SIZE = (320, 240)


@pytest.fixture()
def display() -> Iterator[str]:
    name, proc = start_xvfb("-screen", "0", "640x480x24")
    try:
        yield name
    finally:
        proc.terminate()
        proc.wait(10)


def _run(display: str, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "DISPLAY": display, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "livestyle", "run", "--source", "pattern", "--sink", "window",
                             "--size", f"{SIZE[0]}x{SIZE[1]}", "--model", "passthrough", "--no-keys", "-q", *extra],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=env)


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(c) for c in (task / "children").read_text().split()]
    return out


def _window_pid(proc: subprocess.Popen[str]) -> int:
    def find() -> int | None:
        for child in _children(proc.pid):
            try:
                if "window_app.py" in Path(f"/proc/{child}/cmdline").read_text():
                    return child
            except OSError:
                pass
        return None

    return int(wait_for(find, timeout=30, what="the window process"))


def _screen(display: str) -> np.ndarray:
    from PIL import ImageGrab

    return np.asarray(ImageGrab.grab(xdisplay=display).convert("RGB"))


def _shows_the_pattern(display: str) -> bool:
    """The colour bars of the test pattern on screen, where the window is (top left on a bare X)."""
    from livestyle.ingest.pattern import PatternSource

    source = PatternSource(size=SIZE, fps=30.0)
    source.open()
    expected = next(iter(source.frames())).image
    source.close()
    shot = _screen(display)
    ys = found = np.nonzero((np.abs(shot[:, :, :].astype(int) - expected[220, 20]).sum(axis=2) < 30).any(axis=1))[0]
    if not len(found):
        return False
    row = shot[ys[-1]]  # a row of bars below the moving square
    xs = np.nonzero((np.abs(row.astype(int) - expected[220, 20]).sum(axis=1) < 30))[0]
    left = int(xs[0]) - 20 + 1 if len(xs) else 0
    if left < 0 or left + SIZE[0] > shot.shape[1]:
        return False
    bars = [tuple(expected[220, x]) for x in range(20, SIZE[0], 40)]
    seen = [tuple(row[left + x]) for x in range(20, SIZE[0], 40)]
    return all(sum(abs(int(a) - int(b)) for a, b in zip(e, s)) < 30 for e, s in zip(bars, seen))


def _stop(proc: subprocess.Popen[str], sig: int) -> float:
    t0 = time.monotonic()
    proc.send_signal(sig)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"livestyle did not stop on {signal.Signals(sig).name} within 10 s")
    return time.monotonic() - t0


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_the_window_shows_frames_and_stops_on_a_signal_within_2_s(display: str, sig: int, code: int) -> None:
    proc = _run(display)
    try:
        window = _window_pid(proc)
        wait_for(lambda: _shows_the_pattern(display), timeout=30, what="the test pattern on the screen")
        maps = Path(f"/proc/{window}/maps").read_text()
        assert "libtk" in maps and "av.libs" not in maps and "libavcodec" not in maps  # no PyAV beside the GUI
        took = _stop(proc, sig)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, proc.stderr.read()  # type: ignore[union-attr]
    assert took < 2.0, f"{took:.2f} s from {signal.Signals(sig).name} to exit"
    assert not Path(f"/proc/{window}").exists() or "zombie" in Path(f"/proc/{window}/status").read_text().lower()


def test_a_frozen_window_never_holds_the_stream(display: str) -> None:
    """The window process stopped dead (SIGSTOP) once it shows frames: the stream writes on at
    30 fps, ends at --max-frames and takes the window down with it."""
    proc = _run(display, "--max-frames", "150")
    window = _window_pid(proc)
    wait_for(lambda: _shows_the_pattern(display), timeout=30, what="the test pattern on the screen")
    os.kill(window, signal.SIGSTOP)
    t0 = time.monotonic()
    try:
        proc.wait(20)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = proc.stderr.read()  # type: ignore[union-attr]
    assert proc.returncode == 0, err
    assert "written: window 150" in err, err  # write() hands frames over and never waits
    assert time.monotonic() - t0 < 5.0 + 4.0  # at most 5 s of frames, then the window's close timeouts
    assert not Path(f"/proc/{window}").exists() or "zombie" in Path(f"/proc/{window}/status").read_text().lower()


def test_closing_the_window_ends_the_sink(display: str) -> None:
    proc = _run(display)
    try:
        window = _window_pid(proc)
        wait_for(lambda: _shows_the_pattern(display), timeout=30, what="the test pattern on the screen")
        subprocess.run(["xdotool", "search", "--name", "^livestyle$", "windowclose"], env={**os.environ, "DISPLAY": display},
                       check=False, capture_output=True) if shutil.which("xdotool") else os.kill(window, signal.SIGTERM)
        proc.wait(20)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = proc.stderr.read()  # type: ignore[union-attr]
    assert proc.returncode == 1 and "the preview window was closed" in err, err  # every sink failed: exit 1
