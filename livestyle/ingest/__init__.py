"""Video sources: where frames come from.

``open_source(spec)`` turns a command-line/config string into an unopened
:class:`~livestyle.engine.frames.Source`; the runner calls ``open()`` (which does the slow,
fallible work: devices, sockets, probing) and then iterates ``frames()`` on its own thread.

| spec | source |
|---|---|
| ``pattern`` | animated test pattern (:mod:`livestyle.ingest.pattern`) |
| ``webcam``, ``webcam:N``, ``/dev/videoN``, ``video=Name`` | local camera (:mod:`.camera`) |
| a file, ``rtmp://``, ``rtsp://``, ``udp://``, ``tcp://``, ``http(s)://`` | PyAV (:mod:`.media`) |
| ``srt://`` | FFmpeg with libsrt as a subprocess, when installed (:mod:`.srt`) |
| ``webrtc``, ``whip`` | a browser or WHIP publisher (:mod:`.webrtc`) |
| ``ndi://NAME`` | an NDI sender, with the ndi extra (:mod:`.ndi`) |
"""

from __future__ import annotations

from urllib.parse import urlsplit

from livestyle.errors import SourceError
from livestyle.engine.fit import DEFAULT_FIT, FitMode
from livestyle.engine.frames import Source
from livestyle.urls import check_url

__all__ = ["open_source", "SOURCE_SPECS"]

SOURCE_SPECS = (
    "pattern, webcam, webcam:N, a camera device path (/dev/videoN), a video file path, "
    "rtmp://, rtsp://, udp://, tcp://, http(s)://, srt://, ndi://NAME, webrtc or whip"
)
"""What ``open_source`` accepts, for error messages and ``--help``."""

_MEDIA_SCHEMES = ("rtmp", "rtmps", "rtsp", "udp", "tcp", "http", "https")


def open_source(
    spec: str,
    *,
    size: tuple[int, int] | None = None,
    fps: float | None = None,
    pace: bool = True,
    loop: bool = True,
    fit: FitMode = DEFAULT_FIT,
    capture_size: tuple[int, int] | None = None,
) -> Source:
    """The source named by ``spec`` (not yet opened).

    Args:
        spec: see the table in this module's docstring.
        size: ``(width, height)`` of the frames handed out (sources scale to it); None keeps the
            source's own size.
        fps: pattern: its rate; cameras: the rate asked for; files/streams: the highest rate
            handed out. None: the source's own rate (30 for the pattern).
        pace: files and the pattern: release frames in real time (False: as fast as taken).
        loop: files: start again at the end (False: the stream ends).
        fit: how a picture of another shape becomes ``size``: ``crop`` (centre crop, default),
            ``pad`` (black bars) or ``stretch`` (:mod:`livestyle.engine.fit`).
        capture_size: cameras with ``size`` None: the mode asked of the camera (its frames then
            come out at the size it picks, aspect ratio kept).

    Raises:
        SourceError: unknown scheme, missing file, or a missing optional dependency.
    """
    spec = spec.strip()
    check_url(spec, SourceError)
    if not spec:
        raise SourceError(f"empty source: use {SOURCE_SPECS}")
    if size is not None and (size[0] < 2 or size[1] < 2):
        raise SourceError(f"source size {size[0]}x{size[1]} is too small: use at least 2x2")
    if fps is not None and not fps > 0:
        raise SourceError(f"source fps must be positive, got {fps}")
    lowered = spec.lower()
    if lowered == "pattern":
        from livestyle.ingest.pattern import PatternSource

        return PatternSource(size, fps, pace=pace)
    if lowered in ("webrtc", "whip"):
        try:
            from livestyle.ingest.webrtc import open_webrtc_source
        except ImportError as exc:
            raise SourceError(
                f"the {lowered} source needs the web extra ({exc}): pip install 'livestyle[web]'"
            ) from exc
        return open_webrtc_source(spec, size=size, fps=fps, fit=fit)
    if _is_camera(spec):
        from livestyle.ingest.camera import CameraSource, camera_device

        return CameraSource(camera_device(spec), size=size, request=capture_size, fps=fps, fit=fit)
    scheme = urlsplit(spec).scheme.lower() if "://" in spec else ""
    if scheme == "srt":
        from livestyle.ingest.srt import open_srt_source

        return open_srt_source(spec, size=size, fps=fps)
    if scheme == "ndi":
        from livestyle.ingest.ndi import open_ndi_source

        return open_ndi_source(spec, size=size, fps=fps, fit=fit)
    if scheme == "file":
        spec, scheme = urlsplit(spec).path, ""
    if scheme and scheme not in _MEDIA_SCHEMES:
        raise SourceError(f"unknown source scheme '{scheme}://' in '{spec}': use {SOURCE_SPECS}")
    if not scheme and ":" in spec.split("/")[0] and not _is_windows_drive(spec):
        raise SourceError(f"unknown source '{spec}': use {SOURCE_SPECS}")
    from livestyle.ingest.media import MediaSource

    return MediaSource(spec, size=size, fps=fps, pace=pace, loop=loop, fit=fit)


def _is_camera(spec: str) -> bool:
    lowered = spec.lower()
    return (
        lowered == "webcam"
        or lowered.startswith("webcam:")
        or lowered.startswith("/dev/video")
        or lowered.startswith("video=")
    )


def _is_windows_drive(spec: str) -> bool:
    return len(spec) > 2 and spec[1] == ":" and spec[0].isalpha() and spec[2] in "\\/"
