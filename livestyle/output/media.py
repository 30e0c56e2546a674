"""Recordings (``.mp4``, ``.mkv``, ...) and stream URLs (``rtmp://`` as FLV, ``udp://`` and
``tcp://`` as MPEG-TS) through PyAV's H.264 encoder with low-latency settings.

Timing comes from the frames: a frame's pts (rescaled to the encoder's time base, starting at 0)
is its presentation time in the output, so dropped frames leave gaps rather than speeding the
video up. ``close()`` drains the encoder and writes the trailer, so a recording plays up to its
last frame.

Crash safety (recordings): ``.mp4``/``.m4v``/``.mov`` are written as fragmented MP4 by default
(``movflags=frag_keyframe+empty_moov+default_base_moof``, a fragment at each keyframe, i.e. about
every second, ``frag_duration`` as a ceiling): what was written before a SIGKILL, an OOM kill, a
power cut or a full disk plays, up to the last complete fragment. ``recording.mp4=faststart``
(``--set recording.mp4=faststart``) writes a classic file instead, its index moved to the front
when the recording ends cleanly — and lost if it does not. Every recording flushes each packet
to the OS (``flush_packets``), and Matroska closes a cluster every ``fragment_s`` seconds, so
mkv/ts/flv lose at most about a second too. A write error (disk full, file-size limit) fails this
sink alone with one line; the runner closes it and the stream and other sinks go on.

Audio (optional, :class:`~livestyle.output.audio.AudioTrack`): when the runner calls
``open_audio`` before ``open``, an AAC stream is added (every container in the tables takes AAC;
a source's own codec is never copied, its decoded samples are re-encoded). Audio chunks carry pts
on the video frames' timeline and are encoded only once the video has reached their time, so in
a recording both streams end together and in a live stream each audio packet leaves with the
video frame of the same time: audio is held back by the video's delay, measured per frame from
the pts rather than guessed.
"""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from livestyle.errors import SinkError
from livestyle.optional import require
from livestyle.paths import check_path
from livestyle.output.audio import AudioTrack
from livestyle.engine.frames import AudioChunk, AudioInfo, Frame, StreamInfo

__all__ = ["MP4_MODES", "RECORDING_FORMATS", "STREAM_FORMATS", "MediaSink", "RecordingOptions", "encoder_options",
           "recording_container_options"]

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


MP4_MODES: tuple[str, ...] = ("fragmented", "faststart")


@dataclass(frozen=True)
class RecordingOptions:
    """How recordings are written (the ``recording`` config section).

    Attributes:
        mp4: ``fragmented`` (playable after a crash) or ``faststart`` (classic file, index at the
            front after a clean end; nothing playable after a crash).
        fragment_s: seconds per MP4 fragment / Matroska cluster at most.
    """

    mp4: str = "fragmented"
    fragment_s: float = 1.0

    def __post_init__(self) -> None:
        if self.mp4 not in MP4_MODES:
            raise SinkError(f"recording.mp4 must be one of {', '.join(MP4_MODES)}, got {self.mp4!r}")
        if not 0.1 <= self.fragment_s <= 60:
            raise SinkError(f"recording.fragment_s must be in [0.1, 60] seconds, got {self.fragment_s}")

    @classmethod
    def from_config(cls, section: Any) -> RecordingOptions:
        """From any object with ``mp4`` and ``fragment_s`` (``livestyle.config.RecordingConfig``)."""
        return cls(mp4=section.mp4, fragment_s=float(section.fragment_s))


def recording_container_options(container_format: str, options: RecordingOptions) -> dict[str, str]:
    """Muxer options that keep a recording in ``container_format`` playable after a crash."""
    out = {"flush_packets": "1"}
    if container_format in ("mp4", "mov"):
        if options.mp4 == "fragmented":
            out["movflags"] = "+frag_keyframe+empty_moov+default_base_moof"
            out["frag_duration"] = str(int(options.fragment_s * 1_000_000))
        else:
            out["movflags"] = "+faststart"
    elif container_format == "matroska":
        out["cluster_time_limit"] = str(int(options.fragment_s * 1000))
    return out


def encoder_options(fps: float) -> dict[str, str]:
    """libx264 settings that emit each frame's packet at once (measured here: without
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
        recording: how a recording is made crash-safe (see the module docstring).
    """

    def __init__(
        self,
        target: str,
        container_format: str,
        *,
        fps: float | None = None,
        live: bool = False,
        recording: RecordingOptions | None = None,
    ) -> None:
        self.name = target
        if not live:
            check_path(target, SinkError, "sink path")
        self._target = _with_udp_packet_size(target)
        self._format = container_format
        self._fps = fps
        self._live = live
        self._recording = recording or RecordingOptions()
        self._lock = threading.Lock()
        self._container: Any = None
        self._stream: Any = None
        self._time_base = Fraction(1, 90000)
        self._first_seconds: Fraction | None = None
        self._last_pts = -1
        self._failed = False
        self._audio_info: AudioInfo | None = None
        self._audio: AudioTrack | None = None
        self._frame_seconds = 0.0
        self._file_id: tuple[int, int] | None = None  # (device, inode) of the recording once open
        self.frames_written = 0

    @property
    def path(self) -> str | None:
        """The file written (None for a stream URL)."""
        return None if self._live else self._target

    def open_audio(self, info: AudioInfo) -> bool:
        """Add an AAC audio stream for audio described by ``info``; call before :meth:`open`."""
        if self._container is not None:
            raise SinkError(f"{self.name}: open_audio() must come before open()")
        self._audio_info = info
        return True

    def open(self, info: StreamInfo) -> None:
        """Create the file (or connect) and write the header; SinkError when that fails."""
        av = require("av", SinkError)
        if not self._live:
            _check_writable(self._target)
        fps = self._fps or info.fps
        container_options = {} if self._live else recording_container_options(self._format, self._recording)
        if self._live:
            container_options["flush_packets"] = "1"
        if self._format == "mpegts":
            container_options["max_delay"] = "0"
        if self._live and self._audio_info is not None:
            # audio is already held until its video is written; the muxer need not wait longer
            container_options["max_interleave_delta"] = "500000"
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
            audio = AudioTrack(container, self._audio_info) if self._audio_info else None
            container.start_encoding()
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            _close_quietly(container)
            raise SinkError(f"cannot open {self.name}: {_reason(exc)}") from exc
        self._time_base = info.time_base
        self._frame_seconds = 1.0 / fps
        self._container, self._stream, self._audio = container, stream, audio
        self._file_id = None if self._live else _file_id(self._target)

    def write(self, frame: Frame) -> None:
        """Encode one frame (blocks for the encode and, for streams, the network write)."""
        av = require("av", SinkError)
        with self._lock:
            if self._container is None:
                raise SinkError(f"{self.name}: write() after close() or before open()")
            vframe = av.VideoFrame.from_ndarray(frame.image, format="rgb24")
            vframe.pts = self._pts(frame)
            vframe.time_base = self._time_base
            try:
                self._container.mux(self._stream.encode(vframe))
                if self._audio is not None:
                    seconds = float(vframe.pts * self._time_base)
                    if self.frames_written == 0:
                        self._audio.set_origin(float(self._first_seconds or 0))
                    self._audio.advance(seconds + self._frame_seconds)
            except (av.error.FFmpegError, OSError) as exc:
                self._failed = True
                if self._live:
                    raise SinkError(
                        f"{self.name}: the receiver went away ({_reason(exc)})"
                    ) from exc
                raise SinkError(f"cannot write {self.name}: {_reason(exc)}") from exc
            self.frames_written += 1

    def write_audio(self, chunk: AudioChunk) -> None:
        """Queue audio; it is encoded as the video reaches its time (see the module docstring).

        Chunks that come before :meth:`open` or after :meth:`close` are ignored (the runner's
        audio thread may race the sink's end)."""
        av = require("av", SinkError)
        with self._lock:
            if self._container is None or self._audio is None or self._failed:
                return
            try:
                self._audio.add(chunk)
            except (av.error.FFmpegError, OSError) as exc:
                self._failed = True
                if self._live:
                    raise SinkError(f"{self.name}: the receiver went away ({_reason(exc)})") from exc
                raise SinkError(f"cannot write audio to {self.name}: {_reason(exc)}") from exc

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
        av = require("av", SinkError)
        with self._lock:
            container, self._container = self._container, None
            if container is None:
                return
            try:
                if not self._failed:
                    if self._audio is not None:
                        self._audio.finish()
                    container.mux(self._stream.encode(None))
                container.close()
            except (av.error.FFmpegError, OSError) as exc:
                _close_quietly(container)
                if not self._live and not self._failed:
                    raise SinkError(f"cannot finish {self.name}: {_reason(exc)}") from exc
            if self._file_id is not None and _file_id(self._target) != self._file_id:
                # written to an unlinked file: the run must not report frames written to nothing
                raise SinkError(f"{self.name} was deleted (or its folder) while recording: "
                                f"the {self.frames_written} frames written are lost")


def _check_writable(path: str) -> None:
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise SinkError(f"cannot record to {path}: it is a directory")
    if not parent.is_dir():
        raise SinkError(f"cannot record to {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise SinkError(f"cannot record to {path}: permission denied")


def _file_id(path: str) -> tuple[int, int] | None:
    """``(st_dev, st_ino)`` of ``path``; None when it no longer exists."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


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
