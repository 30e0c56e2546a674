"""The ``webrtc`` / ``whep`` sink: styled frames, encoded once, to every page and WHEP viewer.

The sink runs on the runner's sink thread: it converts each RGB frame to YUV, encodes it with
its own encoder (VP8 via libvpx or H.264 via libx264, at the configured bitrate, a keyframe every
two seconds and whenever a viewer joins or reports loss) and publishes the ``av.Packet`` on the
:class:`~livestyle.server.hub.StreamHub`'s broadcast. Viewer tracks on the event loop only
packetize the shared packets, so nothing is encoded on the event loop and ten viewers cost one
encode. When nobody watches, nothing is encoded.

Both names mean the same thing: the page and WHEP players read the same stream.
"""

from __future__ import annotations

import time
from fractions import Fraction
from typing import Any

import av
import numpy as np

from livestyle.errors import SinkError
from livestyle.engine.frames import Frame, StreamInfo
from livestyle.server.hub import CODECS, EncodedVideo, StreamHub, get_hub

__all__ = ["PacketEncoder", "WebRTCSink", "open_webrtc_sink"]

RTP_TIME_BASE = Fraction(1, 90000)


class PacketEncoder:
    """RGB ``uint8 [H, W, 3]`` frames → encoded ``av.Packet``s (pts in 1/90000 s).

    ``codec``: ``vp8`` or ``h264`` (constrained baseline, no B-frames, Annex B output as
    aiortc's H.264 packetizer expects). ``bitrate`` in bits per second, constant-rate.
    """

    def __init__(self, codec: str, bitrate: int, fps: float, *, keyframe_interval_s: float = 2.0) -> None:
        if codec not in CODECS:
            raise SinkError(f"unknown WebRTC codec {codec!r}: use one of {', '.join(CODECS)}")
        self.codec_name = codec
        self.bitrate = int(bitrate)
        self.fps = float(fps)
        self.gop = max(1, round(self.fps * keyframe_interval_s))
        self._ctx: Any = None
        self._size: tuple[int, int] | None = None

    def _open(self, width: int, height: int) -> None:
        if width % 2 or height % 2:
            raise SinkError(f"WebRTC output needs even frame sizes, got {width}x{height}")
        rate = str(self.bitrate)
        if self.codec_name == "vp8":
            ctx = av.CodecContext.create("libvpx", "w")
            ctx.options = {
                "deadline": "realtime",
                "cpu-used": "8",
                "lag-in-frames": "0",
                "minrate": rate,
                "maxrate": rate,
                "bufsize": rate,
                "undershoot-pct": "100",
                "overshoot-pct": "15",
                "static-thresh": "1",
                "partitions": "0",
                "error-resilient": "1",
            }
            ctx.qmin, ctx.qmax = 2, 56
        else:
            ctx = av.CodecContext.create("libx264", "w")
            ctx.options = {
                "preset": "ultrafast",
                "tune": "zerolatency",
                "profile": "baseline",
                "level": "31" if width * height <= 1280 * 720 else "40",
                "bf": "0",
                "maxrate": rate,
                "bufsize": str(self.bitrate // 2),
                "x264-params": "repeat-headers=1",
            }
        ctx.width, ctx.height = width, height
        ctx.pix_fmt = "yuv420p"
        ctx.bit_rate = self.bitrate
        ctx.gop_size = self.gop
        ctx.time_base = RTP_TIME_BASE
        ctx.framerate = Fraction(self.fps).limit_denominator(1001)
        ctx.thread_count = 1 if width * height <= 640 * 480 else 2
        try:
            ctx.open()
        except av.error.FFmpegError as exc:
            raise SinkError(f"cannot open the {self.codec_name} encoder at {width}x{height}: {exc}") from None
        self._ctx, self._size = ctx, (width, height)

    def encode(self, image: np.ndarray, pts: int, *, keyframe: bool = False) -> list[Any]:
        """Encode one picture (``uint8 [H, W, 3]`` RGB) shown at ``pts`` (1/90000 s).

        Returns the packets (usually one) with ``pts`` and ``time_base`` set; a size change
        restarts the encoder, whose first frame is a keyframe.
        """
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise SinkError(f"WebRTC sink needs uint8 [H, W, 3] RGB frames, got {image.dtype} {image.shape}")
        h, w = image.shape[:2]
        if self._size != (w, h):
            self._open(w, h)
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24").reformat(format="yuv420p")
        frame.pts = pts
        frame.time_base = RTP_TIME_BASE
        frame.pict_type = av.video.frame.PictureType.I if keyframe else av.video.frame.PictureType.NONE
        packets = list(self._ctx.encode(frame))
        for p in packets:
            p.time_base = RTP_TIME_BASE
            if p.pts is None:
                p.pts = pts
        return packets

    def close(self) -> None:
        self._ctx, self._size = None, None


class WebRTCSink:
    """Sink whose frames every WebRTC page and WHEP player of the hub receives."""

    def __init__(self, hub: StreamHub, *, fps: float, codec: str | None = None, bitrate: int | None = None,
                 name: str = "webrtc") -> None:
        self.name = name
        self.hub = hub
        self.encoder = PacketEncoder(codec or hub.codec, bitrate or hub.bitrate, fps)
        self.encode_seconds = 0.0
        self.frames_encoded = 0
        self.frames_unwatched = 0
        self._last_pts = -1

    def open(self, info: StreamInfo) -> None:
        if info.width % 2 or info.height % 2:
            raise SinkError(f"WebRTC output needs even frame sizes, got {info.width}x{info.height}")

    def write(self, frame: Frame) -> None:
        """Encode ``frame`` and hand it to every viewer (skipped while nobody watches)."""
        if not self.hub.wants_output():
            self.frames_unwatched += 1
            return
        pts = int(round(frame.pts * frame.time_base / RTP_TIME_BASE))
        pts = max(pts, self._last_pts + 1)
        self._last_pts = pts
        start = time.perf_counter()
        packets = self.encoder.encode(frame.image, pts, keyframe=self.hub.take_keyframe_request())
        self.encode_seconds += time.perf_counter() - start
        self.frames_encoded += 1
        for packet in packets:
            self.hub.publish_output(
                EncodedVideo(packet, bool(packet.is_keyframe), frame.capture_time, frame.width, frame.height)
            )
        self.hub.record_delay(frame.capture_time)

    def close(self) -> None:
        self.encoder.close()


def open_webrtc_sink(spec: str, *, fps: float, start_server: bool = True) -> WebRTCSink:
    """The sink for ``webrtc`` / ``whep`` on the process's hub.

    With ``start_server`` the web server starts (default settings) unless one already runs, so
    ``livestyle run --sink webrtc`` serves the page by itself.
    """
    name = spec.split(":", 1)[0].lower()
    if name not in ("webrtc", "whep"):
        raise SinkError(f"not a WebRTC sink: {spec!r} (use 'webrtc' or 'whep')")
    if start_server:
        from livestyle.server.app import ensure_server

        ensure_server(hub=get_hub())
    return WebRTCSink(get_hub(), fps=fps, name=name)
