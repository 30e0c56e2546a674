"""The sink side of a run: one thread per sink, each frame written at its due time.

Every sink gets a :class:`SinkSlot`: the sink, its :class:`~livestyle.engine.channels.SinkChannel`
(the worker puts ``(due, frame)`` items in it) and its thread, named ``livestyle-sink-<name>``.
:class:`SinkThreads` owns the slots of one run:

* each thread waits until a frame is due (unless a stop asked to hurry), writes it and records the
  write time, the glass-to-glass latency and the viewer-side timing in the run's metrics;
* a sink whose ``write`` raises is closed and dropped from the run, the others go on
  (``drops["sink:<name>"]`` counts what it had queued); when every sink has failed the run fails;
* a sink whose ``write`` blocks longer than ``sink_timeout`` (:meth:`SinkThreads.watch`, called by
  the runner's status thread) or that is still writing ``SHUTDOWN_S`` after a stop
  (:meth:`SinkThreads.finish`) is abandoned: marked failed, its queue forgotten, closed on a
  throwaway thread; a stalled network receiver can never hold the process;
* a sink that takes audio is closed only after its audio has drained (``AUDIO_DRAIN_S`` at the
  source's end, ``AUDIO_STOP_GRACE_S`` after a stop), so a recording ends with its audio.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from livestyle.errors import SinkError, one_line
from livestyle.engine.audio import AudioPath
from livestyle.engine.channels import SinkChannel
from livestyle.engine.frames import Frame, Sink, StreamInfo
from livestyle.engine.metrics import Metrics

__all__ = ["AUDIO_DRAIN_S", "AUDIO_STOP_GRACE_S", "SHUTDOWN_S", "SinkSlot", "SinkThreads"]

log = logging.getLogger(__name__)

AUDIO_DRAIN_S = 3.0
"""Seconds a sink waits at the source's end for its remaining audio before it closes anyway."""
AUDIO_STOP_GRACE_S = 0.3
"""Seconds a sink waits after a stop for audio still on its way (a live source's audio lags a little)."""
SHUTDOWN_S = 1.5
"""Seconds a stop waits for the sinks to write what is queued and close; a sink still busy then
is marked failed and abandoned (its thread is a daemon), so a stalled network receiver can never
hold the process."""

CLOSE_GRACE_S = 1.0
"""Seconds every sink gets once its channel is closed, however long ago the stop was asked for: a
stop during a long warm-up is answered when the warm-up returns, and a sink that was only waiting
for frames must not be abandoned before it has seen the close."""


@dataclass
class SinkSlot:
    """One sink of a run, its queue and its thread."""

    name: str
    sink: Sink
    channel: SinkChannel
    thread: threading.Thread | None = None
    state: str = "open"  # open | running | closed | failed
    written: int = 0
    error: str | None = None
    writing_since: float | None = None  # time.monotonic() when the current write began
    abandoned: bool = False  # given up while stuck; its thread is never waited on again


class SinkThreads:
    """The sinks of one run (module docstring).

    Args:
        sinks: named after ``sink.name`` (``name#2``, ``name#3``, ... for repeats).
        sink_queue, backpressure, clock: for each :class:`SinkChannel`.
        metrics: the run's metrics (write times, latency, viewer timing, drops).
        hurry: set on a stop: frames are written without waiting for their due time.
        on_all_failed: called with a :class:`SinkError` when the last working sink fails.
        stop_reason: the run's stop reason so far (at the source's end a sink waits longer for audio).
    """

    def __init__(
        self,
        sinks: Sequence[Sink],
        *,
        sink_queue: int,
        backpressure: bool,
        clock: Callable[[], float],
        metrics: Metrics,
        hurry: threading.Event,
        on_all_failed: Callable[[SinkError], None],
        stop_reason: Callable[[], str | None],
    ) -> None:
        self._clock = clock
        self._metrics = metrics
        self._hurry = hurry
        self._on_all_failed = on_all_failed
        self._stop_reason = stop_reason
        self._lock = threading.Lock()
        self.audio: AudioPath | None = None
        """The run's audio path, once the runner has started one (sinks then detach from it)."""
        self.slots: list[SinkSlot] = []
        seen: dict[str, int] = {}
        for sink in sinks:
            base = str(getattr(sink, "name", type(sink).__name__))
            seen[base] = seen.get(base, 0) + 1
            name = base if seen[base] == 1 else f"{base}#{seen[base]}"
            channel = SinkChannel(sink_queue, backpressure=backpressure, clock=clock)
            self.slots.append(SinkSlot(name, sink, channel))

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.slots]

    def offer_audio(self, info: Any) -> list[tuple[str, Any]]:
        """Offer the source's audio (``info``) to each sink that takes audio; the ``(name, sink)`` that do."""
        taken = []
        for slot in self.slots:
            open_audio = getattr(slot.sink, "open_audio", None)
            if callable(open_audio) and callable(getattr(slot.sink, "write_audio", None)) and open_audio(info):
                taken.append((slot.name, slot.sink))
        return taken

    def open(self, info: StreamInfo) -> None:
        """Open every sink; if one fails, close the ones already open and raise its error."""
        opened: list[SinkSlot] = []
        try:
            for slot in self.slots:
                slot.sink.open(info)
                opened.append(slot)
        except BaseException:
            for slot in opened:
                self.close_quietly(slot)
            raise

    def make_threads(self) -> list[threading.Thread]:
        """One (not yet started) daemon thread per sink, running :meth:`loop`."""
        for slot in self.slots:
            slot.state = "running"
            slot.thread = threading.Thread(
                target=self.loop, args=(slot,), name=f"livestyle-sink-{slot.name}", daemon=True
            )
        return [s.thread for s in self.slots if s.thread]

    def put(self, items: list[tuple[float | None, Frame]]) -> None:
        """Queue ``(due, frame)`` items for every sink still alive (late frames a sink drops are counted)."""
        for slot in self.slots:
            if slot.channel.alive:
                dropped = slot.channel.put(items)
                if dropped:
                    self._metrics.drop(f"sink:{slot.name}", dropped)

    def loop(self, slot: SinkSlot) -> None:
        """A sink's thread: write each frame at its due time until the channel closes, then close the sink."""
        stage = f"sink:{slot.name}"
        try:
            while True:
                item = slot.channel.get()
                if item is None:
                    break
                due, frame = item
                if due is not None and not self._hurry.is_set():
                    delay = due - self._clock()
                    if delay > 0:
                        self._hurry.wait(min(delay, 1.0))
                t0 = self._clock()
                slot.writing_since = time.monotonic()
                slot.sink.write(frame)
                slot.writing_since = None
                t1 = self._clock()
                if slot.state == "failed":
                    return  # abandoned while this write hung; it was closed elsewhere
                self._metrics.stage(stage, t1 - t0)
                self._metrics.latency(t1 - frame.capture_time)
                self._metrics.written(slot.name, t1)
                slot.written += 1
        except Exception as exc:  # noqa: BLE001 - one sink failing must not stop the others
            slot.writing_since = None
            if slot.state == "failed":
                return
            slot.error = one_line(exc)
            slot.state = "failed"
            lost = slot.channel.kill()
            if lost:
                self._metrics.drop(stage, lost)
            log.error("sink %s failed and was closed; the other sinks go on: %s", slot.name, slot.error)
            self.close_quietly(slot)
            self._check_all_failed(slot)
            return
        audio = self.audio
        if audio is not None and slot.name in audio.sink_names:
            # The source's last audio may still be on the way. At the source's end it soon ends;
            # after a stop a live source may never end (it waits for its next frame), so it gets
            # a short grace for audio in flight, then what is queued is written.
            ended = self._stop_reason() in ("source_ended", "error")
            wait = AUDIO_DRAIN_S if ended else AUDIO_STOP_GRACE_S
            if not audio.wait_drained(wait) and not audio.wait_drained(wait, until_end=False):
                log.warning("sink %s: audio still queued after %g s; closing", slot.name, 2 * wait)
            audio.detach(slot.name)
        self.close_quietly(slot)
        if slot.state != "failed":
            slot.state = "closed"

    def finish(self, stop_at: Callable[[], float | None]) -> None:
        """Close every channel and wait for the sinks to drain and close. Once a stop was asked for
        (``stop_at()``: its ``time.monotonic()``), a sink gets at most ``SHUTDOWN_S`` from the stop,
        and at least ``CLOSE_GRACE_S`` from the close; one still busy then is abandoned. Without a stop a draining sink is bounded by the watchdog
        (:meth:`watch`); an abandoned sink's thread is never waited on (it may never return)."""
        for slot in self.slots:
            slot.channel.close()
        closed = time.monotonic()
        for slot in self.slots:
            thread = slot.thread
            while thread is not None and thread.is_alive() and not slot.abandoned:
                since = stop_at()
                if since is None:
                    thread.join(0.1)
                    continue
                remaining = max(since + SHUTDOWN_S, closed + CLOSE_GRACE_S) - time.monotonic()
                if remaining <= 0:
                    self.abandon(slot, f"still writing {SHUTDOWN_S:g} s after the stop")
                    break
                thread.join(min(remaining, 0.1))

    def watch(self, now: float, sink_timeout: float) -> None:
        """Abandon each sink whose current write began more than ``sink_timeout`` before ``now``
        (``time.monotonic()``)."""
        for slot in self.slots:
            since = slot.writing_since
            if since is not None and now - since > sink_timeout and slot.state != "failed":
                self.abandon(slot, f"blocked in write for more than {sink_timeout:g} s")
                self._check_all_failed(slot)

    def abandon(self, slot: SinkSlot, why: str) -> None:
        """Mark a stuck sink failed, forget its queue and close it on a throwaway thread."""
        with self._lock:
            if slot.state == "failed":
                return
            slot.state = "failed"
            slot.abandoned = True
            slot.error = f"sink {slot.name} {why}; abandoned"
        lost = slot.channel.kill()
        if lost:
            self._metrics.drop(f"sink:{slot.name}", lost)
        log.error("%s", slot.error)
        threading.Thread(target=self.close_quietly, args=(slot,), name=f"livestyle-close-{slot.name}",
                         daemon=True).start()

    def close_quietly(self, slot: SinkSlot) -> None:
        """Close a sink (detached from the audio first); a failure is logged and kept as its error."""
        if self.audio is not None:
            self.audio.detach(slot.name)
        try:
            slot.sink.close()
        except Exception as exc:  # noqa: BLE001 - report, keep closing the rest
            msg = one_line(exc)
            log.error("closing sink %s: %s", slot.name, msg)
            if slot.error is None:
                slot.error = msg
                slot.state = "failed"

    def errors(self) -> dict[str, str]:
        """``{name: error}`` of the sinks that failed."""
        return {s.name: s.error for s in self.slots if s.error}

    def stats(self, drops: dict[str, int]) -> dict[str, dict[str, Any]]:
        """Per sink: state, frames written, frames queued, frames dropped (from the run's ``drops``), error."""
        return {
            s.name: {
                "state": s.state,
                "written": s.written,
                "queued": len(s.channel),
                "dropped": drops.get(f"sink:{s.name}", 0),
                "error": s.error,
            }
            for s in self.slots
        }

    def _check_all_failed(self, slot: SinkSlot) -> None:
        if all(s.state == "failed" for s in self.slots):
            self._on_all_failed(SinkError(f"every sink failed; last: {slot.name}: {slot.error}"))
