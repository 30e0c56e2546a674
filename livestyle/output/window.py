"""``window``: a local preview window, in a process of its own (:mod:`livestyle.output.window_app`).

The window is a Tk window in a child Python that imports nothing but the standard library, fed raw
RGB frames over a pipe. In one process with PyAV a GUI toolkit can hang: OpenCV's Qt waited forever
inside the libxcb copy that PyAV's wheel bundles, spinning at 100% CPU and deaf to SIGINT/SIGTERM.
Apart, the two never meet; Tk comes with Python on Windows and macOS (Debian/Ubuntu:
``apt install python3-tk``), and the child's main thread is the one macOS wants for windows.

The stream never waits for the window: :meth:`WindowSink.write` only replaces the frame waiting to
be sent, and a feeder thread sends the newest one when the pipe takes it (a slow or frozen window
loses frames, the stream does not). Closing the window ends this sink; the end of the stream, or
livestyle dying, closes the pipe and the window with it.
"""

from __future__ import annotations

import os
import platform
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

from livestyle.engine.frames import Frame, StreamInfo
from livestyle.errors import SinkError

__all__ = ["WindowSink"]

APP = Path(__file__).with_name("window_app.py")
READY_TIMEOUT_S = 10.0
CLOSE_TIMEOUT_S = 1.0


class WindowSink:
    """Shows each frame in a window titled ``title``; closing the window ends this sink."""

    def __init__(self, title: str = "livestyle") -> None:
        self.name = "window"
        self._title = title
        self._proc: subprocess.Popen[bytes] | None = None
        self._cv = threading.Condition()
        self._pending: Frame | None = None
        self._stopping = False
        self._feeder: threading.Thread | None = None
        self.sent = 0

    @property
    def pid(self) -> int | None:
        """The window process's id while it runs."""
        return self._proc.pid if self._proc is not None else None

    def open(self, info: StreamInfo) -> None:
        if platform.system() == "Linux" and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise SinkError(
                "no display for the preview window (DISPLAY is not set): run it on a desktop, "
                "or use --sink virtualcam, a recording (out.mp4) or a stream URL instead"
            )
        try:
            proc = subprocess.Popen([sys.executable, "-u", str(APP), self._title, str(info.width), str(info.height)],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                    bufsize=0)
        except OSError as exc:
            raise SinkError(f"cannot start the preview window: {exc}") from None
        answer = _read_line(proc, READY_TIMEOUT_S)
        if answer != "ready":
            _end(proc)
            raise SinkError(_failure(answer))
        self._proc = proc
        self._feeder = threading.Thread(target=self._feed, name="livestyle-window-feed", daemon=True)
        self._feeder.start()

    def write(self, frame: Frame) -> None:
        proc = self._proc
        if proc is None:
            raise SinkError("window: write() after close() or before open()")
        if proc.poll() is not None:
            raise SinkError("window: the preview window was closed")
        with self._cv:
            self._pending = frame  # the newest frame wins; never waits for the window
            self._cv.notify()

    def close(self) -> None:
        proc, self._proc = self._proc, None
        with self._cv:
            self._stopping = True
            self._cv.notify()
        if proc is None:
            return
        if self._feeder is not None:
            self._feeder.join(CLOSE_TIMEOUT_S)
        _end(proc)

    def _feed(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stdin is not None
        fd = proc.stdin.fileno()  # unbuffered writes: close() never waits on a writer's lock
        while True:
            with self._cv:
                while self._pending is None and not self._stopping:
                    self._cv.wait()
                if self._stopping:
                    return
                frame, self._pending = self._pending, None
            pixels = frame.image if frame.image.flags.c_contiguous else frame.image.copy()
            try:
                for data in (memoryview(b"%d %d\n" % (frame.width, frame.height)), memoryview(pixels).cast("B")):
                    while data:
                        data = data[os.write(fd, data):]
                self.sent += 1
            except OSError:  # the window went away (write() reports it) or close() ended it
                return


def _read_line(proc: subprocess.Popen[bytes], timeout: float) -> str:
    """The window process's first line on stdout ('' when it ended or said nothing in ``timeout`` s)."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    line = b""
    while not line.endswith(b"\n") and time.monotonic() < deadline:
        if os.name == "nt":  # no select() on pipes there: a blocking read (the child answers or exits)
            return proc.stdout.readline().decode(errors="replace").strip()
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        byte = os.read(proc.stdout.fileno(), 1)
        if not byte:
            break
        line += byte
    return line.decode(errors="replace").strip()


def _failure(answer: str) -> str:
    if "tkinter" in answer:
        return (f"the preview window needs Tk, which this Python lacks ({answer.removeprefix('error: ')}): "
                "on Debian/Ubuntu `sudo apt install python3-tk`; the python.org installers include it")
    if answer.startswith("error: "):
        return f"the preview window did not open: {answer.removeprefix('error: ')}"
    return f"the preview window did not open within {READY_TIMEOUT_S:.0f} s"


def _end(proc: subprocess.Popen[bytes]) -> None:
    """Close the window: end of its stdin, then SIGTERM, then SIGKILL, each after a short wait."""
    for stream in (proc.stdin, proc.stdout):
        try:
            if stream is not None:
                stream.close()
        except OSError:
            pass
    try:
        proc.wait(CLOSE_TIMEOUT_S)
        return
    except subprocess.TimeoutExpired:
        proc.terminate()
    try:
        proc.wait(CLOSE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
