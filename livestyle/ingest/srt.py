"""``srt://`` input through an FFmpeg subprocess.

The FFmpeg inside the PyAV wheels has no SRT protocol. When an ``ffmpeg`` executable with libsrt
is on PATH, it receives the SRT stream and hands the MPEG-TS packets, unchanged (``-c copy``),
to PyAV through a pipe; otherwise the user gets a one-line message saying what to install.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

from livestyle.errors import SourceError
from livestyle.ingest.media import MediaSource
from livestyle.optional import ffmpeg_with_srt
from livestyle.engine.frames import Frame, StreamInfo

__all__ = ["SrtSource", "open_srt_source"]

NO_SRT = (
    "srt:// needs FFmpeg with libsrt, which the PyAV wheels lack: install ffmpeg "
    "(apt install ffmpeg / brew install ffmpeg) or send udp:// or rtmp:// instead"
)


class SrtSource:
    """Frames from an SRT URL: ``ffmpeg`` receives, PyAV decodes from its stdout."""

    def __init__(
        self, url: str, ffmpeg: str, *, size: tuple[int, int] | None, fps: float | None
    ) -> None:
        self.name = url
        self._url, self._ffmpeg = url, ffmpeg
        self._size, self._fps = size, fps
        self._process: subprocess.Popen[bytes] | None = None
        self._media: MediaSource | None = None
        self._pipes: tuple[object, ...] = ()
        self._reading = False

    def open(self) -> StreamInfo:
        self._process = subprocess.Popen(
            [self._ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin",
             "-i", self._url, "-map", "0:v:0", "-c", "copy",
             "-f", "mpegts", "-flush_packets", "1", "pipe:1"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        assert self._process.stdout is not None
        self._pipes = (self._process.stdout, self._process.stderr)
        self._media = MediaSource(
            f"pipe:{self._process.stdout.fileno()}", size=self._size, fps=self._fps,
            live=True, input_format="mpegts",
        )
        try:
            return self._media.open()
        except SourceError as exc:
            reason = self._ffmpeg_error() or str(exc)
            self.close()
            raise SourceError(f"cannot open {self._url}: {reason}") from exc

    def frames(self) -> Iterator[Frame]:
        if self._media is None:
            raise SourceError(f"{self._url}: call open() before frames()")
        self._reading = True
        try:
            yield from self._media.frames()
        finally:
            self._reading = False
            self._close_pipes()

    def _ffmpeg_error(self) -> str:
        """ffmpeg's last stderr line once it has exited ('' if it still runs after 2 s)."""
        process = self._process
        if process is None or process.stderr is None:
            return ""
        try:
            process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            return ""
        lines = process.stderr.read().decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else f"ffmpeg exited with code {process.returncode}"

    def close(self) -> None:
        """Stop reading and end the ffmpeg process; safe from any thread (waits up to 5 s for
        ffmpeg to exit)."""
        if self._media is not None:
            self._media.close()
        process, self._process = self._process, None
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if not self._reading:  # else frames() closes them once PyAV has let go of the fd
            self._close_pipes()

    def _close_pipes(self) -> None:
        pipes, self._pipes = self._pipes, ()
        for pipe in pipes:
            pipe.close()  # type: ignore[attr-defined]


def open_srt_source(url: str, *, size: tuple[int, int] | None, fps: float | None) -> SrtSource:
    """An SRT source, or SourceError when no ``ffmpeg`` with libsrt is installed."""
    ffmpeg = ffmpeg_with_srt()
    if ffmpeg is None:
        raise SourceError(NO_SRT)
    return SrtSource(url, ffmpeg, size=size, fps=fps)
