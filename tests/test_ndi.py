"""NDI for real on one machine (issue 30): livestyle's NDI sink to a cyndilib receiver, a cyndilib
sender to livestyle's NDI source, receivers and senders that go away.

Discovery runs without mDNS: the module points NDI_CONFIG_DIR at a config whose extra IP is
127.0.0.1, the NDI SDK's way to find senders on given machines (these machines run no mDNS
responder; the NDI runtime on Linux advertises through avahi). An extra-IP query reaches the one
process that holds TCP port 5960 on that machine and lists only that process's senders, so the
tests take a machine-wide file lock (one NDI test at a time across xdist workers and concurrent
runs; each closes its senders, which frees the port) and use sender names unique per test.

The cyndilib receivers here read through NDI's frame synchroniser (``Receiver.frame_sync``):
cyndilib makes one for every receiver, and it takes the frames of the plain capture call.
"""

from __future__ import annotations

import fcntl
import json
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

cyndilib = pytest.importorskip("cyndilib")

from livestyle.errors import SinkError, SourceError  # noqa: E402
from livestyle.ingest import open_source  # noqa: E402
from livestyle.ingest.ndi import NdiSource  # noqa: E402
from livestyle.ndi import frame_rate, matches, parse_ndi_spec  # noqa: E402
from livestyle.output import open_sink  # noqa: E402
from livestyle.output.ndi import NdiSink  # noqa: E402
from livestyle.engine.frames import AudioChunk, AudioInfo, Frame, StreamInfo  # noqa: E402

W, H, FPS = 320, 240, 30
COLOUR = (200, 60, 30)  # RGB of the patch under the index bits
TOLERANCE = 12  # NDI's codec (SpeedHQ, 4:2:2) moves flat colours by a few levels
TB = Fraction(1, 90000)


@pytest.fixture(scope="module", autouse=True)
def ndi_without_mdns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    folder = tmp_path_factory.mktemp("ndi")
    (folder / "ndi-config.v1.json").write_text(json.dumps({"ndi": {"networks": {"ips": "127.0.0.1"}}}))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NDI_CONFIG_DIR", str(folder))
        yield


@pytest.fixture(autouse=True)
def one_ndi_test_at_a_time() -> Iterator[None]:
    with open(Path(tempfile.gettempdir()) / "livestyle-ndi-tests.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def picture(index: int) -> np.ndarray:
    """RGB ``[H, W, 3]``: ``index`` as 8 black/white bars in the top half, a flat colour below."""
    img = np.zeros((H, W, 3), np.uint8)
    for bit in range(8):
        if index >> bit & 1:
            img[: H // 2, bit * (W // 8):(bit + 1) * (W // 8)] = 255
    img[H // 2:] = COLOUR
    return img


def read_index(rgb: np.ndarray) -> int:
    h, w = rgb.shape[:2]
    bars = [rgb[h // 8: 3 * h // 8, b * (w // 8) + 8:(b + 1) * (w // 8) - 8].mean() for b in range(8)]
    return sum(1 << b for b, v in enumerate(bars) if v > 128)


def patch(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    return rgb[5 * h // 8: 7 * h // 8, w // 4: 3 * w // 4].reshape(-1, 3).mean(axis=0)


class RawReceiver:
    """A plain cyndilib receiver in a thread, keeping each new frame (RGBA) it sees."""

    def __init__(self, name: str) -> None:
        self.finder = cyndilib.Finder()
        self.finder.open()
        self.receiver = cyndilib.Receiver(color_format=cyndilib.RecvColorFormat.RGBX_RGBA,
                                          bandwidth=cyndilib.RecvBandwidth.highest)
        self.video = cyndilib.VideoFrameSync()
        self.receiver.frame_sync.set_video_frame(self.video)
        self.frames: list[tuple[float, np.ndarray]] = []
        self.rate: Fraction | None = None
        self.stop = threading.Event()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            names = [n for n in self.finder.get_source_names() if matches(n, name)]
            if names:
                self.receiver.set_source(self.finder.get_source(names[0]))
                break
            self.finder.wait_for_sources(0.2)
        else:
            raise AssertionError(f"no NDI sender {name}: {self.finder.get_source_names()}")
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        last = None
        while not self.stop.is_set():
            self.receiver.frame_sync.capture_video()
            v = self.video
            if v.xres:
                stamp = (v.get_timestamp_posix(), v.get_timecode_posix())
                if stamp != last:
                    last = stamp
                    self.rate = v.get_frame_rate()
                    data = v.get_array()[: v.get_line_stride() * v.yres]
                    rgba = data.reshape(v.yres, -1)[:, : v.xres * 4].reshape(v.yres, v.xres, 4)
                    self.frames.append((time.monotonic(), rgba[..., :3].copy()))
            self.stop.wait(0.002)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(2)
        self.receiver.set_source(None)
        self.finder.close()


class RawSender:
    """A plain cyndilib sender sending :func:`picture` frames at ``FPS`` in a thread."""

    def __init__(self, name: str, start: int = 0) -> None:
        self.sender = cyndilib.Sender(name, clock_video=False)
        vf = cyndilib.VideoSendFrame()
        vf.set_resolution(W, H)
        vf.set_frame_rate(Fraction(FPS))
        vf.set_fourcc(cyndilib.FourCC.RGBX)
        self.sender.set_video_frame(vf)
        self.sender.open()
        self.sent = start
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        t0, first = time.monotonic(), self.sent
        rgbx = np.full((H, W, 4), 255, np.uint8)
        while not self.stop.is_set():
            rgbx[..., :3] = picture(self.sent % 256)
            self.sender.write_video(rgbx.reshape(-1))
            self.sent += 1
            self.stop.wait(max(0.0, t0 + (self.sent - first) / FPS - time.monotonic()))

    def close(self) -> None:
        self.stop.set()
        self.thread.join(2)
        self.sender.close()


def send_frames(sink: NdiSink, first: int, count: int) -> list[float]:
    """Write ``count`` pictures to ``sink`` at ``FPS``; the seconds each write took."""
    took = []
    t0 = time.monotonic()
    for k in range(count):
        i = first + k
        t = time.monotonic()
        sink.write(Frame(picture(i % 256), round(i / FPS / TB), TB, t, i))
        took.append(time.monotonic() - t)
        time.sleep(max(0.0, t0 + (k + 1) / FPS - time.monotonic()))
    return took


# -- spec parsing and dispatch --------------------------------------------------------------


def test_spec_names_and_options() -> None:
    spec = parse_ndi_spec("ndi://GAMING-PC%20(OBS)?ips=10.0.0.5,10.0.0.6&groups=studio", SourceError)
    assert (spec.name, spec.ips, spec.groups) == ("GAMING-PC (OBS)", ("10.0.0.5", "10.0.0.6"), "studio")
    with pytest.raises(SinkError, match="names no NDI sender"):
        parse_ndi_spec("ndi://", SinkError)
    with pytest.raises(SourceError, match="unknown NDI option 'ip'"):
        parse_ndi_spec("ndi://x?ip=1.2.3.4", SourceError)
    assert matches("GAMING-PC (OBS)", "obs") and matches("GAMING-PC (OBS)", "gaming-pc (obs)")
    assert not matches("GAMING-PC (OBS 2)", "OBS")
    assert frame_rate(29.97) == Fraction(30000, 1001) and frame_rate(30.0) == Fraction(30)


def test_dispatch_opens_ndi_sinks_and_sources() -> None:
    assert isinstance(open_sink("ndi://livestyle", fps=30), NdiSink)
    assert isinstance(open_source("ndi://GAMING-PC (OBS)"), NdiSource)


# -- livestyle's sink -> a cyndilib receiver --------------------------------------------------


def test_sink_frames_reach_a_cyndilib_receiver_in_order() -> None:
    name = unique("ls-sink")
    sink = open_sink(f"ndi://{name}")
    sink.open(StreamInfo(W, H, 29.97))
    try:
        send_frames(sink, 0, 5)  # the receiver connects while these go out
        receiver = RawReceiver(name)
        try:
            time.sleep(0.3)
            send_frames(sink, 5, 45)
            time.sleep(0.2)
        finally:
            receiver.close()
    finally:
        sink.close()
    got = [read_index(img) for _, img in receiver.frames]
    later = [i for i in got if i >= 10]
    assert len(later) >= 36, got  # frames 10..49 sent after the connection settled
    assert later == sorted(set(later)), got  # in order, none twice
    assert receiver.rate == Fraction(30000, 1001)
    for _, img in receiver.frames:
        assert img.shape == (H, W, 3)
        assert np.abs(patch(img) - COLOUR).max() <= TOLERANCE, patch(img)


def test_a_receiver_that_disappears_never_blocks_or_fails_the_sink() -> None:
    name = unique("ls-gone")
    sink = NdiSink(parse_ndi_spec(f"ndi://{name}", SinkError))
    sink.open(StreamInfo(W, H, FPS))
    try:
        first = RawReceiver(name)
        send_frames(sink, 0, 20)
        first.close()
        del first  # the receiver is destroyed mid-stream
        took = send_frames(sink, 20, 20)
        second = RawReceiver(name)  # a receiver that comes later is served
        send_frames(sink, 40, 20)
        second.close()
    finally:
        sink.close()
    assert sink.frames_written == 60
    assert max(took) < 0.1, took
    assert any(read_index(img) >= 40 for _, img in second.frames)


def test_sink_sends_the_audio_the_video_has_reached() -> None:
    name = unique("ls-audio")
    sink = NdiSink(parse_ndi_spec(f"ndi://{name}", SinkError))
    assert sink.open_audio(AudioInfo(48000, 2))
    sink.open(StreamInfo(W, H, FPS))
    tone = np.sin(np.arange(1600) * 2 * np.pi * 440 / 48000).astype(np.float32)
    try:
        for i in range(30):
            sink.write_audio(AudioChunk(np.stack([tone, tone]), 48000, round(i / FPS / TB), TB, 0.0))
        assert sink.audio_samples_written == 0  # no video yet: held
        send_frames(sink, 0, 15)
    finally:
        sink.close()
    assert sink.audio_samples_written == 15 * 1600  # chunks 0..14: up to the last frame's time (14/30 s)


# -- a cyndilib sender -> livestyle's source --------------------------------------------------


def read(source: Any, count: int) -> list[Frame]:
    frames = []
    for frame in source.frames():
        frames.append(frame)
        if len(frames) == count:
            break
    return frames


def test_cyndilib_sender_frames_reach_the_source_in_order() -> None:
    name = unique("ls-src")
    sender = RawSender(name)
    source = open_source(f"ndi://{name}")
    try:
        info = source.open()
        frames = read(source, 45)
    finally:
        source.close()
        sender.close()
    assert (info.width, info.height, info.fps) == (W, H, FPS)
    got = [read_index(f.image) for f in frames]
    assert got == sorted(set(got)), got  # in order, none twice
    steady = got[10:]  # the first frames come while the stream starts (a busy CPU skips some)
    # then few skipped: the newest frame wins when this process is late (2 busy cores: a few)
    assert steady[-1] - steady[0] + 1 <= round(len(steady) * 1.25), got
    assert all(b.pts > a.pts for a, b in zip(frames, frames[1:]))
    for f in frames:
        assert f.image.shape == (H, W, 3) and f.image.dtype == np.uint8
        assert np.abs(patch(f.image) - COLOUR).max() <= TOLERANCE, patch(f.image)


def test_source_reconnects_to_a_sender_that_restarts() -> None:
    name = unique("ls-back")
    sender = RawSender(name)
    source = NdiSource(parse_ndi_spec(f"ndi://{name}", SourceError), timeout=8.0)
    try:
        source.open()
        frames = source.frames()
        before = [read_index(next(frames).image) for _ in range(10)]
        sender.close()
        time.sleep(1.5)
        sender = RawSender(name, start=200)  # a new process would be the same: a new sender
        after = [read_index(next(frames).image) for _ in range(10)]
        frames.close()
    finally:
        source.close()
        sender.close()
    assert before[-1] < 200 and after[-1] >= 200, (before, after)


def test_source_whose_sender_disappears_ends_with_one_line() -> None:
    name = unique("ls-end")
    sender = RawSender(name)
    source = NdiSource(parse_ndi_spec(f"ndi://{name}", SourceError), timeout=1.5)
    try:
        source.open()
        frames = source.frames()
        next(frames)
        sender.close()
        t0 = time.monotonic()
        with pytest.raises(SourceError) as err:
            for _ in frames:
                pass
        waited = time.monotonic() - t0
    finally:
        source.close()
    assert str(err.value) == f"ndi://{name}: no frames for 1.5 s; the sender stopped or is unreachable"
    assert 1.4 < waited < 4.0, waited


def test_source_without_a_sender_fails_open_with_the_mdns_hint() -> None:
    source = NdiSource(parse_ndi_spec(f"ndi://{unique('nobody')}", SourceError), find_timeout=0.5)
    with pytest.raises(SourceError, match=r"no NDI sender of that name found in 0.5 s .*\?ips=SENDER_IP"):
        source.open()


def test_livestyle_run_streams_to_ndi_and_counts_the_frames_in_the_api() -> None:
    """The whole path a streamer uses: `livestyle run --sink ndi://NAME` (the real runner, paced
    pattern source) → a cyndilib receiver; /api/stats counts the NDI sink's frames like any sink."""
    import json as _json
    import signal
    import subprocess
    import sys
    import urllib.request

    from host_helpers import free_tcp_port

    name = unique("ls-run")
    port = free_tcp_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "livestyle", "run", "-i", "pattern", "--size", f"{W}x{H}", "-o", f"ndi://{name}",
         "--model", "passthrough", "--api", "--api-port", str(port), "--no-keys", "-q"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    receiver = None
    try:
        deadline = time.monotonic() + 30
        while receiver is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                receiver = RawReceiver(name)
            except AssertionError:
                time.sleep(0.5)
        assert receiver is not None, proc.stderr.read() if proc.poll() is not None else "no NDI sender appeared"
        deadline = time.monotonic() + 20
        while len(receiver.frames) < 30 and time.monotonic() < deadline:
            time.sleep(0.1)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/stats", timeout=5) as resp:
            sinks = _json.load(resp)["sinks"]
        (key,) = [k for k in sinks if "ndi" in k]
        assert sinks[key]["state"] == "running" and sinks[key]["error"] is None, sinks
        assert sinks[key]["written"] >= len(receiver.frames) >= 30, (sinks, len(receiver.frames))
        assert all(img.shape == (H, W, 3) for _, img in receiver.frames)
    finally:
        if receiver is not None:
            receiver.close()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
