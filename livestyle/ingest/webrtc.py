"""The ``webrtc`` / ``whip`` source: frames a browser page or a WHIP publisher (OBS 30+) sends.

The web server's sessions decode incoming video on aiortc's decoder thread and put each
``av.VideoFrame`` into the hub's latest-wins slot (:class:`~livestyle.server.relay.ThreadSlot`);
this source's ``frames()`` runs on the runner's source thread, blocks on that slot (woken by a
condition variable, no polling) and does the colour conversion and scaling there, off the event
loop. Frames that arrive faster than the pipeline takes them are dropped, newest wins.

Audio: the publisher's audio (aiortc decodes Opus to 48 kHz stereo) is offered to the runner
(:meth:`WebRTCSource.set_audio_callback`). A small thread of this source takes every audio frame
from the hub (never dropped for the video's sake), stamps it on the video's clock (seconds since
``open()``, from arrival times, kept gapless by counting samples) and hands it on. While the
publisher sends no audio (none offered, or muted) that thread emits silence, so sinks with an
audio stream keep a continuous track and their muxers never wait for audio that will not come.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import numpy as np

from livestyle.errors import SourceError
from livestyle.ingest.audio import audio_samples
from livestyle.engine.fit import DEFAULT_FIT, FitMode, check_fit, fit_image
from livestyle.engine.frames import (
    AudioCallback,
    AudioChunk,
    AudioInfo,
    Frame,
    StreamInfo,
)
from livestyle.server.hub import StreamHub, get_hub
from livestyle.server.relay import Closed

__all__ = ["WebRTCSource", "open_webrtc_source"]

TIME_BASE = Fraction(1, 90000)
AUDIO_RATE = 48000
"""aiortc's Opus decoder gives 48 kHz stereo ``s16`` frames."""
AUDIO_IDLE_S = 0.05
"""Without publisher audio for this long, silence is emitted (trailing the clock by this much)."""
AUDIO_RESYNC_S = 0.15
"""A sample clock further than this from arrival times is re-anchored to them."""


class WebRTCSource:
    """Frames of the hub's active publisher, as ``uint8 [H, W, 3]`` RGB at ``size``.

    A publisher of another shape is fitted to ``size`` by ``fit`` (:mod:`livestyle.engine.fit`:
    ``crop`` by default, ``pad`` or ``stretch``), so a 4:3 camera keeps its proportions.

    ``size`` is ``(width, height)``; ``None`` takes the first frame's size (``open()`` then waits
    for a publisher). ``pts`` counts 1/90000 s from ``open()``; ``capture_time`` is the monotonic
    time the decoded frame arrived at the server.
    """

    def __init__(self, hub: StreamHub, *, size: tuple[int, int] | None, fps: float, name: str = "webrtc",
                 fit: FitMode = DEFAULT_FIT) -> None:
        if size is not None and (size[0] <= 0 or size[1] <= 0 or size[0] % 2 or size[1] % 2):
            raise SourceError(f"WebRTC source size must be positive and even, got {size[0]}x{size[1]}")
        if fps <= 0:
            raise SourceError(f"WebRTC source fps must be positive, got {fps}")
        self.name = name
        self.hub = hub
        self.size = size
        self.fps = float(fps)
        self.fit = check_fit(fit)
        self._t0 = 0.0
        self._index = 0
        self._first: object | None = None
        self._audio_cb: AudioCallback | None = None
        self._audio_cv = threading.Condition()
        self._audio_queue: deque[tuple[Any, float]] = deque(maxlen=500)
        self._audio_stop = False
        self._audio_thread: threading.Thread | None = None
        self.audio_dropped = 0

    def audio_info(self) -> AudioInfo:
        """Always audio: the publisher's, or silence while it sends none (48 kHz stereo)."""
        return AudioInfo(AUDIO_RATE, 2)

    def set_audio_callback(self, fn: AudioCallback | None) -> None:
        """Hand the publisher's audio to ``fn`` from this source's audio thread (started here)."""
        self._audio_cb = fn
        if fn is None or self._audio_thread is not None:
            return
        self._audio_stop = False
        self.hub.add_audio_listener(self._on_audio)
        self._audio_thread = threading.Thread(target=self._audio_loop, name="livestyle-webrtc-audio", daemon=True)
        self._audio_thread.start()

    def _on_audio(self, frame: Any, arrival: float) -> None:
        """Hub listener, on the event loop: queue and wake the audio thread; never blocks."""
        with self._audio_cv:
            if len(self._audio_queue) == self._audio_queue.maxlen:
                self.audio_dropped += 1
            self._audio_queue.append((frame, arrival))
            self._audio_cv.notify()

    def _audio_loop(self) -> None:
        import av

        resampler = av.AudioResampler(format="fltp")
        next_s: float | None = None  # the sample clock: seconds since open() of the next sample
        while True:
            with self._audio_cv:
                self._audio_cv.wait_for(lambda: self._audio_queue or self._audio_stop, AUDIO_IDLE_S)
                if self._audio_stop:
                    return
                item = self._audio_queue.popleft() if self._audio_queue else None
            cb = self._audio_cb
            if cb is None:
                continue
            if item is None:  # no publisher audio: keep the track going with silence
                upto = time.monotonic() - self._t0 - AUDIO_IDLE_S
                if next_s is None:
                    next_s = upto - AUDIO_IDLE_S
                n = round((upto - next_s) * AUDIO_RATE)
                if n > 0:
                    samples = np.zeros((2, n), np.float32)
                    cb(AudioChunk(samples, AUDIO_RATE, round(next_s / TIME_BASE), TIME_BASE, time.monotonic()))
                    next_s += n / AUDIO_RATE
                continue
            frame, arrival = item
            samples = audio_samples(frame, resampler)
            rate = int(frame.sample_rate or AUDIO_RATE)
            duration = samples.shape[1] / rate
            start = arrival - self._t0 - duration  # the frame's first sample, on the video's clock
            if next_s is None or abs(start - next_s) > AUDIO_RESYNC_S:
                next_s = start
            cb(AudioChunk(samples, rate, round(next_s / TIME_BASE), TIME_BASE, arrival))
            next_s += duration

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
        if (video.width, video.height) == (width, height) or self.fit == "stretch":
            image = video.reformat(width=width, height=height, format="rgb24").to_ndarray()
        else:  # keep the picture's shape: crop or pad to the working aspect
            image = fit_image(video.to_ndarray(format="rgb24"), (width, height), self.fit)
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
        if self._audio_thread is not None:
            self.hub.remove_audio_listener(self._on_audio)
            with self._audio_cv:
                self._audio_stop = True
                self._audio_cv.notify_all()
            if self._audio_thread is not threading.current_thread():
                self._audio_thread.join(timeout=2.0)
            self._audio_thread = None


def open_webrtc_source(
    spec: str, *, size: tuple[int, int] | None = None, fps: float | None = None, start_server: bool = True,
    fit: FitMode = DEFAULT_FIT,
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
    return WebRTCSource(get_hub(), size=size, fps=fps or 30.0, name=name, fit=fit)
