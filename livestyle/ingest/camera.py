"""Local cameras: ``webcam``, ``webcam:N`` and device paths (``/dev/video0``, ``video=Name``).

PyAV opens the camera through the OS's capture API (v4l2 on Linux, avfoundation on macOS, dshow
on Windows); OpenCV is the fallback when PyAV cannot (or, on Windows, when only an index is
known). A camera that disappears mid-stream is reopened with backoff while the last frame is
repeated at the nominal rate, so a loose USB cable never ends a broadcast. Frames carry pts from
the capture clock (time base 1/90000), monotonic across reconnects.
"""

from __future__ import annotations

import errno
import os
import platform
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Protocol

import numpy as np

from livestyle.errors import SourceError
from livestyle.optional import require
from livestyle.engine.fit import DEFAULT_FIT, FitMode, check_fit, fit_image
from livestyle.engine.frames import Frame, StreamInfo

__all__ = ["CameraDevice", "CameraSource", "CameraLost", "camera_device", "describe_open_error"]

DEFAULT_SIZE = (1280, 720)
DEFAULT_FPS = 30.0
TIME_BASE = Fraction(1, 90000)
BACKOFF = (0.5, 1.0, 2.0, 4.0, 5.0)
"""Seconds between reconnect attempts; the last value repeats."""


class CameraLost(Exception):
    """Raised by a reader when its device stops delivering frames (internal to this module)."""


@dataclass(frozen=True)
class CameraDevice:
    """How to open one camera: the name FFmpeg takes, its input format, and OpenCV's handle."""

    label: str
    url: str
    format: str | None
    cv_index: int | str | None
    options: dict[str, str] = field(default_factory=dict)


def camera_device(spec: str, system: str | None = None) -> CameraDevice:
    """Resolve ``webcam``, ``webcam:N``, ``/dev/videoN`` or ``video=Name`` for this OS."""
    system = system or platform.system()
    if spec == "webcam" or spec.startswith("webcam:"):
        which = spec.partition(":")[2] or "0"
    else:
        which = spec
    if system == "Linux":
        if spec.lower().startswith("webcam:") and not which.isdigit():
            raise SourceError(f"bad camera '{spec}': use webcam:N with N a number, e.g. webcam:1")
        path = f"/dev/video{which}" if which.isdigit() else which
        return CameraDevice(path, path, "v4l2", path)
    label = f"webcam:{which}" if which.isdigit() else which
    if system == "Darwin":
        return CameraDevice(label, which, "avfoundation", int(which) if which.isdigit() else None)
    if system == "Windows":
        if which.isdigit():  # dshow needs a device name; OpenCV opens by index
            return CameraDevice(label, "", None, int(which))
        name = which if which.startswith("video=") else f"video={which}"
        return CameraDevice(name, name, "dshow", None)
    raise SourceError(f"cameras are not supported on {system}: use a file or stream URL")


def describe_open_error(label: str, exc: BaseException) -> str:
    """One line saying why ``label`` could not be opened and what to do."""
    code = getattr(exc, "errno", None)
    if code in (errno.ENOENT, errno.ENODEV, errno.ENXIO):
        return (f"camera {label} not found: plug it in or pick another with webcam:N "
                "(livestyle doctor lists cameras)")
    if code == errno.EBUSY:
        return (f"camera {label} is busy: another program (OBS, a browser, a video call) is "
                "using it; close that program or pick another with webcam:N")
    if code in (errno.EACCES, errno.EPERM):
        return (f"no permission to open camera {label}: add your user to the 'video' group "
                "(sudo usermod -aG video $USER, then log in again)")
    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return f"cannot open camera {label}: {reason}"


class Reader(Protocol):
    """An open camera: ``read`` returns the next ``uint8`` RGB ``[H, W, 3]`` at the source's
    size or raises :class:`CameraLost`."""

    def read(self) -> np.ndarray: ...

    def close(self) -> None: ...


class _AvReader:
    def __init__(self, container: Any, width: int, height: int) -> None:
        self._container = container
        self._frames = container.decode(video=0)
        self._width, self._height = width, height

    def read(self) -> np.ndarray:
        try:
            frame = next(self._frames)
        except StopIteration as exc:
            raise CameraLost("the camera stopped delivering frames") from exc
        except Exception as exc:  # noqa: BLE001 - any FFmpeg/OS error means the device is gone
            raise CameraLost(str(exc)) from exc
        return np.ascontiguousarray(frame.to_ndarray(format="rgb24"))  # CameraSource fits it

    def close(self) -> None:
        self._container.close()


class _CvReader:
    def __init__(self, capture: Any, cv2: Any, width: int, height: int) -> None:
        self._capture, self._cv2 = capture, cv2
        self._width, self._height = width, height

    def read(self) -> np.ndarray:
        ok, bgr = self._capture.read()
        if not ok or bgr is None:
            raise CameraLost("the camera stopped delivering frames")
        return self._cv2.cvtColor(bgr, self._cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        self._capture.release()


def open_reader(device: CameraDevice, size: tuple[int, int] | None, fps: float) -> Reader:
    """Open ``device`` with PyAV, else OpenCV; SourceError with the reason when neither can."""
    first_error: BaseException | None = None
    if device.format is not None:
        if device.format == "v4l2" and not os.path.exists(device.url):
            missing = FileNotFoundError(errno.ENOENT, "no such device")
            raise SourceError(describe_open_error(device.label, missing))
        try:
            return _open_av(device, size, fps)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.EBUSY, errno.EACCES, errno.EPERM):
                raise SourceError(describe_open_error(device.label, exc)) from exc
            first_error = exc
        except SourceError:
            raise
        except Exception as exc:  # noqa: BLE001 - av errors that are not OSError: try OpenCV
            first_error = exc
    if device.cv_index is not None:
        reader = _open_cv(device, size, fps)
        if reader is not None:
            return reader
    absent = OSError(errno.ENODEV, "no such camera")
    raise SourceError(describe_open_error(device.label, first_error or absent))


def _open_av(device: CameraDevice, size: tuple[int, int] | None, fps: float) -> Reader:
    av = require("av", SourceError)
    wanted = dict(device.options)
    if size:
        wanted["video_size"] = f"{size[0]}x{size[1]}"
    wanted["framerate"] = f"{fps:g}"
    attempts = [dict(wanted, input_format="mjpeg"), wanted, dict(device.options)]
    if device.format != "v4l2":
        attempts = attempts[1:]
    error: BaseException | None = None
    for options in attempts:
        try:
            container = av.open(device.url, format=device.format, options=options,
                                timeout=(10.0, 5.0))
        except av.error.FFmpegError as exc:
            if isinstance(exc, OSError) and exc.errno in (errno.ENOENT, errno.EBUSY,
                                                          errno.EACCES, errno.EPERM):
                raise
            error = exc
            continue
        ctx = container.streams.video[0].codec_context
        width, height = size or (ctx.width, ctx.height)
        return _AvReader(container, width, height)
    assert error is not None
    raise error


def _open_cv(device: CameraDevice, size: tuple[int, int] | None, fps: float) -> Reader | None:
    cv2 = require("cv2", SourceError)
    capture = cv2.VideoCapture(device.cv_index)
    if not capture.isOpened():
        capture.release()
        return None
    if size:
        capture.set(cv2.CAP_PROP_FRAME_WIDTH, size[0])
        capture.set(cv2.CAP_PROP_FRAME_HEIGHT, size[1])
    capture.set(cv2.CAP_PROP_FPS, fps)
    width, height = size or (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
                             int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    return _CvReader(capture, cv2, width, height)


class CameraSource:
    """A local camera as a :class:`~livestyle.engine.frames.Source`; never ends on its own.

    Args:
        device: what :func:`camera_device` resolved.
        size: ``(width, height)`` asked of the camera; frames are fitted to it by ``fit`` when the
            camera delivers another size (:mod:`livestyle.engine.fit`). None keeps the size the
            camera delivers (the one it chose for ``request``, if given).
        request: with ``size`` None, the size asked of the camera (it picks its nearest mode);
            frames come out at whatever it delivers, so its aspect ratio is kept.
        fit: ``crop`` (default), ``pad`` or ``stretch``.
        fps: rate asked of the camera, and the rate at which the last frame repeats while the
            camera is being reconnected.
        opener: opens a :class:`Reader` (injectable for tests; default PyAV then OpenCV).
        clock, sleep: injectable time functions (tests).
    """

    def __init__(
        self,
        device: CameraDevice,
        *,
        size: tuple[int, int] | None = None,
        request: tuple[int, int] | None = None,
        fps: float | None = None,
        fit: FitMode = DEFAULT_FIT,
        opener: Callable[[CameraDevice, tuple[int, int] | None, float], Reader] = open_reader,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        self.name = device.label
        self._device = device
        self._size = size
        self._request = request if size is None else None
        self._fps = fps or DEFAULT_FPS
        self._fit = check_fit(fit)
        self._opener = opener
        self._clock = clock
        self._stop = threading.Event()
        self._sleep = sleep if sleep is not None else self._stop.wait
        self._lock = threading.Lock()
        self._reader: Reader | None = None
        self._info: StreamInfo | None = None
        self.reconnects = 0
        self.repeated_frames = 0

    def open(self) -> StreamInfo:
        self._stop.clear()
        reader = self._opener(self._device, self._size or self._request, self._fps)
        try:
            first = reader.read() if self._size is None else None
        except CameraLost as exc:
            reader.close()
            raise SourceError(f"camera {self.name} opened but delivers no frames ({exc})") from exc
        height, width = first.shape[:2] if first is not None else self._size[::-1]
        self._size = (width, height)
        self._reader = reader
        self._info = StreamInfo(width, height, self._fps, TIME_BASE)
        return self._info

    def frames(self) -> Iterator[Frame]:
        if self._info is None:
            raise SourceError(f"{self.name}: call open() before frames()")
        origin = self._clock()
        last: np.ndarray | None = None
        index = 0
        last_pts = -1
        attempt = 0
        retry_at = 0.0
        try:
            while not self._stop.is_set():
                image = None
                with self._lock:
                    if self._stop.is_set():
                        return
                    if self._reader is None and self._clock() >= retry_at:
                        try:
                            self._reader = self._opener(self._device, self._size, self._fps)
                            self.reconnects += 1
                            attempt = 0
                        except SourceError:
                            retry_at = self._clock() + BACKOFF[min(attempt, len(BACKOFF) - 1)]
                            attempt += 1
                    if self._reader is not None:
                        try:
                            image = self._reader.read()
                        except CameraLost:
                            self._reader.close()
                            self._reader = None
                            retry_at = self._clock() + BACKOFF[0]
                            attempt = 1
                if image is not None and (image.shape[1], image.shape[0]) != self._size:
                    image = fit_image(image, self._size, self._fit)
                if image is None:
                    if last is None:
                        self._sleep(1.0 / self._fps)
                        continue
                    self._sleep(1.0 / self._fps)  # the camera is away: repeat the last frame
                    if self._stop.is_set():
                        return
                    image = last
                    self.repeated_frames += 1
                now = self._clock()
                pts = max(round((now - origin) / TIME_BASE), last_pts + 1)
                last_pts = pts
                yield Frame(image, pts, TIME_BASE, now, index)
                last = image
                index += 1
        finally:
            self._release()

    def _release(self) -> None:
        with self._lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None

    def close(self) -> None:
        """Stop ``frames()``; safe from any thread, never blocks (see MediaSource.close)."""
        self._stop.set()
        if self._lock.acquire(blocking=False):
            try:
                if self._reader is not None:
                    self._reader.close()
                    self._reader = None
            finally:
                self._lock.release()
