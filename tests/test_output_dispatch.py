"""open_sink: every spec maps to its sink; unknown ones and a window without a display give the
exact one-line messages."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from livestyle.errors import SinkError
from livestyle.output import open_sink
from livestyle.output.media import MediaSink
from livestyle.output.null import NullSink
from livestyle.output.virtualcam import VirtualCamSink
from livestyle.output.window import WindowSink
from livestyle.engine.frames import Frame, Sink, StreamInfo

VALID = (
    "null, window, virtualcam, virtualcam:DEVICE, a recording path (.mp4, .mkv, .mov, .ts, "
    ".flv), rtmp://, udp://, tcp://, srt://, ndi://NAME, webrtc or whep"
)


@pytest.mark.parametrize(
    ("spec", "kind"),
    [
        ("null", NullSink),
        ("window", WindowSink),
        ("virtualcam", VirtualCamSink),
        ("out.mp4", MediaSink),
        ("OUT.MKV", MediaSink),
        ("rtmp://live.example.com/app/key", MediaSink),
        ("udp://127.0.0.1:5000", MediaSink),
        ("tcp://127.0.0.1:5000", MediaSink),
    ],
)
def test_specs(spec: str, kind: type) -> None:
    sink = open_sink(spec, fps=30)
    assert isinstance(sink, kind)
    assert isinstance(sink, Sink)


def test_null_sink_counts() -> None:
    sink = open_sink("null")
    sink.open(StreamInfo(4, 4, 30.0))
    frame = Frame(np.zeros((4, 4, 3), np.uint8), 0, Fraction(1, 30), 0.0)
    sink.write(frame)
    sink.write(frame)
    assert sink.frames_written == 2
    sink.close()


def test_unknown_sinks() -> None:
    with pytest.raises(SinkError) as err:
        open_sink("ftp://host/out.mp4")
    assert str(err.value) == f"unknown sink scheme 'ftp://' in 'ftp://host/out.mp4': use {VALID}"
    with pytest.raises(SinkError) as err:
        open_sink("out.avi")
    assert str(err.value) == f"unknown sink 'out.avi': use {VALID}"
    with pytest.raises(SinkError) as err:
        open_sink("")
    assert str(err.value) == f"empty sink: use {VALID}"
    with pytest.raises(SinkError) as err:
        open_sink("null", fps=-5)
    assert str(err.value) == "sink fps must be positive, got -5"


def test_window_without_display(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(SinkError) as err:
        open_sink("window").open(StreamInfo(64, 48, 30.0))
    assert str(err.value) == (
        "no display for the preview window (DISPLAY is not set): run it on a desktop, "
        "or use --sink virtualcam, a recording (out.mp4) or a stream URL instead"
    )


def test_window_needs_no_opencv_gui(monkeypatch: pytest.MonkeyPatch) -> None:
    """The window is Tk in a process of its own (tests/test_output_window.py shows it on Xvfb): a
    display that does not exist is one line from that process, whatever OpenCV build is installed."""
    monkeypatch.setenv("DISPLAY", ":98")
    with pytest.raises(SinkError) as err:
        open_sink("window").open(StreamInfo(64, 48, 30.0))
    assert str(err.value).startswith("the preview window did not open: couldn't connect to display"), err.value