"""Issue 18, point 4: a network receiver that accepts and then stops reading can neither hold the
stream nor its shutdown. Real TCP, the real MPEG-TS sink (PyAV/FFmpeg), the real Runner; the source
sends noise so the kernel's socket buffers fill within a second or two (a test pattern compresses
so well that they would take minutes)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from fractions import Fraction

import numpy as np
from fakes import StampSink

from livestyle.output import open_sink
from livestyle.engine.frames import Frame, StreamInfo
from livestyle.engine.passthrough import PassthroughGenerator
from livestyle.engine.runner import Runner
from livestyle.engine.sink_threads import SHUTDOWN_S

FPS = 30.0
SIZE = (640, 368)


class NoiseSource:
    """Paced 30 fps frames of uniform random RGB: incompressible, ~10 MB/s through H.264."""

    name = "noise"

    def __init__(self) -> None:
        self._stop = threading.Event()

    def open(self) -> StreamInfo:
        return StreamInfo(SIZE[0], SIZE[1], FPS, Fraction(1, 90000))

    def frames(self) -> Iterator[Frame]:
        rng = np.random.default_rng(0)
        t0 = time.monotonic()
        i = 0
        while not self._stop.is_set():
            self._stop.wait(max(0.0, t0 + i / FPS - time.monotonic()))
            image = rng.integers(0, 256, (SIZE[1], SIZE[0], 3), dtype=np.uint8)
            yield Frame(image=image, pts=i * 3000, time_base=Fraction(1, 90000), capture_time=time.monotonic(), index=i)
            i += 1

    def close(self) -> None:
        self._stop.set()


def test_a_receiver_that_stops_reading_is_dropped_and_cannot_hold_the_stop() -> None:
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(server.accept()[0]), daemon=True).start()  # never reads

    local = StampSink()
    tcp = open_sink(f"tcp://127.0.0.1:{port}", fps=FPS)
    runner = Runner(NoiseSource(), PassthroughGenerator(), [local, tcp], size=SIZE, fps=FPS, sink_timeout=2.0)
    runner.start()
    try:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:  # until the watchdog gives the stalled sink up
            sinks = runner.stats()["sinks"]
            if sinks[tcp.name]["state"] == "failed":
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"the stalled TCP sink was never failed: {runner.stats()['sinks']}")
        written_then = len(local.rows)
        time.sleep(1.0)
        assert len(local.rows) >= written_then + 20  # the stream went on for the other sink
        t0 = time.monotonic()
        runner.stop()
        assert runner.wait(SHUTDOWN_S + 3.0), "the stop waited on the stalled receiver"
        stop_s = time.monotonic() - t0
    finally:
        runner.stop()
        runner.wait(10)
        for conn in accepted:
            conn.close()
        server.close()
    assert accepted, "the sink never connected"
    assert stop_s < SHUTDOWN_S + 3.0
    assert "blocked in write for more than 2 s" in runner.stats()["sinks"][tcp.name]["error"]


class EndingNoiseSource(NoiseSource):
    """:class:`NoiseSource` that ends by itself (no stop asked for) 30 frames after ``ending`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.ending = threading.Event()

    def frames(self) -> Iterator[Frame]:
        left = 30
        for frame in super().frames():
            yield frame
            left -= self.ending.is_set()
            if not left:
                return


def test_a_stalled_receiver_abandoned_mid_run_cannot_hold_the_end_of_the_run() -> None:
    """Issue 28, point 2: the run ends by itself (the source's end, no stop asked for) after the watchdog
    abandoned the stalled sink; finishing the sinks must not wait on the abandoned thread, which
    never returns."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(server.accept()[0]), daemon=True).start()  # never reads

    local = StampSink()
    tcp = open_sink(f"tcp://127.0.0.1:{port}", fps=FPS)
    source = EndingNoiseSource()
    runner = Runner(source, PassthroughGenerator(), [local, tcp], size=SIZE, fps=FPS, sink_timeout=2.0)
    runner.start()
    try:
        deadline = time.monotonic() + 40
        while runner.stats()["sinks"][tcp.name]["state"] != "failed":
            assert time.monotonic() < deadline, f"the stalled TCP sink was never failed: {runner.stats()['sinks']}"
            time.sleep(0.1)
        source.ending.set()
        ended = runner.wait(30 / FPS + 5.0)
    finally:
        runner.stop()
        runner.wait(10)
        for conn in accepted:
            conn.close()
        server.close()
    sinks = runner.stats()["sinks"]
    assert ended, f"the run did not end after the source's last frame: {sinks}"
    assert "blocked in write for more than 2 s" in sinks[tcp.name]["error"]
    assert runner.report().stop_reason == "source_ended"
