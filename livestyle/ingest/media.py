"""Anything PyAV (FFmpeg) opens: files, ``rtmp://``, ``rtsp://``, ``udp://``, ``tcp://``, ``http(s)://``.

Files (anything with a known duration) loop and are paced in real time by default; live streams
are read as they arrive with FFmpeg's low-latency input options. Frames leave as ``uint8`` RGB
``[H, W, 3]`` at one size for the whole stream: a source that changes resolution mid-stream is
scaled to the size promised by ``open()`` (the requested ``size``, else the size FFmpeg reports
after probing), in the same swscale pass that converts YUV to RGB.

Audio (the first audio stream, unless ``audio=False``) is decoded in the same demux pass when the
runner asks for it (:meth:`MediaSource.set_audio_callback`) and handed on as
:class:`~livestyle.engine.frames.AudioChunk`s whose pts lie on the video frames' timeline, loops
included (:class:`~livestyle.ingest.audio.AudioAligner`). It is never skipped the way video frames
are when ``fps`` is lowered.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from livestyle.errors import SourceError
from livestyle.ingest.audio import AudioAligner, audio_samples
from livestyle.ingest.pacing import Pacer
from livestyle.ingest.timeline import Timeline
from livestyle.optional import require
from livestyle.paths import check_path
from livestyle.engine.fit import DEFAULT_FIT, FitMode, check_fit, fit_image
from livestyle.engine.frames import AudioCallback, AudioInfo, Frame, StreamInfo

__all__ = ["MediaSource", "LIVE_SCHEMES", "low_latency_input_options"]

LIVE_SCHEMES = ("rtmp", "rtmps", "rtsp", "udp", "tcp", "srt")
"""URL schemes that are always live streams (never paced, never looped)."""

DEFAULT_FPS = 30.0


def low_latency_input_options(scheme: str) -> dict[str, str]:
    """FFmpeg demuxer/protocol options that keep probing and buffering short (PyAV/FFmpeg options probesize, analyzeduration, fflags=nobuffer)."""
    options = {"flags": "low_delay", "probesize": "32768", "analyzeduration": "100000"}
    if scheme == "udp":
        options["overrun_nonfatal"] = "1"
        options["fifo_size"] = "1000000"
    if scheme == "rtsp":
        options["rtsp_transport"] = "tcp"
    return options


class MediaSource:
    """Frames from a file or stream URL through PyAV.

    Args:
        target: a file path or URL.
        size: ``(width, height)`` of the frames handed out; None keeps the probed size.
        fit: how a picture of another shape becomes ``size``: ``crop`` (default), ``pad`` or
            ``stretch`` (:mod:`livestyle.engine.fit`).
        fps: highest frame rate handed out (frames of a faster source are skipped before any
            conversion); None keeps the source's rate.
        pace: files only: release frames in real time.
        loop: files only: start again at the end instead of stopping.
        live: None infers from the scheme (and, for http, from the duration); True treats
            ``target`` (e.g. ``pipe:N``) as a live stream.
        input_format: FFmpeg demuxer name; None probes.
        open_timeout, read_timeout: seconds without data before a live stream counts as absent
            (at open) or gone (while reading).
        audio: offer the first audio stream to the runner (False: video only).
        clock, sleep: injectable time functions (tests).
    """

    def __init__(
        self,
        target: str,
        *,
        size: tuple[int, int] | None = None,
        fps: float | None = None,
        pace: bool = True,
        loop: bool = True,
        live: bool | None = None,
        input_format: str | None = None,
        open_timeout: float = 10.0,
        read_timeout: float = 5.0,
        audio: bool = True,
        fit: FitMode = DEFAULT_FIT,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        self.name = target
        self._fit = check_fit(fit)
        self._target = target
        self._scheme = _scheme(target)
        if live:
            self._scheme = self._scheme or "pipe"
        self._size = size
        self._max_fps = fps
        self._pace, self._loop = pace, loop
        self._timeouts = (open_timeout, read_timeout)
        self._input_format = input_format
        self._clock = clock
        self._stop = threading.Event()
        self._sleep = sleep if sleep is not None else self._stop.wait
        self._lock = threading.Lock()  # held while the container is in use
        self._container: Any = None
        self._stream: Any = None
        self._info: StreamInfo | None = None
        self._want_audio = audio
        self._astream: Any = None
        self._audio_cb: AudioCallback | None = None
        self._aligner: AudioAligner | None = None
        self._resampler: Any = None
        self.live = self._scheme in LIVE_SCHEMES if live is None else live
        self.corrupt_packets = 0
        self._file_id: tuple[int, int, int] | None = None
        if not self._scheme:
            check_path(target, SourceError, "source path")
            if not Path(target).exists():
                raise SourceError(f"file not found: {target}")
            if not Path(target).is_file():  # a FIFO would wait forever for a writer, a folder fails later
                raise SourceError(f"{target} is not a regular file (a FIFO, socket, device or folder): "
                                  "give a video file, or a stream URL")

    @property
    def path(self) -> str | None:
        """The file read (None for a URL or a pipe): what no output may overwrite."""
        return None if self._scheme else self._target

    # -- opening ---------------------------------------------------------------------------

    def open(self) -> StreamInfo:
        av = require("av", SourceError)
        self._stop.clear()
        self._file_id = _file_identity(self._target) if not self._scheme else None
        self._container = self._open_container(av)
        streams = self._container.streams.video
        if not streams:
            self._container.close()
            raise SourceError(f"{self._target} has no video stream")
        stream = streams[0]
        self._stream = stream
        audio = self._container.streams.audio
        self._astream = audio[0] if audio and self._want_audio else None
        if self._scheme in ("http", "https") and self._container.duration is None:
            self.live = True
        if not self.live:  # frame threads decode faster; live streams keep slice threads (no delay)
            stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        source_fps = float(rate) if rate else DEFAULT_FPS
        fps = min(source_fps, self._max_fps) if self._max_fps else source_fps
        width, height = self._size or (stream.codec_context.width, stream.codec_context.height)
        if not width or not height:
            width, height = self._first_frame_size()
        time_base = stream.time_base or Fraction(1, 90000)
        self._info = StreamInfo(int(width), int(height), fps, time_base)
        self._source_fps = source_fps
        return self._info

    def audio_info(self) -> AudioInfo | None:
        """The audio the source offers (after ``open()``); None when it has none."""
        a = self._astream
        if a is None or not a.codec_context.sample_rate or not a.codec_context.channels:
            return None
        return AudioInfo(int(a.codec_context.sample_rate), int(a.codec_context.channels))

    def set_audio_callback(self, fn: AudioCallback | None) -> None:
        """Decode audio from now on and call ``fn(chunk)`` (on the reading thread; it may block)."""
        self._audio_cb = fn

    def _open_container(self, av: Any) -> Any:
        kwargs: dict[str, Any] = {"format": self._input_format}
        if self._scheme:
            kwargs["options"] = low_latency_input_options(self._scheme)
            kwargs["timeout"] = self._timeouts
        try:
            return av.open(self._target, **kwargs)
        except av.error.ProtocolNotFoundError as exc:
            raise SourceError(
                f"{self._scheme}:// is not supported by this FFmpeg build ({exc.strerror})"
            ) from exc
        except av.error.FileNotFoundError as exc:
            raise SourceError(f"file not found: {self._target}") from exc
        except av.error.ConnectionRefusedError as exc:
            raise SourceError(
                f"cannot connect to {self._target}: connection refused (is the sender running?)"
            ) from exc
        except av.error.ExitError as exc:
            raise SourceError(
                f"no stream at {self._target}: nothing arrived within {self._timeouts[0]:g} s "
                "(is the sender running and sending to this address?)"
            ) from exc
        except av.error.InvalidDataError as exc:
            raise SourceError(
                f"cannot read {self._target}: not a video FFmpeg understands"
            ) from exc
        except (av.error.FFmpegError, OSError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise SourceError(f"cannot open {self._target}: {reason}") from exc

    def _first_frame_size(self) -> tuple[int, int]:
        for frame in self._decoded():
            if not self.live:
                self._container.seek(0)
            return frame.width, frame.height
        raise SourceError(f"{self._target} has no decodable video frames")

    # -- reading ---------------------------------------------------------------------------

    def _decoded(self) -> Iterator[Any]:
        """Decoded ``av.VideoFrame``s until the end of the container; bad packets are skipped."""
        av = require("av", SourceError)
        astream = self._astream if self._aligner is not None else None
        streams = (self._stream, astream) if astream is not None else (self._stream,)
        for packet in self._container.demux(*streams):
            try:
                decoded = packet.decode()
            except av.error.InvalidDataError:
                self.corrupt_packets += 1
                continue
            if packet.stream is self._stream:
                yield from decoded
            else:
                for aframe in decoded:
                    self._audio(aframe)

    def _audio(self, aframe: Any) -> None:
        assert self._aligner is not None
        seconds = None if aframe.pts is None else float(aframe.pts * self._astream.time_base)
        self._aligner.audio(seconds, audio_samples(aframe, self._resampler), int(aframe.sample_rate))

    def frames(self) -> Iterator[Frame]:
        if self._info is None or self._container is None:
            raise SourceError(f"{self._target}: call open() before frames()")
        av = require("av", SourceError)
        info = self._info
        timeline = Timeline(info.time_base, self._source_fps)
        pacer = Pacer(self._clock, self._sleep)
        pace = self._pace and not self.live
        min_step = 1.0 / info.fps if self._max_fps and info.fps < self._source_fps else 0.0
        next_due = 0.0
        index = 0
        if self._audio_cb is not None and self._astream is not None:
            self._aligner = AudioAligner(info.time_base, self._audio_cb, self._clock)
            self._resampler = av.AudioResampler(format="fltp")
        passes = 0
        try:
            while True:
                emitted = False
                passes += 1
                decoded = self._decoded()
                while True:
                    with self._lock:  # close() never frees the container under a read
                        if self._container is None or self._stop.is_set():
                            return
                        vframe = self._next(decoded, av)
                        if vframe is None:
                            break
                        pts = timeline.map(vframe.pts)
                        seconds = timeline.seconds(pts)
                        if self._aligner is not None:
                            src = None if vframe.pts is None else float(vframe.pts * info.time_base)
                            self._aligner.video(src, seconds)
                        if seconds + 1e-6 < next_due:
                            continue  # faster than the requested fps: skip before converting
                        next_due = max(next_due + min_step, seconds) if min_step else 0.0
                        if (vframe.width, vframe.height) == (info.width, info.height) or self._fit == "stretch":
                            image = vframe.to_ndarray(format="rgb24", width=info.width, height=info.height)
                        else:  # keep the picture's shape (crop or pad to the working aspect)
                            image = fit_image(vframe.to_ndarray(format="rgb24"), (info.width, info.height), self._fit)
                    if pace:
                        pacer.wait(seconds)
                        if self._stop.is_set():
                            return
                    yield Frame(np.ascontiguousarray(image), pts, info.time_base,
                                self._clock(), index)
                    index += 1
                    emitted = True
                if self.live or not self._loop or self._stop.is_set():
                    return
                self._check_unchanged()
                if not emitted:
                    if passes > 1:  # it played before: the file broke since
                        raise SourceError(f"{self._target}: no frames left to loop; the file was damaged while playing")
                    return
                self._rewind(av)
                if self._aligner is not None:
                    self._aligner.segment()
        finally:
            self._release()

    def _next(self, decoded: Iterator[Any], av: Any) -> Any:
        """The next decoded frame, None at the end; read errors become SourceError."""
        try:
            return next(decoded, None)
        except av.error.ExitError as exc:
            raise SourceError(
                f"{self._target}: no data for {self._timeouts[1]:g} s; "
                "the sender stopped or is unreachable"
            ) from exc
        except av.error.FFmpegError as exc:
            raise SourceError(f"{self._target}: read failed: {exc.strerror}") from exc

    def _check_unchanged(self) -> None:
        """SourceError when the looping file was deleted, truncated or replaced since it was opened."""
        if self._file_id is None:
            return
        now = _file_identity(self._target)
        if now is None:
            raise SourceError(f"{self._target} was deleted while playing")
        if now != self._file_id:
            raise SourceError(f"{self._target} was truncated or replaced while playing (size {self._file_id[1]} -> {now[1]} bytes)")

    def _rewind(self, av: Any) -> None:
        with self._lock:
            if self._container is None:
                return
            try:
                self._container.seek(0)
            except av.error.FFmpegError:
                self._container.close()
                self._container = self._open_container(av)
                self._stream = self._container.streams.video[0]
                audio = self._container.streams.audio
                self._astream = audio[0] if audio and self._astream is not None else None

    # -- closing ---------------------------------------------------------------------------

    def _release(self) -> None:
        with self._lock:
            if self._container is not None:
                self._container.close()
                self._container = None

    def close(self) -> None:
        """Stop ``frames()``. Safe from any thread and never blocks: when the reading thread
        is inside a read, it closes the container itself once that read returns (at most
        ``read_timeout`` seconds for a silent live stream)."""
        self._stop.set()
        if self._lock.acquire(blocking=False):
            try:
                if self._container is not None:
                    self._container.close()
                    self._container = None
            finally:
                self._lock.release()


def _file_identity(path: str) -> tuple[int, int, int] | None:
    """``(inode, size, mtime_ns)`` of a local file, None if it is gone."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def _scheme(target: str) -> str:
    """The URL scheme, or '' for a local path (Windows drive letters count as paths)."""
    scheme = urlsplit(target).scheme.lower()
    return scheme if len(scheme) > 1 and "://" in target else ""
