"""``virtualcam`` / ``virtualcam:DEVICE``: a virtual camera that OBS, Zoom, Meet or Discord see.

pyvirtualcam drives v4l2loopback on Linux and OBS's virtual camera on Windows and macOS. Frames
go in as RGB, the format they already have, so this sink does no conversion of its own.
"""

from __future__ import annotations

import platform
import threading
from typing import Any

from livestyle.errors import SinkError
from livestyle.optional import require
from livestyle.engine.frames import Frame, StreamInfo

__all__ = ["VirtualCamSink", "setup_hint"]


def setup_hint(system: str | None = None) -> str:
    """The one command (or step) that gives this OS a virtual camera device."""
    system = system or platform.system()
    if system == "Linux":
        return ("sudo apt install v4l2loopback-dkms && "
                "sudo modprobe v4l2loopback devices=1 exclusive_caps=1")
    if system == "Windows":
        return "install OBS Studio 26+ (it provides the OBS Virtual Camera)"
    if system == "Darwin":
        return ("install OBS Studio 30+ and start/stop its Virtual Camera once to approve "
                "the system extension")
    return "no virtual camera backend exists for this OS"


class VirtualCamSink:
    """Sends frames to a virtual camera.

    Args:
        device: device to use (``/dev/video10``, ``OBS Virtual Camera``); None: the first one.
        fps: rate announced to the device; None: the source's rate.
        backend: pyvirtualcam backend name; None tries every registered backend.
    """

    def __init__(
        self, device: str | None = None, *, fps: float | None = None, backend: str | None = None
    ) -> None:
        self.name = f"virtualcam:{device}" if device else "virtualcam"
        self._device = device
        self._fps = fps
        self._backend = backend
        self._camera: Any = None
        self._lock = threading.Lock()
        self.frames_written = 0

    def open(self, info: StreamInfo) -> None:
        pyvirtualcam = require("pyvirtualcam", SinkError, extra="vcam")
        try:
            self._camera = pyvirtualcam.Camera(
                info.width, info.height, self._fps or info.fps,
                fmt=pyvirtualcam.PixelFormat.RGB, device=self._device, backend=self._backend,
            )
        except (RuntimeError, ValueError, OSError, KeyError) as exc:
            where = f"virtual camera {self._device}" if self._device else "virtual camera device"
            raise SinkError(f"no {where} found: {setup_hint()}") from exc

    def write(self, frame: Frame) -> None:
        """Hand one ``uint8`` RGB ``[H, W, 3]`` frame to the device (no pacing: the runner's
        frame timing is kept)."""
        with self._lock:
            if self._camera is None:
                raise SinkError(f"{self.name}: write() after close() or before open()")
            try:
                self._camera.send(frame.image)
            except ValueError as exc:
                raise SinkError(
                    f"{self.name}: frame is {frame.width}x{frame.height}, the camera was "
                    f"opened at {self._camera.width}x{self._camera.height}"
                ) from exc
            except (RuntimeError, OSError) as exc:
                raise SinkError(
                    f"{self.name}: the device stopped accepting frames ({exc})"
                ) from exc
            self.frames_written += 1

    def close(self) -> None:
        """Release the device; idempotent, safe from any thread."""
        with self._lock:
            camera, self._camera = self._camera, None
        if camera is not None:
            camera.close()
