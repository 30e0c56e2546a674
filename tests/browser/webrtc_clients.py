"""aiortc clients that talk to the server the way OBS (WHIP) and WHEP players do, for tests."""

from __future__ import annotations

import asyncio
import fractions
import time
from typing import Any

import aiohttp
import av
import numpy as np
from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, VideoStreamTrack

__all__ = ["ColourTrack", "ToneTrack", "invert", "sdp_post", "whep_play", "whip_publish"]

COLOUR = (200, 60, 30)


def invert(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    return (255 - rgb[0], 255 - rgb[1], 255 - rgb[2])


class ColourTrack(VideoStreamTrack):
    """Flat ``COLOUR`` frames, ``size`` = (width, height), 30 fps."""

    def __init__(self, size: tuple[int, int] = (320, 240), colour: tuple[int, int, int] = COLOUR) -> None:
        super().__init__()
        self.image = np.empty((size[1], size[0], 3), np.uint8)
        self.image[:] = colour
        self.sent = 0

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = av.VideoFrame.from_ndarray(self.image, format="rgb24")
        frame.pts, frame.time_base = pts, time_base
        self.sent += 1
        return frame


class ToneTrack(AudioStreamTrack):
    """A 440 Hz tone, 20 ms frames of 960 samples, 48 kHz mono, paced in real time.

    (aiortc's base ``recv`` paces 160-sample frames for 8 kHz; relabelled as 48 kHz that would be
    a sixth of real-time audio.)
    """

    RATE = 48000
    SAMPLES = 960

    def __init__(self) -> None:
        super().__init__()
        self._start: float | None = None
        self._pts = 0

    async def recv(self) -> av.AudioFrame:
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        else:
            self._pts += self.SAMPLES
            delay = self._start + self._pts / self.RATE - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        t = (np.arange(self.SAMPLES) + self._pts) / self.RATE
        frame = av.AudioFrame.from_ndarray((np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)[None], layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = self.RATE, self._pts, fractions.Fraction(1, self.RATE)
        return frame


async def sdp_post(url: str, sdp: str, token: str | None = None) -> tuple[int, str, str | None]:
    headers = {"Content-Type": "application/sdp"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    async with aiohttp.ClientSession() as s, s.post(url, data=sdp, headers=headers) as r:
        return r.status, await r.text(), r.headers.get("Location")


async def whip_publish(base: str, *, token: str | None = None, codec: str = "video/H264", seconds: float = 3.0,
                       audio: bool = True, size: tuple[int, int] = (320, 240)) -> dict[str, Any]:
    """Publish a flat-colour video (and a tone) for ``seconds`` over WHIP, like OBS does."""
    pc = RTCPeerConnection()
    video = ColourTrack(size)
    t = pc.addTransceiver(video, direction="sendonly")
    t.setCodecPreferences([c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == codec])
    if audio:
        pc.addTransceiver(ToneTrack(), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    status, body, location = await sdp_post(base + "/whip", pc.localDescription.sdp, token)
    result: dict[str, Any] = {"status": status, "body": body, "location": location}
    if status == 201:
        await pc.setRemoteDescription(RTCSessionDescription(body, "answer"))
        await asyncio.sleep(seconds)
        result["sent"] = video.sent
    await pc.close()
    return result


async def whep_play(base: str, *, token: str | None = None, seconds: float = 3.0) -> dict[str, Any]:
    """Play the output over WHEP for ``seconds``; returns frame counts and the mean colour seen."""
    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="recvonly")
    pc.addTransceiver("audio", direction="recvonly")
    got: dict[str, Any] = {"video": 0, "audio": 0, "colours": [], "sizes": set(), "first_frame_s": None}
    tasks: list[asyncio.Task[Any]] = []
    start = time.monotonic()

    async def consume(track: Any) -> None:
        try:
            while True:
                frame = await track.recv()
                got[track.kind] += 1
                if track.kind == "video":
                    if got["first_frame_s"] is None:
                        got["first_frame_s"] = time.monotonic() - start
                    img = frame.to_ndarray(format="rgb24")
                    got["sizes"].add((img.shape[1], img.shape[0]))
                    got["colours"].append(img[img.shape[0] // 4 : -img.shape[0] // 4, img.shape[1] // 4 : -img.shape[1] // 4].reshape(-1, 3).mean(0))
        except MediaStreamError:
            return

    pc.on("track", lambda track: tasks.append(asyncio.ensure_future(consume(track))))
    await pc.setLocalDescription(await pc.createOffer())
    status, body, location = await sdp_post(base + "/whep", pc.localDescription.sdp, token)
    got.update(status=status, body=body, location=location)
    if status == 201:
        await pc.setRemoteDescription(RTCSessionDescription(body, "answer"))
        await asyncio.sleep(seconds)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with aiohttp.ClientSession() as s, s.delete(base + location, headers=headers) as r:
            got["delete_status"] = r.status
    for task in tasks:
        task.cancel()
    await pc.close()
    return got
