"""A WHIP publisher's audio (a real aiortc peer, as OBS publishes) reaches a recording."""

from __future__ import annotations

import asyncio
import fractions
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

av = pytest.importorskip("av")

sys.path.insert(0, str(Path(__file__).parent / "browser"))

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from media_helpers import dominant_hz, read_audio_video
from netns import NetnsRunner
from webrtc_clients import ColourTrack, sdp_post

from livestyle.ingest.webrtc import WebRTCSource
from livestyle.output.media import MediaSink
from livestyle.engine.passthrough import PassthroughGenerator
from livestyle.engine.runner import Runner
from livestyle.server.app import ServerSettings, ServerThread


class Tone48k(MediaStreamTrack):
    """A continuous 440 Hz tone, 20 ms (960-sample) frames at 48 kHz mono, paced in real time."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._start: float | None = None
        self._sent = 0

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            await asyncio.sleep(max(0.0, self._start + self._sent / 48000 - time.monotonic()))
        t = (np.arange(960) + self._sent) / 48000
        frame = av.AudioFrame.from_ndarray((np.sin(2 * np.pi * 440 * t) * 10000).astype(np.int16)[None], layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = 48000, self._sent, fractions.Fraction(1, 48000)
        self._sent += 960
        return frame


async def publish(base: str, seconds: float, audio: bool) -> dict[str, Any]:
    """Publish flat video (and the tone) over WHIP like OBS does."""
    pc = RTCPeerConnection()
    pc.addTransceiver(ColourTrack((320, 240)), direction="sendonly")
    if audio:
        pc.addTransceiver(Tone48k(), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    status, body, location = await sdp_post(base + "/whip", pc.localDescription.sdp)
    if status == 201:
        await pc.setRemoteDescription(RTCSessionDescription(body, "answer"))
        await asyncio.sleep(seconds)
    await pc.close()
    return {"status": status, "body": body, "location": location}


def _record(out: Path, audio: bool) -> dict[str, Any]:
    settings = ServerSettings(port=0)
    hub = settings.make_hub()
    source = WebRTCSource(hub, size=(320, 240), fps=30)
    sink = MediaSink(str(out), "mp4")
    runner = Runner(source, PassthroughGenerator(), [sink], size=(320, 240), fps=30)
    server = ServerThread(settings, hub).start()
    runner.start()
    try:
        pub = asyncio.run(publish(server.url, 3.0, audio))
    finally:
        runner.stop()
        runner.wait(15)
        server.stop()
    return {"pub": pub, "stats": runner.stats()}


@pytest.mark.parametrize("audio", [True, False], ids=["tone", "no-audio"])
def test_whip_publishers_audio_reaches_a_recording(netns: NetnsRunner, tmp_path: Path, audio: bool) -> None:
    out = tmp_path / "whip.mp4"
    result = netns.run(_record, out, audio)
    assert result["pub"]["status"] == 201, result["pub"]
    got = read_audio_video(str(out))
    assert got["has_audio"] and got["codec"] == "aac" and got["rate"] == 48000
    assert len(got["times"]) >= 30  # ~80 expected in 3 s
    video_start, video_end = got["times"][0], got["times"][-1] + 1 / 30
    samples, rate = got["audio"], got["rate"]
    audio_end = got["audio_start"] + len(samples) / rate
    assert got["audio_start"] == pytest.approx(video_start, abs=0.05)
    assert audio_end == pytest.approx(video_end, abs=0.1), (audio_end, video_end)
    middle = samples[len(samples) // 4: 3 * len(samples) // 4]
    if audio:  # the publisher's 440 Hz tone, gapless through the middle of the recording
        assert dominant_hz(middle, rate) == pytest.approx(440, abs=4)
        assert np.abs(middle).max() > 0.15
        assert result["stats"]["audio"]["chunks_in"] > 50
    else:  # no publisher audio: the track is silence, and the video was not held up for it
        assert np.abs(middle).max() < 0.01
