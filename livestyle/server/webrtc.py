"""WebRTC sessions: answer an SDP offer, feed the hub from publishers, serve viewers from it.

One :class:`SessionManager` per server. An offer whose video m-line sends (``sendrecv`` or
``sendonly``) makes a *publisher* session: its decoded video and audio go to the
:class:`~livestyle.server.hub.StreamHub`; if it also receives (the web page), the styled output
comes back on the same connection. An offer that only receives (``recvonly``: the viewer page, a
WHEP player) makes a *viewer* session.

Output video is encoded once by the WebRTC sink thread; each viewer's :class:`EncodedVideoTrack`
hands the shared ``av.Packet``s to aiortc, which only packetizes them (no per-viewer encode, and
the configured codec and bitrate hold). Audio from the active publisher is re-sent through a
:class:`DelayedAudioTrack` that holds each audio frame for the measured video delay.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc import sdp as aiortc_sdp
from aiortc.exceptions import InvalidStateError, OperationError
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from livestyle.errors import ServerError
from livestyle.server.hub import StreamHub
from livestyle.server.relay import Closed

__all__ = [
    "DelayedAudioTrack",
    "EncodedVideoTrack",
    "OfferError",
    "Session",
    "SessionManager",
    "validate_offer",
]

log = logging.getLogger(__name__)

Role = Literal["publisher", "viewer"]
MAX_SDP_BYTES = 64 * 1024
CONNECT_TIMEOUT_S = 6.0
"""Seconds an answered offer may take to connect before its slot is freed (loopback ICE takes ~0.3 s)."""
SILENCE_TIMEOUT_S = 4.0
"""A connected publisher that sends no video for this long is dropped: its browser crashed, its
network went away or it froze. ICE consent would notice only after ~30 s, and until then the
publisher slot stays taken (409 for the reload that follows a crash)."""
STATS_INTERVAL_S = 1.0


class OfferError(ServerError):
    """An SDP offer we cannot answer (answered with HTTP 400 and this message)."""


def validate_offer(sdp: str, *, want: Literal["any", "publish", "view"] = "any") -> tuple[Role, Any]:
    """Parse an SDP offer and decide the session's role.

    Returns ``(role, parsed)`` where ``parsed`` is an ``aiortc.sdp.SessionDescription``.
    Raises :class:`OfferError` with a one-line reason for anything malformed or unusable.
    """
    if not isinstance(sdp, str) or not sdp.strip():
        raise OfferError("empty SDP offer: send the offer's SDP text")
    if len(sdp.encode()) > MAX_SDP_BYTES:
        raise OfferError(f"SDP offer larger than {MAX_SDP_BYTES} bytes")
    if not sdp.lstrip().startswith("v=0"):
        raise OfferError("malformed SDP offer: it must start with 'v=0'")
    try:
        parsed = aiortc_sdp.SessionDescription.parse(sdp)
    except Exception as exc:  # aiortc raises ValueError/KeyError/IndexError on bad lines
        raise OfferError(f"malformed SDP offer: {type(exc).__name__}: {exc}") from None
    videos = [m for m in parsed.media if m.kind == "video"]
    if not videos:
        raise OfferError("SDP offer has no video m-line: offer a video transceiver")
    for m in parsed.media:
        if m.kind in ("audio", "video") and (not m.ice.usernameFragment or not m.dtls or not m.dtls.fingerprints):
            raise OfferError(f"SDP offer's {m.kind} m-line lacks ICE credentials or a DTLS fingerprint")
    direction = videos[0].direction or "sendrecv"
    if direction == "inactive":
        raise OfferError("SDP offer's video is inactive: offer sendrecv, sendonly or recvonly")
    if want == "publish":
        if direction not in ("sendonly", "sendrecv"):
            raise OfferError("WHIP offers must send video (sendonly), got " + direction)
        return "publisher", parsed
    if want == "view":
        return "viewer", parsed
    return ("publisher" if direction in ("sendonly", "sendrecv") else "viewer"), parsed


class EncodedVideoTrack(MediaStreamTrack):
    """Pre-encoded output packets from the hub's broadcast; waits for a keyframe to start.

    A reader that fell behind (the broadcast skipped frames for it) waits for the next keyframe
    and asks the encoder for one, since a VP8/H.264 decoder cannot use frames whose references
    it never got.
    """

    kind = "video"

    def __init__(self, hub: StreamHub) -> None:
        super().__init__()
        if hub.video_out is None:
            raise ServerError("the stream hub is not attached to a running server")
        self._hub = hub
        self._sub = hub.video_out.subscribe()
        self._need_keyframe = True
        hub.request_keyframe()

    async def recv(self) -> Any:
        while True:
            skipped = self._sub.skipped
            try:
                item = await self._sub.next()
            except Closed:
                self.stop()
                raise MediaStreamError from None
            if self._sub.skipped != skipped and not item.keyframe:
                self._need_keyframe = True
                self._hub.request_keyframe()
            if self._need_keyframe and not item.keyframe:
                continue
            self._need_keyframe = False
            return item.packet

    def stop(self) -> None:
        self._sub.close()
        super().stop()

class DelayedAudioTrack(MediaStreamTrack):
    """The active publisher's audio, each frame held until ``arrival + hub.video_delay``."""

    kind = "audio"

    def __init__(self, hub: StreamHub, max_frames: int = 400) -> None:
        super().__init__()
        self._hub = hub
        self._queue: collections.deque[tuple[Any, float]] = collections.deque(maxlen=max_frames)
        self._ready = asyncio.Event()
        hub.add_audio_listener(self._push)

    def _push(self, frame: Any, arrival: float) -> None:
        self._queue.append((frame, arrival))
        self._ready.set()

    async def recv(self) -> Any:
        while not self._queue:
            if self.readyState != "live":
                raise MediaStreamError
            self._ready.clear()
            await self._ready.wait()
        frame, arrival = self._queue.popleft()
        wait = arrival + self._hub.video_delay - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        return frame

    def stop(self) -> None:
        self._hub.remove_audio_listener(self._push)
        self._ready.set()
        super().stop()


@dataclass
class Session:
    """One peer connection and the tasks that move its media."""

    id: str
    role: Role
    pc: Any
    created: float = field(default_factory=time.monotonic)
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    connected: bool = False
    last_media: float = 0.0
    """Monotonic time of the last video frame received (publishers), or of connecting."""


class SessionManager:
    """Creates, tracks and closes the server's peer connections."""

    def __init__(self, hub: StreamHub, *, connect_timeout: float = CONNECT_TIMEOUT_S,
                 silence_timeout: float = SILENCE_TIMEOUT_S) -> None:
        self.hub = hub
        self.connect_timeout = connect_timeout
        self.silence_timeout = silence_timeout
        self.sessions: dict[str, Session] = {}

    def count(self, role: Role | None = None) -> int:
        return sum(1 for s in self.sessions.values() if role is None or s.role == role)

    async def create(self, offer_sdp: str, *, want: Literal["any", "publish", "view"] = "any") -> tuple[Session, str]:
        """Answer ``offer_sdp``; returns the session and the answer SDP.

        Raises :class:`OfferError` (bad offer) or :class:`~livestyle.server.hub.SessionLimitError`.
        """
        role, parsed = validate_offer(offer_sdp, want=want)
        sid = uuid.uuid4().hex
        if role == "publisher":
            self.hub.add_publisher(sid)
        else:
            self.hub.add_viewer(sid)
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        session = Session(sid, role, pc)
        self.sessions[sid] = session
        try:
            mime = "video/" + ("VP8" if self.hub.codec == "vp8" else "H264")
            caps = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType in (mime, "video/rtx")]
            for media in parsed.media:
                if media.kind not in ("audio", "video"):
                    continue
                transceiver = pc.addTransceiver(media.kind, direction="sendrecv")
                offer_receives = (media.direction or "sendrecv") in ("sendrecv", "recvonly")
                if media.kind == "video":
                    if offer_receives:  # a publish-only offer (OBS) may send any codec aiortc decodes
                        transceiver.setCodecPreferences(caps)
                        transceiver.sender.replaceTrack(EncodedVideoTrack(self.hub))
                        transceiver.sender._send_keyframe = self.hub.request_keyframe  # PLI/FIR -> shared encoder
                elif offer_receives:
                    transceiver.sender.replaceTrack(DelayedAudioTrack(self.hub))
            self._wire(session)
            try:
                await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
            except OperationError as exc:
                raise OfferError(
                    f"cannot use the offer ({exc}); the server sends {self.hub.codec.upper()} video "
                    "(server.codec) and needs a client that offers it"
                ) from None
            except (ValueError, InvalidStateError) as exc:
                raise OfferError(f"cannot use the offer: {exc}") from None
            answer = await pc.createAnswer()
            await pc.setLocalDescription(answer)
        except BaseException:
            await self.close(sid)
            raise
        session.tasks.add(asyncio.ensure_future(self._watchdog(session)))
        log.info("session %s (%s) created", sid, role)
        return session, pc.localDescription.sdp

    def _wire(self, session: Session) -> None:
        pc = session.pc

        @pc.on("track")
        def on_track(track: Any) -> None:
            if session.role == "publisher":
                session.tasks.add(asyncio.ensure_future(self._read(session, track)))

        @pc.on("datachannel")
        def on_datachannel(channel: Any) -> None:
            if channel.label == "stats":
                session.tasks.add(asyncio.ensure_future(self._push_stats(session, channel)))

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            state = pc.connectionState
            if state == "connected":
                session.connected = True
                session.last_media = time.monotonic()
                if session.role == "publisher":
                    session.tasks.add(asyncio.ensure_future(self._silence_watch(session)))
            elif state in ("failed", "closed"):
                await self.close(session.id)

    async def _read(self, session: Session, track: Any) -> None:
        """Move one publisher track's decoded frames into the hub (latest wins for video)."""
        video = track.kind == "video"
        put = self.hub.put_ingest if video else self.hub.put_audio
        try:
            while True:
                frame = await track.recv()
                now = time.monotonic()
                if video:
                    session.last_media = now
                put(session.id, frame, now)
        except MediaStreamError:
            return

    async def _push_stats(self, session: Session, channel: Any) -> None:
        while channel.readyState in ("connecting", "open") and session.id in self.sessions:
            if channel.readyState == "open":
                channel.send(json.dumps({"type": "stats", **self.hub.stats()}))
            await asyncio.sleep(STATS_INTERVAL_S)

    async def _watchdog(self, session: Session) -> None:
        """Free the slot of a session that never connects (a bogus or abandoned offer)."""
        await asyncio.sleep(self.connect_timeout)
        if not session.connected:
            log.info("session %s never connected; closing it", session.id)
            await self.close(session.id)

    async def _silence_watch(self, session: Session) -> None:
        """Drop a connected publisher that sent no video for ``silence_timeout`` seconds."""
        while session.id in self.sessions:
            idle = time.monotonic() - session.last_media
            if idle >= self.silence_timeout:
                log.info("publisher %s sent no video for %.1f s; closing it", session.id, idle)
                await self.close(session.id)
                return
            await asyncio.sleep(min(0.5, self.silence_timeout - idle + 0.01))

    async def close(self, sid: str) -> bool:
        """Close session ``sid``; False if there was none."""
        session = self.sessions.pop(sid, None)
        self.hub.remove_session(sid)
        if session is None:
            return False
        current = asyncio.current_task()
        for task in session.tasks:
            if task is not current:
                task.cancel()
        for sender in session.pc.getSenders():
            if sender.track is not None:
                sender.track.stop()
        await session.pc.close()
        log.info("session %s (%s) closed", sid, session.role)
        return True

    async def close_all(self) -> None:
        for sid in list(self.sessions):
            await self.close(sid)
