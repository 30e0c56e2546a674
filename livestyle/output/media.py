"""Recordings (``.mp4``, ``.mkv``, ...) and stream URLs (``rtmp://`` as FLV, ``udp://`` and
``tcp://`` as MPEG-TS) through PyAV's H.264 encoder with low-latency settings.

Timing comes from the frames: a frame's pts (rescaled to the encoder's time base, starting at 0)
is its presentation time in the output, so dropped frames leave gaps rather than speeding the
video up. ``close()`` drains the encoder and writes the trailer, so a recording plays up to its
last frame.
"""

from __future__ import annotations

import contextlib
import os
import threading
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from livestyle.errors import SinkError
from livestyle.output._extras import require
from livestyle.pipeline.frames import Frame, StreamInfo

__all__ = ["MediaSink", "RECORDING_FORMATS", "STREAM_FORMATS", "encoder_options"]

RECORDING_FORMATS = {
    ".mp4": "mp4",
    ".m4v": "mp4",
    ".mov": "mov",
    ".mkv": "matroska",
    ".ts": "mpegts",
    ".flv": "flv",
}
"""File extension -> FFmpeg muxer."""

STREAM_FORMATS = {"rtmp": "flv", "rtmps": "flv", "udp": "mpegts", "tcp": "mpegts"}
"""URL scheme -> FFmpeg muxer."""


def encoder_options(fps: float) -> dict[str, str]:
    """libx264 settings that emit each frame's packet at once (IO_NOTES.md: without
    ``zerolatency`` the first packet waits 41 frames) with one keyframe per second."""
    return {
        "preset": "ultrafast",
        "tune": "zerolatency",
        "bf": "0",
        "g": str(max(1, round(fps))),
    }


class MediaSink:
    """Encodes frames to a file or stream URL.

    Args:
        target: a file path or URL (``udp://`` URLs get ``pkt_size=1316`` unless given).
        container_format: FFmpeg muxer name (``mp4``, ``matroska``, ``flv``, ``mpegts``, ...).
        fps: nominal rate written into the stream (GOP length too); None: the source's rate.
        live: a stream rather than a file: packets are flushed at once and a failed write
            means the receiver went away.
    """

    def __init__(
        self, target: str, container_format: str, *, fps: float | None = None, live: bool = False
    ) -> None:
        self.name = target
        self._target = _with_udp_packet_size(target)
        self._format = container_format
        self._fps = fps
        self._live = live
        self._lock = threading.Lock()
        self._container: Any = None
        self._stream: Any = None
        self._time_base = Fraction(1, 90000)
        self._first_seconds: Fraction | None = None
        self._last_pts = -1
        self._failed = False
        self.frames_written = 0

    def open(self, info: StreamInfo) -> None:
        """Create the file (or connect) and write the header; SinkError when that fails."""
        av = require("av")
        if not self._live:
            _check_writable(self._target)
        fps = self._fps or info.fps
        container_options = {}
        if self._live:
            container_options["flush_packets"] = "1"
        if self._format == "mpegts":
            container_options["max_delay"] = "0"
        try:
            container = av.open(self._target, "w", format=self._format,
                                container_options=container_options)
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            raise SinkError(f"cannot open {self.name}: {_reason(exc)}") from exc
        try:
            rate = Fraction(fps).limit_denominator(1001)
            stream = container.add_stream("libx264", rate=rate, options=encoder_options(fps))
            stream.width = info.width - info.width % 2  # yuv420p needs even sizes
            stream.height = info.height - info.height % 2
            stream.pix_fmt = "yuv420p"
            stream.codec_context.time_base = info.time_base
            container.start_encoding()
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            _close_quietly(container)
            raise SinkError(f"cannot open {self.name}: {_reason(exc)}") from exc
        self._time_base = info.time_base
        self._container, self._stream = container, stream

    def write(self, frame: Frame) -> None:
        """Encode one frame (blocks for the encode and, for streams, the network write)."""
        av = require("av")
        with self._lock:
            if self._container is None:
                raise SinkError(f"{self.name}: write() after close() or before open()")
            vframe = av.VideoFrame.from_ndarray(frame.image, format="rgb24")
            vframe.pts = self._pts(frame)
            vframe.time_base = self._time_base
            try:
                self._container.mux(self._stream.encode(vframe))
            except (av.error.FFmpegError, OSError) as exc:
                self._failed = True
                if self._live:
                    raise SinkError(
                        f"{self.name}: the receiver went away ({_reason(exc)})"
                    ) from exc
                raise SinkError(f"cannot write {self.name}: {_reason(exc)}") from exc
            self.frames_written += 1

    def _pts(self, frame: Frame) -> int:
        """Frame pts in the encoder's time base, from 0, strictly increasing."""
        if frame.time_base == self._time_base:
            if self._first_seconds is None:
                self._first_seconds = frame.pts * frame.time_base
            pts = frame.pts - round(self._first_seconds / self._time_base)
        else:
            seconds = frame.pts * frame.time_base
            if self._first_seconds is None:
                self._first_seconds = seconds
            pts = round((seconds - self._first_seconds) / self._time_base)
        pts = max(pts, self._last_pts + 1)
        self._last_pts = pts
        return pts

    def close(self) -> None:
        """Drain the encoder and finish the file; idempotent and safe from any thread (waits
        for a write in progress)."""
        av = require("av")
        with self._lock:
            container, self._container = self._container, None
            if container is None:
                return
            try:
                if not self._failed:
                    container.mux(self._stream.encode(None))
                container.close()
            except (av.error.FFmpegError, OSError) as exc:
                _close_quietly(container)
                if not self._live and not self._failed:
                    raise SinkError(f"cannot finish {self.name}: {_reason(exc)}") from exc


def _check_writable(path: str) -> None:
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise SinkError(f"cannot record to {path}: it is a directory")
    if not parent.is_dir():
        raise SinkError(f"cannot record to {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise SinkError(f"cannot record to {path}: permission denied")


def _with_udp_packet_size(target: str) -> str:
    parts = urlsplit(target)
    if parts.scheme != "udp" or "pkt_size" in parts.query:
        return target
    return target + ("&" if parts.query else "?") + "pkt_size=1316"


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def _close_quietly(container: Any) -> None:
    with contextlib.suppress(Exception):  # already reporting the first error
        container.close()
