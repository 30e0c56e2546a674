"""``window``: a local preview window (OpenCV HighGUI).

OpenCV's windows must be driven from one thread; the runner gives this sink its own thread and
every call below happens there. On macOS HighGUI wants the main thread: use another sink there.
"""

from __future__ import annotations

import os
import platform
from typing import Any

from livestyle.errors import SinkError
from livestyle.optional import require
from livestyle.engine.frames import Frame, StreamInfo

__all__ = ["WindowSink"]


class WindowSink:
    """Shows each frame in a window titled ``title``; closing the window ends this sink."""

    def __init__(self, title: str = "livestyle") -> None:
        self.name = "window"
        self._title = title
        self._cv2: Any = None

    def open(self, info: StreamInfo) -> None:
        if platform.system() == "Linux" and not (
            os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
        ):
            raise SinkError(
                "no display for the preview window (DISPLAY is not set): run it on a desktop, "
                "or use --sink virtualcam, a recording (out.mp4) or a stream URL instead"
            )
        cv2 = require("cv2", SinkError, package="opencv-python")
        try:
            cv2.namedWindow(self._title, cv2.WINDOW_NORMAL)
            cv2.resizeWindow(self._title, info.width, info.height)
        except cv2.error as exc:
            raise SinkError(
                "this OpenCV has no GUI support (opencv-python-headless): "
                "pip uninstall -y opencv-python-headless && pip install opencv-python"
            ) from exc
        self._cv2 = cv2

    def write(self, frame: Frame) -> None:
        cv2 = self._cv2
        if cv2 is None:
            raise SinkError("window: write() after close() or before open()")
        cv2.imshow(self._title, cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR))
        cv2.waitKey(1)
        if cv2.getWindowProperty(self._title, cv2.WND_PROP_VISIBLE) < 1:
            raise SinkError("window: the preview window was closed")

    def close(self) -> None:
        cv2, self._cv2 = self._cv2, None
        if cv2 is not None:
            cv2.destroyWindow(self._title)
            cv2.waitKey(1)
