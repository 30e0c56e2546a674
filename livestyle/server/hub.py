"""The meeting point of one stream: publishers' frames in, encoded output and audio out.

A :class:`StreamHub` is shared by the web server (event loop thread) and the runner's source and
sink threads:

- publishers (the page's camera, a WHIP client) put decoded ``av.VideoFrame``s into
  :attr:`StreamHub.ingest`, a latest-wins :class:`~livestyle.server.relay.ThreadSlot` that the
  WebRTC source thread reads; only the *active* publisher (the oldest still connected) feeds it;
- the WebRTC sink thread encodes each styled frame once and publishes the packet on
  :attr:`StreamHub.video_out`, a :class:`~livestyle.server.relay.Broadcast` every viewer's track
  reads (one encode, many viewers);
- the sink reports each frame's delay (output time minus capture time) so that the publisher's
  audio can be delayed by the measured amount and stay in sync with the styled video.

One hub per process is the default (:func:`get_hub`); the server and ``open_source('webrtc')`` /
``open_sink('webrtc')`` all find it there.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from livestyle.errors import ServerError
from livestyle.server.relay import Broadcast, ThreadSlot

__all__ = ["CODECS", "EncodedVideo", "IngestFrame", "SessionLimitError", "StreamHub", "get_hub", "set_hub"]

CODECS: tuple[str, ...] = ("vp8", "h264")
"""Video codecs the output encoder speaks (also the names ``server.codec`` accepts)."""


class SessionLimitError(ServerError):
    """Too many sessions of one kind; ``status`` is the HTTP status to answer (409 or 503)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class IngestFrame:
    """A decoded publisher frame (``av.VideoFrame``, any pixel format) and its arrival time.

    ``arrival`` is ``time.monotonic()`` when the frame left the WebRTC decoder; it becomes the
    frame's capture time inside livestyle.
    """

    frame: Any
    arrival: float


@dataclass(frozen=True, slots=True)
class EncodedVideo:
    """One encoded output frame shared by every viewer.

    ``packet`` is an ``av.Packet`` (VP8 frame or H.264 Annex B access unit) with pts in 1/90000 s.
    """

    packet: Any
    keyframe: bool
    capture_time: float
    width: int
    height: int


class StreamHub:
    """Shared state of one stream between the web server and the runner's threads."""

    def __init__(
        self,
        *,
        max_publishers: int = 1,
        max_viewers: int = 16,
        codec: str = "vp8",
        bitrate: int = 2_000_000,
    ) -> None:
        if codec not in CODECS:
            raise ServerError(f"unknown codec {codec!r}: use one of {', '.join(CODECS)}")
        if max_publishers < 1 or max_viewers < 1:
            raise ServerError("max_publishers and max_viewers must be at least 1")
        if bitrate < 50_000:
            raise ServerError(f"bitrate {bitrate} b/s is too low: use at least 50000")
        self.max_publishers = max_publishers
        self.max_viewers = max_viewers
        self.codec = codec
        self.bitrate = bitrate
        self.ingest: ThreadSlot[IngestFrame] = ThreadSlot()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.video_out: Broadcast[EncodedVideo] | None = None
        self._lock = threading.Lock()
        self._publishers: list[str] = []
        self._viewers: set[str] = set()
        self._keyframe = threading.Event()
        self._delay: float | None = None
        self._audio_listeners: set[Callable[[Any, float], None]] = set()
        self.frames_in = 0
        self.frames_out = 0
        self.last_size: tuple[int, int] | None = None

    # --- lifecycle -----------------------------------------------------------------------
    def attach_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Bind the hub to the server's event loop (called once the server runs)."""
        self.loop = loop
        self.video_out = Broadcast(loop)

    def detach_loop(self) -> None:
        if self.video_out is not None:
            self.video_out.close()
        self.loop, self.video_out = None, None

    # --- sessions -------------------------------------------------------------------------
    def add_publisher(self, session_id: str) -> None:
        """Register a publishing session; :class:`SessionLimitError` (409) past ``max_publishers``."""
        with self._lock:
            if len(self._publishers) >= self.max_publishers:
                raise SessionLimitError(
                    f"{len(self._publishers)} publisher(s) already connected (server.max_publishers="
                    f"{self.max_publishers}): stop one or raise the limit",
                    409,
                )
            self._publishers.append(session_id)

    def add_viewer(self, session_id: str) -> None:
        """Register a viewing session; :class:`SessionLimitError` (503) past ``max_viewers``."""
        with self._lock:
            if len(self._viewers) >= self.max_viewers:
                raise SessionLimitError(
                    f"{len(self._viewers)} viewers already connected (max {self.max_viewers}): try later", 503
                )
            self._viewers.add(session_id)

    def remove_session(self, session_id: str) -> None:
        with self._lock:
            if session_id in self._publishers:
                self._publishers.remove(session_id)
            self._viewers.discard(session_id)

    def is_active_publisher(self, session_id: str) -> bool:
        """Whether ``session_id`` is the publisher whose frames feed the pipeline (the oldest)."""
        with self._lock:
            return bool(self._publishers) and self._publishers[0] == session_id

    @property
    def publisher_count(self) -> int:
        with self._lock:
            return len(self._publishers)

    @property
    def viewer_count(self) -> int:
        with self._lock:
            return len(self._viewers)

    # --- video ----------------------------------------------------------------------------
    def put_ingest(self, session_id: str, frame: Any, arrival: float) -> None:
        """A publisher's decoded frame; ignored unless ``session_id`` is the active publisher."""
        if self.is_active_publisher(session_id):
            self.frames_in += 1
            self.ingest.put(IngestFrame(frame, arrival))

    def wants_output(self) -> bool:
        """Whether anyone watches (the sink skips encoding when nobody does)."""
        out = self.video_out
        return out is not None and out.subscriber_count > 0

    def publish_output(self, item: EncodedVideo) -> None:
        out = self.video_out
        if out is not None:
            self.frames_out += 1
            self.last_size = (item.width, item.height)
            out.publish(item)

    def request_keyframe(self) -> None:
        """Ask the output encoder for a keyframe (a viewer joined or lost packets)."""
        self._keyframe.set()

    def take_keyframe_request(self) -> bool:
        """True once per request (the encoder calls this before each frame)."""
        if self._keyframe.is_set():
            self._keyframe.clear()
            return True
        return False

    # --- audio sync -----------------------------------------------------------------------
    def record_delay(self, capture_time: float, now: float | None = None) -> None:
        """Fold one output frame's delay (``now - capture_time``, seconds) into the running estimate."""
        delay = (time.monotonic() if now is None else now) - capture_time
        if delay < 0:
            return
        with self._lock:
            self._delay = delay if self._delay is None else 0.9 * self._delay + 0.1 * delay

    @property
    def video_delay(self) -> float:
        """Measured seconds from a frame's arrival to its encoded output (0 before any frame)."""
        with self._lock:
            return self._delay or 0.0

    def add_audio_listener(self, fn: Callable[[Any, float], None]) -> None:
        """``fn(audio_frame, arrival)`` is called on the loop for each active publisher audio frame.

        Listeners are added and removed from other threads (the runner's source), hence the lock.
        """
        with self._lock:
            self._audio_listeners.add(fn)

    def remove_audio_listener(self, fn: Callable[[Any, float], None]) -> None:
        with self._lock:
            self._audio_listeners.discard(fn)

    def put_audio(self, session_id: str, frame: Any, arrival: float) -> None:
        if self.is_active_publisher(session_id):
            with self._lock:
                listeners = list(self._audio_listeners)
            for fn in listeners:
                fn(frame, arrival)

    def stats(self) -> dict[str, Any]:
        """Counters for the overlay and ``/api/stats``."""
        return {
            "publishers": self.publisher_count,
            "viewers": self.viewer_count,
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "ingest_dropped": self.ingest.dropped,
            "delay_ms": round(self.video_delay * 1000, 1),
            "codec": self.codec,
            "bitrate": self.bitrate,
            "output_size": list(self.last_size) if self.last_size else None,
        }


_hub: StreamHub | None = None
_hub_lock = threading.Lock()


def get_hub() -> StreamHub:
    """The process-wide hub (created with defaults on first use)."""
    global _hub
    with _hub_lock:
        if _hub is None:
            _hub = StreamHub()
        return _hub


def set_hub(hub: StreamHub | None) -> None:
    """Replace the process-wide hub (the ``serve`` command configures one; tests reset it)."""
    global _hub
    with _hub_lock:
        _hub = hub
