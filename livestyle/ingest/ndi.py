"""``ndi://NAME``: frames from an NDI® sender (OBS with DistroAV, vMix, NDI Tools, a camera).

The sender is found by name (NDI's mDNS discovery, or the extra IPs of ``?ips=`` and the NDI
config: :mod:`livestyle.ndi`) and received through NDI's frame synchroniser (``cyndilib``'s
receivers always run one, and it takes every frame from the plain capture call). It keeps the
newest frame; this source polls it at a quarter of the frame period and hands out each new frame
once (a frame is new when its NDI timestamp or timecode changes), converted to RGB and fitted to
``size``. Frames carry pts from the local capture clock (time base 1/90000), monotonic across
reconnects.

A sender that goes away: after ``RECONNECT_S`` without a new frame the source looks the name up
again and reconnects (a restarted sender may come back on another port); after ``timeout``
seconds without one it ends with one line (``SourceError``), as the other network sources do.

NDI® is a registered trademark of Vizrt NDI AB (https://ndi.video/).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from typing import Any

import numpy as np

from livestyle.errors import SourceError
from livestyle.ndi import NdiSpec, load_cyndilib, matches, parse_ndi_spec
from livestyle.engine.fit import DEFAULT_FIT, FitMode, check_fit, fit_image
from livestyle.engine.frames import Frame, StreamInfo

__all__ = ["NdiSource", "open_ndi_source"]

log = logging.getLogger(__name__)

TIME_BASE = Fraction(1, 90000)
FIND_TIMEOUT_S = 5.0
"""Seconds ``open`` waits to find the sender, then as long again for its first frame."""
RECONNECT_S = 1.0
"""Seconds without a new frame before the sender is looked up again and reconnected."""
DEFAULT_TIMEOUT_S = 10.0
"""Seconds without a new frame before the source ends."""


class NdiSource:
    """An NDI sender as a :class:`~livestyle.engine.frames.Source`.

    Args:
        spec: the parsed ``ndi://NAME`` spec.
        size: ``(width, height)`` of the frames handed out; None: the sender's size.
        fps: the most frames per second handed out; None: the sender's rate.
        fit: ``crop``, ``pad`` or ``stretch`` when the sender's shape differs from ``size``.
        timeout: seconds without a new frame before the source ends.
        find_timeout: seconds ``open`` waits for the sender (and again for its first frame).
        clock: the capture clock (``time.monotonic``).
    """

    def __init__(
        self,
        spec: NdiSpec,
        *,
        size: tuple[int, int] | None = None,
        fps: float | None = None,
        fit: FitMode = DEFAULT_FIT,
        timeout: float = DEFAULT_TIMEOUT_S,
        find_timeout: float = FIND_TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = spec.url
        self._spec = spec
        self._size = size
        self._max_fps = fps
        self._fit = check_fit(fit)
        self._timeout = timeout
        self._find_timeout = find_timeout
        self._clock = clock
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._cyndilib: Any = None
        self._finder: Any = None
        self._receiver: Any = None
        self._video: Any = None
        self._source_name: str | None = None
        self._info: StreamInfo | None = None
        self._last_stamp: tuple[int, ...] | None = None
        self.reconnects = 0

    # -- opening -------------------------------------------------------------------------

    def open(self) -> StreamInfo:
        self._stop.clear()
        cyndilib = self._cyndilib = load_cyndilib(SourceError, self._spec.ips)
        self._finder = cyndilib.Finder()
        self._finder.open()
        try:
            source = self._find(self._find_timeout)
            if source is None:
                seen = ", ".join(self._finder.get_source_names()) or "none"
                raise SourceError(
                    f"{self.name}: no NDI sender of that name found in {self._find_timeout:g} s "
                    f"(senders seen: {seen}); where mDNS is blocked add ?ips=SENDER_IP"
                )
            self._receiver = cyndilib.Receiver(
                color_format=cyndilib.RecvColorFormat.RGBX_RGBA,
                bandwidth=cyndilib.RecvBandwidth.highest,
                recv_name="livestyle",
            )
            self._video = cyndilib.VideoFrameSync()
            self._receiver.frame_sync.set_video_frame(self._video)
            self._connect(source)
            if not self._wait_first_frame(self._find_timeout):
                raise SourceError(f"{self.name}: found {self._source_name} but no frame came in "
                                  f"{self._find_timeout:g} s")
        except BaseException:
            self._release()
            raise
        width, height = self._size or (self._video.xres, self._video.yres)
        rate = self._video.get_frame_rate()
        source_fps = float(rate) if rate and rate > 0 else 30.0
        fps = min(source_fps, self._max_fps) if self._max_fps else source_fps
        self._info = StreamInfo(int(width), int(height), fps, TIME_BASE)
        return self._info

    def _find(self, wait: float) -> Any:
        """The finder's source matching the spec, waiting up to ``wait`` seconds; None if none."""
        deadline = time.monotonic() + wait
        while True:
            for name in self._finder.get_source_names():
                if matches(name, self._spec.name):
                    return self._finder.get_source(name)
            left = deadline - time.monotonic()
            if left <= 0 or self._stop.is_set():
                return None
            self._finder.wait_for_sources(min(left, 0.25))

    def _connect(self, source: Any) -> None:
        self._source_name = str(source.name)
        self._receiver.set_source(source)

    def _wait_first_frame(self, wait: float) -> bool:
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and not self._stop.is_set():
            if self._capture() is not None:
                self._last_stamp = None  # hand the first frame out again from frames()
                return True
            self._stop.wait(0.01)
        return False

    # -- reading -------------------------------------------------------------------------

    def _capture(self) -> np.ndarray | None:
        """The newest frame as RGB ``uint8 [H, W, 3]`` if it is new since the last call, else None."""
        sync, video = self._receiver.frame_sync, self._video
        sync.capture_video()
        width, height = video.xres, video.yres
        if not width or not height:
            return None
        stamp = (video.get_timestamp_posix(), video.get_timecode_posix(), width, height)
        if stamp == self._last_stamp:
            return None
        fourcc = video.get_fourcc()
        if fourcc not in (self._cyndilib.FourCC.RGBX, self._cyndilib.FourCC.RGBA):
            raise SourceError(f"{self.name}: the receiver delivered {fourcc!r}, not RGBX/RGBA")
        data = video.get_array()
        stride = video.get_line_stride() or width * 4
        if data.size < stride * height:
            return None
        self._last_stamp = stamp
        rows = data[: stride * height].reshape(height, stride)
        return np.ascontiguousarray(rows[:, : width * 4].reshape(height, width, 4)[..., :3])

    def frames(self) -> Iterator[Frame]:
        if self._info is None or self._receiver is None:
            raise SourceError(f"{self.name}: call open() before frames()")
        info = self._info
        size = (info.width, info.height)
        min_step = 1.0 / self._max_fps if self._max_fps else 0.0
        poll = min(0.25 / info.fps, 0.01)
        origin = self._clock()
        last_new = time.monotonic()
        last_out = -1.0
        last_pts = -1
        index = 0
        reconnect_at = last_new + RECONNECT_S
        try:
            while not self._stop.is_set():
                with self._lock:
                    if self._receiver is None:
                        return
                    image = self._capture()
                now_wall = time.monotonic()
                if image is None:
                    if now_wall - last_new > self._timeout:
                        raise SourceError(f"{self.name}: no frames for {self._timeout:g} s; the "
                                          "sender stopped or is unreachable")
                    if now_wall >= reconnect_at:
                        self._reconnect()
                        reconnect_at = now_wall + RECONNECT_S
                    self._stop.wait(poll)
                    continue
                last_new = now_wall
                reconnect_at = now_wall + RECONNECT_S
                now = self._clock()
                if min_step and now - last_out < min_step - 0.002:
                    continue
                last_out = now
                if (image.shape[1], image.shape[0]) != size:
                    image = fit_image(image, size, self._fit)
                pts = max(round((now - origin) / TIME_BASE), last_pts + 1)
                last_pts = pts
                yield Frame(image, pts, TIME_BASE, now, index)
                index += 1
        finally:
            self._release()

    def _reconnect(self) -> None:
        """Look the sender up again and reconnect the receiver to what the finder has now."""
        with self._lock:
            if self._receiver is None or self._finder is None:
                return
            source = self._find(0.0)
            if source is None:
                return
            log.warning("%s: no frame for %g s; reconnecting to %s", self.name, RECONNECT_S, source.name)
            self._receiver.set_source(None)
            self._connect(source)
            self.reconnects += 1

    # -- closing -------------------------------------------------------------------------

    def _release(self) -> None:
        with self._lock:
            receiver, self._receiver = self._receiver, None
            finder, self._finder = self._finder, None
        if receiver is not None:
            receiver.set_source(None)
        if finder is not None:
            finder.close()

    def close(self) -> None:
        """Stop ``frames()``; safe from any thread."""
        self._stop.set()
        self._release()


def open_ndi_source(
    spec: str, *, size: tuple[int, int] | None, fps: float | None, fit: FitMode = DEFAULT_FIT
) -> NdiSource:
    """An NDI source for ``ndi://NAME[?ips=...&groups=...]`` (cyndilib is loaded at ``open``)."""
    return NdiSource(parse_ndi_spec(spec, SourceError), size=size, fps=fps, fit=fit)
