"""Files and streams through the real PyAV demuxers/decoders: looping, pacing, resolution
changes, rate limiting, a UDP stream from another process, and every bad-input message."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from fakes import FakeClock
from host_helpers import free_udp_port

from livestyle.errors import SourceError
from livestyle.ingest import open_source
from livestyle.ingest.media import MediaSource
from livestyle.ingest.pattern import PatternSource
from livestyle.ingest.timeline import Timeline
from livestyle.output.media import MediaSink

av = pytest.importorskip("av")


def write_clip(path: Path, frames: int, size: tuple[int, int] = (64, 48), fps: float = 30,
               fmt: str = "mp4", start: int = 0) -> Path:
    """A real H.264 clip of the test pattern (frames ``start .. start+frames-1``)."""
    source = PatternSource(size, fps, pace=False, max_frames=start + frames)
    sink = MediaSink(str(path), fmt, fps=fps)
    sink.open(source.open())
    for frame in source.frames():
        if frame.index >= start:
            sink.write(frame)
    sink.close()
    return path


def take(source, n: int):
    frames = []
    for frame in source.frames():
        frames.append(frame)
        if len(frames) == n:
            break
    return frames


def test_file_reads_every_frame_with_size_and_rate(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "c.mp4", 12, (64, 48), 30)
    source = open_source(str(clip), pace=False, loop=False)
    info = source.open()
    assert (info.width, info.height, info.fps) == (64, 48, 30.0)
    frames = list(source.frames())
    source.close()
    assert len(frames) == 12
    assert [f.index for f in frames] == list(range(12))
    assert all(f.image.shape == (48, 64, 3) and f.image.dtype == np.uint8 for f in frames)
    assert all(f.image.flags["C_CONTIGUOUS"] for f in frames)
    seconds = [f.seconds for f in frames]
    assert seconds[0] == 0.0
    assert np.allclose(np.diff(seconds), 1 / 30, atol=1e-3)


def test_file_loops_with_monotonic_pts(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "c.mp4", 5)
    source = open_source(str(clip), pace=False)  # loop on by default
    source.open()
    frames = take(source, 17)
    source.close()
    assert len(frames) == 17
    steps = np.diff([f.seconds for f in frames])
    assert np.allclose(steps, 1 / 30, atol=1e-3), steps
    # the content repeats with the file: frame k and k+5 decode from the same picture
    assert np.abs(frames[1].image.astype(int) - frames[6].image.astype(int)).mean() < 2


def test_file_pacing_follows_pts_on_the_clock(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "c.mp4", 6, fps=25)
    clock = FakeClock(100.0)
    source = MediaSource(str(clip), loop=False, clock=clock, sleep=clock.sleep)
    source.open()
    frames = list(source.frames())
    assert len(frames) == 6
    assert clock.sleeps == pytest.approx([0.04] * 5, abs=1e-6)
    assert [f.capture_time - 100.0 for f in frames] == pytest.approx(
        [0.04 * k for k in range(6)], abs=1e-6)


def test_fps_limit_skips_frames_of_a_faster_file(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "c.mp4", 12, fps=30)
    source = open_source(str(clip), fps=15, pace=False, loop=False)
    assert source.open().fps == 15
    frames = list(source.frames())
    assert len(frames) == 6
    assert np.allclose(np.diff([f.seconds for f in frames]), 2 / 30, atol=1e-3)


def test_resolution_change_mid_stream_is_scaled(tmp_path: Path) -> None:
    first = write_clip(tmp_path / "a.ts", 6, (64, 48), fmt="mpegts")
    second = write_clip(tmp_path / "b.ts", 6, (96, 80), fmt="mpegts", start=50)
    joined = tmp_path / "joined.ts"
    joined.write_bytes(first.read_bytes() + second.read_bytes())

    raw = av.open(str(joined))
    sizes = {(f.width, f.height) for f in raw.decode(video=0)}
    raw.close()
    assert sizes == {(64, 48), (96, 80)}  # the file really changes size

    source = open_source(str(joined), pace=False, loop=False)
    info = source.open()
    assert (info.width, info.height) in sizes
    frames = list(source.frames())
    assert len(frames) == 12
    assert {f.image.shape for f in frames} == {(info.height, info.width, 3)}
    assert all(b > a for a, b in zip([f.pts for f in frames], [f.pts for f in frames][1:]))

    sized = open_source(str(joined), size=(32, 32), pace=False, loop=False)
    sized_info = sized.open()
    assert (sized_info.width, sized_info.height) == (32, 32)
    assert {f.image.shape for f in sized.frames()} == {(32, 32, 3)}


def test_udp_stream_from_another_process(tmp_path: Path) -> None:
    port = free_udp_port()
    sender = textwrap.dedent(f"""
        import time
        from livestyle.ingest.pattern import PatternSource
        from livestyle.output.media import MediaSink
        source = PatternSource((96, 64), 30, pace=True)
        sink = MediaSink("udp://127.0.0.1:{port}", "mpegts", fps=30, live=True)
        sink.open(source.open())
        deadline = time.monotonic() + 30
        for frame in source.frames():
            sink.write(frame)
            if time.monotonic() > deadline:
                break
    """)
    process = subprocess.Popen([sys.executable, "-c", sender])
    try:
        source = open_source(f"udp://127.0.0.1:{port}")
        info = source.open()
        assert (info.width, info.height) == (96, 64)
        frames = take(source, 20)
        source.close()
    finally:
        process.kill()
        process.wait()
    assert len(frames) == 20
    assert all(f.image.shape == (64, 96, 3) for f in frames)
    assert all(b.pts > a.pts for a, b in zip(frames, frames[1:]))
    assert all(b.capture_time >= a.capture_time for a, b in zip(frames, frames[1:]))


def test_timeline_rebases_on_restart_and_jump() -> None:
    timeline = Timeline(Fraction(1, 90000), 30)
    assert [timeline.map(p) for p in (9000, 12000, 15000)] == [0, 3000, 6000]
    assert timeline.map(0) == 9000  # backwards (a loop): one frame later
    assert timeline.map(3000) == 12000
    assert timeline.map(3000 + 90000 * 60) == 15000  # a 60 s jump: one frame later
    assert timeline.map(None) == 18000


# -- bad input ---------------------------------------------------------------------------------


def test_missing_file() -> None:
    with pytest.raises(SourceError) as err:
        open_source("/nonexistent/clip.mp4")
    assert str(err.value) == "file not found: /nonexistent/clip.mp4"


def test_file_that_is_not_video(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video" * 10)
    with pytest.raises(SourceError) as err:
        open_source(str(junk)).open()
    assert str(err.value) == f"cannot read {junk}: not a video FFmpeg understands"


def test_unreachable_tcp_url() -> None:
    port = free_udp_port()
    with pytest.raises(SourceError) as err:
        open_source(f"tcp://127.0.0.1:{port}").open()
    assert str(err.value) == (
        f"cannot connect to tcp://127.0.0.1:{port}: connection refused (is the sender running?)"
    )


def test_silent_udp_url() -> None:
    port = free_udp_port()
    source = MediaSource(f"udp://127.0.0.1:{port}", open_timeout=0.3)
    with pytest.raises(SourceError) as err:
        source.open()
    assert str(err.value) == (
        f"no stream at udp://127.0.0.1:{port}: nothing arrived within 0.3 s "
        "(is the sender running and sending to this address?)"
    )


def test_unknown_source_schemes() -> None:
    with pytest.raises(SourceError) as err:
        open_source("ftp://example.com/x.mp4")
    assert str(err.value) == (
        "unknown source scheme 'ftp://' in 'ftp://example.com/x.mp4': use pattern, webcam, "
        "webcam:N, a camera device path (/dev/videoN), a video file path, rtmp://, rtsp://, "
        "udp://, tcp://, http(s)://, srt://, ndi://NAME, webrtc or whip"
    )
    with pytest.raises(SourceError) as err:
        open_source("camera:2")
    assert str(err.value).startswith("unknown source 'camera:2': use pattern, webcam,")
    with pytest.raises(SourceError) as err:
        open_source("  ")
    assert str(err.value).startswith("empty source: use pattern,")


def test_bad_size_and_fps() -> None:
    with pytest.raises(SourceError) as err:
        open_source("pattern", size=(1, 8))
    assert str(err.value) == "source size 1x8 is too small: use at least 2x2"
    with pytest.raises(SourceError) as err:
        open_source("pattern", fps=0)
    assert str(err.value) == "source fps must be positive, got 0"
