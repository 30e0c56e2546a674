"""The preview window's own process: a Tk window showing the RGB frames read from stdin.

Run as a script by :class:`livestyle.output.window.WindowSink` (``python window_app.py TITLE W H``),
never imported by livestyle: it uses the standard library alone (tkinter), so no PyAV, OpenCV or
torch is ever loaded beside the GUI toolkit. In one process with PyAV, Qt (OpenCV's HighGUI) waited
forever inside the libxcb copy that PyAV's wheel bundles; here nothing else is loaded, and on macOS
the window runs on this process's main thread, as Cocoa requires.

Protocol: each frame is a line ``WIDTH HEIGHT\\n`` and then ``WIDTH * HEIGHT * 3`` bytes of RGB.
The process prints ``ready`` (or ``error: ...``) on stdout once the window is up, shows the newest
frame it has read, and exits 0 at the end of stdin (the stream ended, or livestyle died) or when the
window is closed. It ignores SIGINT: a Ctrl-C in the terminal reaches livestyle too, which then
ends this window by closing stdin.
"""

from __future__ import annotations

import signal
import sys
import threading


class _Latest:
    """The newest frame read from stdin (older ones are dropped), and whether stdin has ended."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.frame: bytes | None = None
        self.ended = False

    def read(self, stream: object) -> None:
        read = stream.read  # type: ignore[attr-defined]
        readline = stream.readline  # type: ignore[attr-defined]
        try:
            while True:
                header = readline()
                if not header:
                    return
                width, height = (int(v) for v in header.split())
                data = read(width * height * 3)
                if len(data) < width * height * 3:
                    return
                with self.lock:
                    self.frame = b"P6 %d %d 255\n" % (width, height) + data
        except (OSError, ValueError):
            return
        finally:
            with self.lock:
                self.ended = True

    def take(self) -> tuple[bytes | None, bool]:
        with self.lock:
            frame, self.frame = self.frame, None
            return frame, self.ended


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    title, width, height = argv[0], int(argv[1]), int(argv[2])
    try:
        import tkinter
    except ImportError as exc:
        print(f"error: no tkinter in this Python ({exc})", flush=True)
        return 1
    try:
        root = tkinter.Tk(className="livestyle")
        root.title(title)
        label = tkinter.Label(root, width=width, height=height, borderwidth=0, highlightthickness=0, bg="black")
        label.pack()
        root.update()
    except tkinter.TclError as exc:
        print(f"error: {exc}", flush=True)
        return 1
    latest = _Latest()
    threading.Thread(target=latest.read, args=(sys.stdin.buffer,), name="window-stdin", daemon=True).start()
    shown: list[object] = []

    def poll() -> None:
        frame, ended = latest.take()
        if frame is not None:
            photo = tkinter.PhotoImage(data=frame, format="PPM")
            label.configure(image=photo, width=photo.width(), height=photo.height())
            shown[:] = [photo]  # Tk shows an image only while Python holds it
        if ended:
            root.destroy()
            return
        root.after(5, poll)

    print("ready", flush=True)
    root.after(0, poll)
    root.mainloop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
