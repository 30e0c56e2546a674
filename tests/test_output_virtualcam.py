"""The virtual camera through pyvirtualcam's real ``Camera`` (shape checks, format handling)
over a registered recording backend, since this machine has no v4l2loopback device; and the
one-line setup message when no device exists."""

from __future__ import annotations

import glob
import platform
from fractions import Fraction

import numpy as np
import pytest

from livestyle.errors import SinkError
from livestyle.ingest.pattern import PatternSource
from livestyle.output import open_sink
from livestyle.output.virtualcam import setup_hint
from livestyle.engine.frames import Frame, StreamInfo

pyvirtualcam = pytest.importorskip("pyvirtualcam")
from pyvirtualcam.camera import BACKENDS  # noqa: E402
from pyvirtualcam.util import decode_fourcc  # noqa: E402


class RecordingBackend:
    """A pyvirtualcam backend that keeps what the real ``Camera`` hands it."""

    instances: list[RecordingBackend] = []

    def __init__(self, *, width: int, height: int, fps: float, fourcc: int, device, **kw):
        self.width, self.height, self.fps = width, height, fps
        self.fourcc = decode_fourcc(fourcc)
        self._device = device or "/dev/video-recording"
        self.sent: list[np.ndarray] = []
        self.closed = 0
        RecordingBackend.instances.append(self)

    def send(self, frame: np.ndarray) -> None:
        self.sent.append(frame.copy())

    def close(self) -> None:
        self.closed += 1

    def device(self) -> str:
        return self._device

    def native_fourcc(self):
        return None


@pytest.fixture
def recording_backend():
    RecordingBackend.instances.clear()
    pyvirtualcam.register_backend("livestyle-test", RecordingBackend)
    yield RecordingBackend
    BACKENDS.pop("livestyle-test", None)


def test_frames_reach_the_camera_as_rgb(recording_backend) -> None:
    source = PatternSource((64, 48), 20, pace=False, max_frames=6)
    sink = open_sink("virtualcam", fps=20)
    sink.open(source.open())
    sent = list(source.frames())
    for frame in sent:
        sink.write(frame)
    sink.close()
    sink.close()
    (backend,) = recording_backend.instances
    assert (backend.width, backend.height, backend.fps, backend.fourcc) == (64, 48, 20, "raw ")
    assert len(backend.sent) == 6
    assert all(f.dtype == np.uint8 and f.shape == (64 * 48 * 3,) for f in backend.sent)
    assert np.array_equal(backend.sent[-1].reshape(48, 64, 3), sent[-1].image)
    assert backend.closed == 1


def test_named_device_and_size_mismatch(recording_backend) -> None:
    sink = open_sink("virtualcam:/dev/video42")
    sink.open(StreamInfo(32, 16, 30.0))
    assert recording_backend.instances[0].device() == "/dev/video42"
    wrong = Frame(np.zeros((8, 8, 3), np.uint8), 0, Fraction(1, 30), 0.0)
    with pytest.raises(SinkError) as err:
        sink.write(wrong)
    assert str(err.value) == (
        "virtualcam:/dev/video42: frame is 8x8, the camera was opened at 32x16"
    )
    sink.close()


@pytest.mark.skipif(platform.system() != "Linux", reason="the message checked is Linux's")
def test_missing_device_message() -> None:
    if glob.glob("/dev/video*"):
        pytest.skip("this machine has video devices")
    assert "livestyle-test" not in BACKENDS
    with pytest.raises(SinkError) as err:
        open_sink("virtualcam").open(StreamInfo(64, 48, 30.0))
    assert str(err.value) == (
        "no virtual camera device found: sudo apt install v4l2loopback-dkms && "
        "sudo modprobe v4l2loopback devices=1 exclusive_caps=1"
    )
    assert "\n" not in str(err.value)


def test_setup_hints_per_os() -> None:
    assert setup_hint("Windows") == "install OBS Studio 26+ (it provides the OBS Virtual Camera)"
    assert setup_hint("Darwin").startswith("install OBS Studio 30+ and start/stop its Virtual")
