"""A publisher whose peer goes silent (a crashed browser) is dropped within ~5 s (issue 13)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from netns import NetnsRunner
from stack import InvertGenerator, Stack
from webrtc_clients import ColourTrack, sdp_post, whip_publish

from livestyle.server.app import ServerSettings


class FreezingTrack(ColourTrack):
    """Sends ``frames`` frames, then never another: the peer connection itself stays open."""

    def __init__(self, frames: int) -> None:
        super().__init__()
        self.frames = frames

    async def recv(self) -> Any:
        if self.sent >= self.frames:
            await asyncio.Event().wait()  # frozen, like a crashed tab's last state
        return await super().recv()


async def crash_then_reload(url: str, sessions: Any) -> dict[str, Any]:
    pc = RTCPeerConnection()
    t = pc.addTransceiver(FreezingTrack(frames=30), direction="sendonly")
    t.setCodecPreferences([c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == "video/VP8"])
    await pc.setLocalDescription(await pc.createOffer())
    status, body, _ = await sdp_post(url + "/whip", pc.localDescription.sdp)
    assert status == 201, body
    await pc.setRemoteDescription(RTCSessionDescription(body, "answer"))
    deadline = time.monotonic() + 10
    while not sessions.count("publisher") or not any(s.last_media for s in sessions.sessions.values()):
        assert time.monotonic() < deadline, "the publisher never connected"
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)  # 30 frames sent; now silent
    silent_at = time.monotonic()
    while sessions.count("publisher") and time.monotonic() - silent_at < 20:
        await asyncio.sleep(0.1)
    dropped_after = time.monotonic() - silent_at
    reload = await whip_publish(url, seconds=0.5, audio=False)  # the reload after the crash
    await pc.close()
    return {"dropped_after": dropped_after, "reload": reload["status"]}


def test_a_silent_publisher_is_dropped_and_a_reload_just_works(netns: NetnsRunner) -> None:
    def scenario() -> dict[str, Any]:
        stack = Stack(InvertGenerator(), ServerSettings(port=0, max_publishers=1))
        try:
            return asyncio.run(crash_then_reload(stack.url, stack.server.sessions))
        finally:
            stack.close()

    result = netns.run(scenario)
    assert result["dropped_after"] <= 5.5, result  # ICE consent alone takes ~30 s
    assert result["reload"] == 201, result
