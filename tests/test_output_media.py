"""Recordings and streams through the real libx264 encoder and FFmpeg muxers: read back what
was written, stream MPEG-TS over UDP to a second process, a TCP receiver that goes away, and
every bad-output message."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from host_helpers import free_tcp_port, free_udp_port

from livestyle.errors import SinkError
from livestyle.ingest.pattern import PatternSource
from livestyle.output import open_sink
from livestyle.engine.frames import Frame, Sink, StreamInfo

av = pytest.importorskip("av")


def open_when_listening(sink: Sink, info: StreamInfo, receiver: str) -> None:
    """Open ``sink`` once the receiver process listens: up to 100 tries 0.1 s apart (it needs a
    moment to start); fails the test naming ``receiver`` if it never does."""
    for _ in range(100):
        try:
            sink.open(info)
            return
        except SinkError:
            time.sleep(0.1)
    pytest.fail(f"could not connect to the {receiver}")


def read_back(path: Path) -> tuple[object, list]:
    container = av.open(str(path))
    stream = container.streams.video[0]
    frames = [(f.pts, f.time_base, f.to_ndarray(format="rgb24")) for f in container.decode(stream)]
    rate = stream.average_rate
    container.close()
    return rate, frames


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_pattern_recording_reads_back(tmp_path: Path, suffix: str) -> None:
    source = PatternSource((128, 96), 30, pace=False, max_frames=45)
    sink = open_sink(str(tmp_path / f"out{suffix}"))
    sink.open(source.open())
    sent = list(source.frames())
    for frame in sent:
        sink.write(frame)
    sink.close()
    sink.close()  # idempotent

    rate, frames = read_back(tmp_path / f"out{suffix}")
    assert len(frames) == 45  # every frame, the last ones included (encoder drained at close)
    assert rate == 30
    assert {image.shape for _, _, image in frames} == {(96, 128, 3)}
    seconds = [float(pts * tb) for pts, tb, _ in frames]
    assert seconds[0] == 0.0
    assert all(b > a for a, b in zip(seconds, seconds[1:]))
    assert seconds[-1] == pytest.approx(44 / 30, abs=2e-3)
    # the pictures survive the lossy codec: the last frame is the pattern's last frame
    error = np.abs(frames[-1][2].astype(int) - sent[-1].image.astype(int)).mean()
    assert error < 8


def test_recording_keeps_frame_timing_across_drops(tmp_path: Path) -> None:
    source = PatternSource((64, 48), 30, pace=False, max_frames=20)
    sink = open_sink(str(tmp_path / "gaps.mkv"))
    sink.open(source.open())
    kept = [f for f in source.frames() if f.index % 3 != 1]  # the runner dropped every third
    for frame in kept:
        sink.write(frame)
    sink.close()
    _, frames = read_back(tmp_path / "gaps.mkv")
    seconds = [float(pts * tb) for pts, tb, _ in frames]
    assert seconds == pytest.approx([f.index / 30 for f in kept], abs=2e-3)


def test_foreign_time_base_and_odd_size(tmp_path: Path) -> None:
    info = StreamInfo(65, 49, 25.0, Fraction(1, 90000))
    sink = open_sink(str(tmp_path / "odd.mp4"))
    sink.open(info)
    for k in range(5):  # frames in another time base than the one announced
        image = np.full((49, 65, 3), 40 * k, np.uint8)
        sink.write(Frame(image, 1000 + 40 * k, Fraction(1, 1000), time.monotonic(), k))
    sink.close()
    _, frames = read_back(tmp_path / "odd.mp4")
    assert [float(pts * tb) for pts, tb, _ in frames] == pytest.approx([0.04 * k for k in range(5)])
    assert frames[0][2].shape == (48, 64, 3)  # yuv420p needs even sizes


def test_udp_mpegts_to_a_second_process(tmp_path: Path) -> None:
    port = free_udp_port()
    reader = textwrap.dedent(f"""
        import json, av
        container = av.open("udp://127.0.0.1:{port}", format="mpegts", timeout=(20, 20),
                            options={{"probesize": "32768", "analyzeduration": "100000"}})
        stream = container.streams.video[0]
        got = []
        for frame in container.decode(stream):
            got.append([frame.pts, frame.width, frame.height])
            if len(got) == 30:
                break
        print(json.dumps({{"codec": stream.codec_context.name, "frames": got}}))
    """)
    process = subprocess.Popen([sys.executable, "-c", reader], stdout=subprocess.PIPE, text=True)
    try:
        source = PatternSource((96, 64), 30, pace=True)
        sink = open_sink(f"udp://127.0.0.1:{port}")
        sink.open(source.open())
        deadline = time.monotonic() + 30
        for frame in source.frames():
            sink.write(frame)
            if process.poll() is not None or time.monotonic() > deadline:
                break
        sink.close()
        out, _ = process.communicate(timeout=10)
    finally:
        process.kill()
    report = json.loads(out)
    assert report["codec"] == "h264"
    assert len(report["frames"]) == 30
    assert {(w, h) for _, w, h in report["frames"]} == {(96, 64)}
    pts = [p for p, _, _ in report["frames"]]
    assert all(b > a for a, b in zip(pts, pts[1:]))


def test_tcp_receiver_that_goes_away(tmp_path: Path) -> None:
    port = free_tcp_port()
    receiver = textwrap.dedent(f"""
        import sys, av
        container = av.open("tcp://127.0.0.1:{port}?listen=1", format="mpegts", timeout=(20, 20))
        for n, packet in enumerate(container.demux(video=0)):
            if n == 5:
                break
        print("bye", flush=True)
    """)
    process = subprocess.Popen([sys.executable, "-c", receiver], stdout=subprocess.PIPE, text=True)
    sink = open_sink(f"tcp://127.0.0.1:{port}")
    source = PatternSource((64, 48), 30, pace=False)
    open_when_listening(sink, source.open(), "receiver")
    with pytest.raises(SinkError) as err:
        for frame in source.frames():
            sink.write(frame)
            if frame.index > 5000:
                break
            if frame.index % 50 == 0:
                time.sleep(0.01)
    assert process.wait(timeout=10) == 0
    assert str(err.value).startswith(f"tcp://127.0.0.1:{port}: the receiver went away (")
    sink.close()  # after a failed write: no second error


# -- bad output ---------------------------------------------------------------------------------


def test_unwritable_paths(tmp_path: Path) -> None:
    info = StreamInfo(64, 48, 30.0)
    with pytest.raises(SinkError) as err:
        open_sink("/nonexistent/dir/out.mp4").open(info)
    assert str(err.value) == (
        "cannot record to /nonexistent/dir/out.mp4: folder /nonexistent/dir does not exist"
    )
    (tmp_path / "folder.mkv").mkdir()
    with pytest.raises(SinkError) as err:
        open_sink(f"{tmp_path}/folder.mkv").open(info)
    assert str(err.value) == f"cannot record to {tmp_path}/folder.mkv: it is a directory"


def test_unreachable_stream_url() -> None:
    port = free_tcp_port()
    with pytest.raises(SinkError) as err:
        open_sink(f"tcp://127.0.0.1:{port}").open(StreamInfo(64, 48, 30.0))
    assert str(err.value) == f"cannot open tcp://127.0.0.1:{port}: Connection refused"


def test_write_before_open_and_after_close(tmp_path: Path) -> None:
    sink = open_sink(str(tmp_path / "a.mp4"))
    frame = Frame(np.zeros((48, 64, 3), np.uint8), 0, Fraction(1, 30), 0.0)
    with pytest.raises(SinkError) as err:
        sink.write(frame)
    assert str(err.value) == f"{tmp_path}/a.mp4: write() after close() or before open()"


def test_rtmp_flv_to_a_second_process() -> None:
    port = free_tcp_port()
    url = f"rtmp://127.0.0.1:{port}/live/test"
    receiver = textwrap.dedent(f"""
        import json, av
        container = av.open("{url}", format="flv", options={{"listen": "1"}}, timeout=(20, 20))
        stream = container.streams.video[0]
        got = []
        for frame in container.decode(stream):
            got.append([frame.width, frame.height, float(frame.pts * frame.time_base)])
            if len(got) == 10:
                break
        print(json.dumps({{"format": container.format.name, "frames": got}}), flush=True)
    """)
    process = subprocess.Popen([sys.executable, "-c", receiver], stdout=subprocess.PIPE, text=True)
    try:
        source = PatternSource((64, 48), 30, pace=False)
        info = source.open()
        sink = open_sink(url)
        open_when_listening(sink, info, "RTMP receiver")
        try:
            for frame in source.frames():
                sink.write(frame)
                if frame.index == 20:
                    break
            sink.close()
        except SinkError:
            pass  # the receiver may leave once it has its 10 frames
        out, _ = process.communicate(timeout=20)
    finally:
        process.kill()
    report = json.loads(out)
    assert report["format"] == "flv"
    assert len(report["frames"]) == 10
    assert {(w, h) for w, h, _ in report["frames"]} == {(64, 48)}
    times = [t for _, _, t in report["frames"]]
    assert times == pytest.approx([k / 30 for k in range(10)], abs=2e-3)
