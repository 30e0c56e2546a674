"""open_source maps every spec to its source; live streams that go quiet end with a message;
close() from another thread ends a blocked read."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import pytest
from host_helpers import free_udp_port

from livestyle.errors import SourceError
from livestyle.ingest import open_source
from livestyle.ingest.camera import CameraSource
from livestyle.ingest.media import MediaSource
from livestyle.ingest.pattern import PatternSource
from livestyle.engine.frames import Source


@pytest.mark.parametrize(
    ("spec", "kind", "live"),
    [
        ("pattern", PatternSource, None),
        ("webcam", CameraSource, None),
        ("webcam:3", CameraSource, None),
        ("/dev/video0", CameraSource, None),
        ("rtmp://127.0.0.1/live/key", MediaSource, True),
        ("rtsp://127.0.0.1/cam", MediaSource, True),
        ("udp://127.0.0.1:5000", MediaSource, True),
        ("tcp://127.0.0.1:5000", MediaSource, True),
        ("https://example.com/clip.mp4", MediaSource, False),
    ],
)
def test_specs(spec: str, kind: type, live: bool | None) -> None:
    source = open_source(spec)
    assert isinstance(source, kind)
    assert isinstance(source, Source)
    if live is not None:
        assert source.live is live


def test_file_url_and_plain_path(tmp_path) -> None:
    clip = tmp_path / "x.mkv"
    clip.write_bytes(b"")
    assert isinstance(open_source(f"file://{clip}"), MediaSource)
    assert open_source(str(clip)).live is False


def _sender_script(port: int, frames: int) -> str:
    return textwrap.dedent(f"""
        from livestyle.ingest.pattern import PatternSource
        from livestyle.output.media import MediaSink
        source = PatternSource((64, 48), 30, pace=True, max_frames={frames})
        sink = MediaSink("udp://127.0.0.1:{port}", "mpegts", fps=30, live=True)
        sink.open(source.open())
        for frame in source.frames():
            sink.write(frame)
        sink.close()
    """)


def test_live_stream_that_goes_quiet_ends_with_a_message() -> None:
    port = free_udp_port()
    sender = subprocess.Popen([sys.executable, "-c", _sender_script(port, 90)])
    try:
        source = MediaSource(f"udp://127.0.0.1:{port}", read_timeout=0.5)
        source.open()
        count = 0
        with pytest.raises(SourceError) as err:
            for _ in source.frames():
                count += 1
    finally:
        sender.kill()
        sender.wait()
    assert count > 0
    assert str(err.value) == (
        f"udp://127.0.0.1:{port}: no data for 0.5 s; the sender stopped or is unreachable"
    )


def test_close_from_another_thread_ends_frames() -> None:
    port = free_udp_port()
    sender = subprocess.Popen([sys.executable, "-c", _sender_script(port, 3000)])
    try:
        source = open_source(f"udp://127.0.0.1:{port}")
        source.open()
        frames = source.frames()
        next(frames)
        threading.Timer(0.2, source.close).start()
        rest = list(frames)  # ends soon after close(), without an error
    finally:
        sender.kill()
        sender.wait()
    assert len(rest) < 90
