"""Video sinks: where frames go.

``open_sink(spec)`` turns a command-line/config string into an unopened
:class:`~livestyle.engine.frames.Sink`; the runner calls ``open(info)`` (files are created,
connections made, devices claimed there) and then ``write`` from the sink's own thread.

| spec | sink |
|---|---|
| ``null`` | discard (:mod:`.null`) |
| ``window`` | OpenCV preview window (:mod:`.window`) |
| ``virtualcam``, ``virtualcam:DEVICE`` | virtual camera (:mod:`.virtualcam`) |
| ``out.mp4``, ``.mkv``, ``.mov``, ``.ts``, ``.flv`` | recording (:mod:`.media`) |
| ``rtmp://`` (FLV), ``udp://`` / ``tcp://`` (MPEG-TS) | stream out (:mod:`.media`) |
| ``srt://`` | MPEG-TS through FFmpeg with libsrt, when installed (:mod:`.srt`) |
| ``webrtc``, ``whep`` | the browser page / a WHEP player (:mod:`.webrtc`) |
| ``ndi://NAME`` | an NDI sender, with the ndi extra (:mod:`.ndi`) |
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from livestyle.errors import SinkError
from livestyle.engine.frames import Sink
from livestyle.urls import check_url

if TYPE_CHECKING:
    from livestyle.output.media import RecordingOptions

__all__ = ["open_sink", "SINK_SPECS"]

SINK_SPECS = (
    "null, window, virtualcam, virtualcam:DEVICE, a recording path (.mp4, .mkv, .mov, .ts, "
    ".flv), rtmp://, udp://, tcp://, srt://, ndi://NAME, webrtc or whep"
)
"""What ``open_sink`` accepts, for error messages and ``--help``."""


def open_sink(spec: str, *, fps: float | None = None, recording: RecordingOptions | None = None) -> Sink:
    """The sink named by ``spec`` (not yet opened).

    Args:
        spec: see the table in this module's docstring.
        fps: the rate announced to encoders and devices; None: the source's rate (from the
            StreamInfo given to ``open``).
        recording: how recordings are written (fragmented MP4 by default; ``output.media``).

    Raises:
        SinkError: unknown scheme or file extension.
    """
    from livestyle.output.media import RECORDING_FORMATS, STREAM_FORMATS, MediaSink

    spec = spec.strip()
    check_url(spec, SinkError)
    if not spec:
        raise SinkError(f"empty sink: use {SINK_SPECS}")
    if fps is not None and not fps > 0:
        raise SinkError(f"sink fps must be positive, got {fps}")
    lowered = spec.lower()
    if lowered == "null":
        from livestyle.output.null import NullSink

        return NullSink()
    if lowered == "window":
        from livestyle.output.window import WindowSink

        return WindowSink()
    if lowered == "virtualcam" or lowered.startswith("virtualcam:"):
        from livestyle.output.virtualcam import VirtualCamSink

        return VirtualCamSink(spec.partition(":")[2] or None, fps=fps)
    if lowered in ("webrtc", "whep"):
        try:
            from livestyle.output.webrtc import open_webrtc_sink
        except ImportError as exc:
            raise SinkError(
                f"the {lowered} sink needs the web extra ({exc}): pip install 'livestyle[web]'"
            ) from exc
        # the WebRTC encoder is built here and needs a rate; 30 is the nominal one
        return open_webrtc_sink(spec, fps=fps if fps is not None else 30.0)
    scheme = urlsplit(spec).scheme.lower() if "://" in spec else ""
    if scheme == "srt":
        from livestyle.output.srt import open_srt_sink

        return open_srt_sink(spec, fps=fps)
    if scheme == "ndi":
        from livestyle.output.ndi import open_ndi_sink

        return open_ndi_sink(spec, fps=fps)
    if scheme in STREAM_FORMATS:
        return MediaSink(spec, STREAM_FORMATS[scheme], fps=fps, live=True)
    if scheme == "file":
        spec, scheme = urlsplit(spec).path, ""
    if scheme:
        raise SinkError(f"unknown sink scheme '{scheme}://' in '{spec}': use {SINK_SPECS}")
    suffix = Path(spec).suffix.lower()
    if suffix not in RECORDING_FORMATS:
        raise SinkError(f"unknown sink '{spec}': use {SINK_SPECS}")
    return MediaSink(spec, RECORDING_FORMATS[suffix], fps=fps, recording=recording)
