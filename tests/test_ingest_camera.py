"""Cameras: device resolution per OS, clear messages for absent/busy/forbidden cameras, and the
reconnect loop (no camera exists on this machine, so a scripted reader stands in for the device)."""

from __future__ import annotations

import errno
import glob
import os
from fractions import Fraction

import numpy as np
import pytest
from fakes import FakeClock

from livestyle.errors import SourceError
from livestyle.ingest import open_source
from livestyle.ingest.camera import (
    BACKOFF,
    CameraDevice,
    CameraLost,
    CameraSource,
    camera_device,
    describe_open_error,
)


def test_absent_camera_path() -> None:
    if glob.glob("/dev/video7"):
        pytest.skip("this machine has /dev/video7")
    with pytest.raises(SourceError) as err:
        open_source("/dev/video7").open()
    assert str(err.value) == (
        "camera /dev/video7 not found: plug it in or pick another with webcam:N "
        "(livestyle doctor lists cameras)"
    )


def test_absent_camera_index() -> None:
    if glob.glob("/dev/video7"):
        pytest.skip("this machine has /dev/video7")
    with pytest.raises(SourceError) as err:
        open_source("webcam:7").open()
    assert str(err.value).startswith("camera /dev/video7 not found: plug it in")


def test_device_names_per_os() -> None:
    assert camera_device("webcam", "Linux").url == "/dev/video0"
    linux = camera_device("webcam:2", "Linux")
    assert (linux.url, linux.format, linux.label) == ("/dev/video2", "v4l2", "/dev/video2")
    mac = camera_device("webcam:1", "Darwin")
    assert (mac.url, mac.format, mac.cv_index, mac.label) == ("1", "avfoundation", 1, "webcam:1")
    windows_index = camera_device("webcam:1", "Windows")
    assert (windows_index.format, windows_index.cv_index) == (None, 1)
    windows_name = camera_device("video=Integrated Camera", "Windows")
    assert (windows_name.url, windows_name.format) == ("video=Integrated Camera", "dshow")
    with pytest.raises(SourceError) as err:
        camera_device("webcam:front", "Linux")
    assert str(err.value) == (
        "bad camera 'webcam:front': use webcam:N with N a number, e.g. webcam:1"
    )


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (errno.EBUSY, "camera /dev/video0 is busy: another program (OBS, a browser, a video "
                      "call) is using it; close that program or pick another with webcam:N"),
        (errno.EACCES, "no permission to open camera /dev/video0: add your user to the 'video' "
                       "group (sudo usermod -aG video $USER, then log in again)"),
        (errno.ENODEV, "camera /dev/video0 not found: plug it in or pick another with webcam:N "
                       "(livestyle doctor lists cameras)"),
        (errno.EIO, "cannot open camera /dev/video0: Input/output error"),
    ],
)
def test_open_error_messages(code: int, expected: str) -> None:
    assert describe_open_error("/dev/video0", OSError(code, os.strerror(code))) == expected


class ScriptedCamera:
    """Stands in for a device: delivers frames, then is unplugged for a while, then returns."""

    def __init__(self, clock, frames_before_loss: int, absent_until: float) -> None:
        self.clock = clock
        self.remaining = frames_before_loss
        self.absent_until = absent_until
        self.opens: list[float] = []
        self.value = 0

    def open(self, device, size, fps):
        self.opens.append(self.clock())
        if len(self.opens) > 1 and self.clock() < self.absent_until:
            raise SourceError("camera test not found")
        return self

    def read(self) -> np.ndarray:
        if self.remaining == 0 and self.clock() < self.absent_until:
            raise CameraLost("unplugged")
        self.remaining -= 1
        self.value += 1
        self.clock.now += 1 / 30
        return np.full((4, 6, 3), self.value % 256, np.uint8)

    def close(self) -> None:
        pass


def test_lost_camera_repeats_last_frame_and_reconnects_with_backoff() -> None:
    clock = FakeClock(10.0)
    camera = ScriptedCamera(clock, frames_before_loss=3, absent_until=13.0)
    device = CameraDevice("test", "test", None, None)
    source = CameraSource(device, size=(6, 4), fps=10, opener=camera.open,
                          clock=clock, sleep=clock.sleep)
    info = source.open()
    assert (info.width, info.height, info.fps, info.time_base) == (6, 4, 10, Fraction(1, 90000))
    frames = []
    for frame in source.frames():
        frames.append(frame)
        if clock.now > 14.5:
            break
    source.close()
    values = [int(f.image[0, 0, 0]) for f in frames]
    assert values[:3] == [1, 2, 3]
    assert values[3:3 + 25] == [3] * 25  # the last picture repeats while the camera is away
    assert values[-1] > 3  # live frames again after the reconnect
    assert source.reconnects == 1
    lost_at = frames[3].capture_time - 0.1
    assert camera.opens[1] == pytest.approx(lost_at + BACKOFF[0], abs=0.11)
    assert np.diff(camera.opens[1:]).tolist() == pytest.approx(BACKOFF[1:3], abs=0.11)
    assert all(b.pts > a.pts for a, b in zip(frames, frames[1:]))
    assert [f.index for f in frames] == list(range(len(frames)))


def test_camera_that_opens_but_sends_nothing() -> None:
    class Silent:
        def read(self):
            raise CameraLost("timed out")

        def close(self) -> None:
            self.closed = True

    silent = Silent()
    source = CameraSource(CameraDevice("/dev/video9", "/dev/video9", "v4l2", None),
                          opener=lambda device, size, fps: silent)
    with pytest.raises(SourceError) as err:
        source.open()
    assert str(err.value) == "camera /dev/video9 opened but delivers no frames (timed out)"
    assert silent.closed
