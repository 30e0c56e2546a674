"""SRT both ways through real ffmpeg subprocesses (the PyAV wheels have no SRT): our sink sends
as caller, our source receives as listener; and the message when no ffmpeg with libsrt exists."""

from __future__ import annotations

import threading
import time

import pytest
from host_helpers import free_udp_port

from livestyle.errors import SinkError, SourceError
from livestyle.ingest import open_source
from livestyle.ingest.pattern import PatternSource
from livestyle.optional import ffmpeg_with_srt
from livestyle.output import open_sink


def test_no_ffmpeg_with_srt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    with pytest.raises(SourceError) as err:
        open_source("srt://127.0.0.1:9000")
    assert str(err.value) == (
        "srt:// needs FFmpeg with libsrt, which the PyAV wheels lack: install ffmpeg "
        "(apt install ffmpeg / brew install ffmpeg) or send udp:// or rtmp:// instead"
    )
    with pytest.raises(SinkError) as err:
        open_sink("srt://127.0.0.1:9000")
    assert str(err.value) == (
        "srt:// needs FFmpeg with libsrt, which the PyAV wheels lack: install ffmpeg "
        "(apt install ffmpeg / brew install ffmpeg) or stream to udp:// or rtmp:// instead"
    )


@pytest.mark.slow
@pytest.mark.skipif(
    ffmpeg_with_srt() is None,
    reason="needs ffmpeg with libsrt (apt install ffmpeg)"
)
def test_srt_round_trip() -> None:
    port = free_udp_port()
    stop = threading.Event()
    sent: list[int] = []

    def send() -> None:
        while not stop.is_set():  # retry until the listener is up
            sink = open_sink(f"srt://127.0.0.1:{port}")
            source = PatternSource((96, 64), 30)
            try:
                sink.open(source.open())
                for frame in source.frames():
                    sink.write(frame)
                    sent.append(frame.index)
                    if stop.is_set():
                        break
            except SinkError:
                time.sleep(0.2)
            finally:
                source.close()
                sink.close()

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    source = open_source(f"srt://127.0.0.1:{port}?mode=listener")
    try:
        info = source.open()
        frames = []
        for frame in source.frames():
            frames.append(frame)
            if len(frames) == 15:
                break
    finally:
        source.close()
        stop.set()
        sender.join(timeout=20)
    assert (info.width, info.height) == (96, 64)
    assert len(frames) == 15
    assert all(f.image.shape == (64, 96, 3) for f in frames)
    assert all(b.pts > a.pts for a, b in zip(frames, frames[1:]))
    assert sent
