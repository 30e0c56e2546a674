"""The ``webrtc`` / ``whip`` source: frames a browser page or a WHIP publisher (OBS 30+) sends.

The web server's sessions decode incoming video on aiortc's decoder thread and put each
``av.VideoFrame`` into the hub's latest-wins slot (:class:`~livestyle.server.relay.ThreadSlot`);
this source's ``frames()`` runs on the runner's source thread, blocks on that slot (woken by a
condition variable, no polling) and does the colour conversion and scaling there, off the event
loop. Frames that arrive faster than the pipeline takes them are dropped, newest wins.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from fractions import Fraction

import numpy as np

from livestyle.errors import SourceError
from livestyle.pipeline.frames import Frame, StreamInfo
from livestyle.server.hub import StreamHub, get_hub
from livestyle.server.relay import Closed

__all__ = ["WebRTCSource", "open_webrtc_source"]

TIME_BASE = Fraction(1, 90000)


class WebRTCSource:
    """Frames of the hub's active publisher, as ``uint8 [H, W, 3]`` RGB at ``size``.

    ``size`` is ``(width, height)``; ``None`` takes the first frame's size (``open()`` then waits
    for a publisher). ``pts`` counts 1/90000 s from ``open()``; ``capture_time`` is the monotonic
    time the decoded frame arrived at the server.
    """

    def __init__(self, hub: StreamHub, *, size: tuple[int, int] | None, fps: float, name: str = "webrtc") -> None:
        if size is not None and (size[0] <= 0 or size[1] <= 0 or size[0] % 2 or size[1] % 2):
            raise SourceError(f"WebRTC source size must be positive and even, got {size[0]}x{size[1]}")
        if fps <= 0:
            raise SourceError(f"WebRTC source fps must be positive, got {fps}")
        self.name = name
        self.hub = hub
        self.size = size
        self.fps = float(fps)
        self._t0 = 0.0
        self._index = 0
        self._first: object | None = None

    def open(self) -> StreamInfo:
        self.hub.ingest.reopen()
        self._t0 = time.monotonic()
        self._index = 0
        if self.size is None:
            try:
                self._first = self.hub.ingest.get()
            except Closed:
                raise SourceError("the WebRTC source was closed before a publisher connected") from None
            self.size = (int(self._first.frame.width), int(self._first.frame.height))  # type: ignore[attr-defined]
        return StreamInfo(width=self.size[0], height=self.size[1], fps=self.fps, time_base=TIME_BASE)

    def _convert(self, item: object) -> Frame:
        assert self.size is not None
        width, height = self.size
        video = item.frame  # type: ignore[attr-defined]
        image = video.reformat(width=width, height=height, format="rgb24").to_ndarray()
        arrival = float(item.arrival)  # type: ignore[attr-defined]
        frame = Frame(
            image=np.ascontiguousarray(image),
            pts=max(0, round((arrival - self._t0) / TIME_BASE)),
            time_base=TIME_BASE,
            capture_time=arrival,
            index=self._index,
        )
        self._index += 1
        return frame

    def frames(self) -> Iterator[Frame]:
        """Blocks for each next frame; ends when :meth:`close` is called."""
        if self._first is not None:
            first, self._first = self._first, None
            yield self._convert(first)
        while True:
            try:
                item = self.hub.ingest.get()
            except Closed:
                return
            if item is not None:
                yield self._convert(item)

    def close(self) -> None:
        self.hub.ingest.close()


def open_webrtc_source(
    spec: str, *, size: tuple[int, int] | None = None, fps: float | None = None, start_server: bool = True
) -> WebRTCSource:
    """The source for ``webrtc`` (the page's camera) or ``whip`` (a WHIP publisher).

    Both read the process hub's active publisher; ``fps`` None means 30 (the nominal rate the
    runner paces output at; the publisher's real rate is whatever it sends). With ``start_server`` the web server starts
    (default settings) unless one already runs, so ``livestyle run --source webrtc`` serves the page.
    """
    name = spec.split(":", 1)[0].lower()
    if name not in ("webrtc", "whip"):
        raise SourceError(f"not a WebRTC source: {spec!r} (use 'webrtc' or 'whip')")
    if start_server:
        from livestyle.server.app import ensure_server

        ensure_server(hub=get_hub())
    return WebRTCSource(get_hub(), size=size, fps=fps or 30.0, name=name)
