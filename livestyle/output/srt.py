"""``srt://`` output through an FFmpeg subprocess.

The FFmpeg inside the PyAV wheels has no SRT protocol. When an ``ffmpeg`` executable with libsrt
is on PATH, PyAV encodes MPEG-TS into its stdin and it forwards the packets unchanged
(``-c copy``) over SRT; otherwise the user gets a one-line message saying what to install.
"""

from __future__ import annotations

import subprocess

from livestyle.errors import SinkError
from livestyle.optional import ffmpeg_with_srt
from livestyle.output.media import MediaSink
from livestyle.engine.frames import Frame, StreamInfo

__all__ = ["SrtSink", "open_srt_sink"]

NO_SRT = (
    "srt:// needs FFmpeg with libsrt, which the PyAV wheels lack: install ffmpeg "
    "(apt install ffmpeg / brew install ffmpeg) or stream to udp:// or rtmp:// instead"
)


class SrtSink:
    """Encodes to MPEG-TS with :class:`MediaSink` into an ``ffmpeg`` that sends SRT."""

    def __init__(self, url: str, ffmpeg: str, *, fps: float | None) -> None:
        self.name = url
        self._url, self._ffmpeg, self._fps = url, ffmpeg, fps
        self._process: subprocess.Popen[bytes] | None = None
        self._media: MediaSink | None = None

    def open(self, info: StreamInfo) -> None:
        self._process = subprocess.Popen(
            [self._ffmpeg, "-hide_banner", "-loglevel", "error",
             "-f", "mpegts", "-probesize", "32768", "-analyzeduration", "0", "-i", "pipe:0",
             "-map", "0:v:0", "-c", "copy", "-f", "mpegts", self._url],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        assert self._process.stdin is not None
        self._media = MediaSink(f"pipe:{self._process.stdin.fileno()}", "mpegts",
                                fps=self._fps, live=True)
        self._media.name = self._url
        try:
            self._media.open(info)
        except SinkError:
            self.close()
            raise

    def write(self, frame: Frame) -> None:
        """Encode one frame; SinkError (with ffmpeg's reason) once ffmpeg has exited."""
        if self._media is None or self._process is None:
            raise SinkError(f"{self._url}: write() after close() or before open()")
        if self._process.poll() is not None:
            raise SinkError(f"{self._url}: the SRT sender stopped ({self._ffmpeg_error()})")
        self._media.write(frame)

    def _ffmpeg_error(self) -> str:
        process = self._process
        if process is None or process.stderr is None:
            return "no reason given"
        lines = process.stderr.read().decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else f"ffmpeg exited with code {process.returncode}"

    def close(self) -> None:
        """Finish the stream and let ffmpeg exit (up to 5 s)."""
        media, self._media = self._media, None
        process, self._process = self._process, None
        try:
            if media is not None:
                media.close()
        finally:
            if process is not None:
                if process.stdin is not None:
                    process.stdin.close()
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
                if process.stderr is not None:
                    process.stderr.close()


def open_srt_sink(url: str, *, fps: float | None) -> SrtSink:
    """An SRT sink, or SinkError when no ``ffmpeg`` with libsrt is installed."""
    ffmpeg = ffmpeg_with_srt()
    if ffmpeg is None:
        raise SinkError(NO_SRT)
    return SrtSink(url, ffmpeg, fps=fps)
