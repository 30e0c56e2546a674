"""The streaming runner: one source, one generator, any number of sinks, wired with threads.

::

    source thread --inbox (newest 2 chunks)--> worker (generator) --due times--> per-sink queues --> sink threads
                                                  ^
                                   commands (submit from any thread; coalesced)

* The source thread reads frames, resizes any frame whose size differs from the pipeline size and
  puts it in the worker's :class:`~livestyle.pipeline.channels.Inbox`, which holds the newest two
  chunks: one generator call up to two chunk periods long loses no input; a generator slower
  than real time loses whole chunks, evenly (``drops["input"]``).
* The worker is one long-lived thread. Before the first live chunk it warms the generator *on
  itself* (``generator.warmup(size)`` when the generator has one: cuDNN autotuning, CUDA graphs
  and compiled code are per-thread or per-shape state); frames that arrive meanwhile are
  discarded and counted as ``drops["warmup"]``, not as losses. Then it takes whole chunks,
  applies commands between them (``SetBypass`` and ``Stop`` itself, the rest through
  ``generator.apply``; a command that fails is a command error in the stats, never the end of
  the stream), runs the generator and hands each output frame to every sink with a due time.
* Due times come from capture times, not from the previous chunk
  (:class:`~livestyle.pipeline.delivery.DeliveryScheduler`): each frame is shown at
  ``capture_time + D``, D learned from recent chunk delays.
* Each sink has its own thread and :class:`~livestyle.pipeline.channels.SinkChannel`, which never
  evicts a frame that is still due; a sink slower than real time drops its own late frames
  (``drops["sink:<name>"]``). A sink whose ``write`` fails, or blocks longer than
  ``sink_timeout``, is reported, closed and abandoned; the others go on.
* ``backpressure=True`` (``--no-pace``: offline, as fast as possible) drops nothing: the source
  waits for the worker and the worker waits for every sink, and output is not paced.

Metrics (:meth:`Runner.stats`, :mod:`livestyle.pipeline.metrics`): viewer-side ``fps_written``,
``frames_lost``, ``gap_ms`` (judder), ``stalls``, ``latency_ms`` (glass to glass, p50/p95/p99)
and ``viewer`` per sink; producer-side ``stage_ms`` (``inbox_wait``, ``resize``, ``generate``,
``sink:<name>``), ``drops`` (``input``, ``warmup``, ``chunk_tail``, ``sink:<name>``, ``audio``) and
``delivery`` (the current offset D and late frames).

Audio (optional, :mod:`livestyle.pipeline.audio`): when the source offers audio
(``audio_info()`` / ``set_audio_callback``) and a sink takes it (``open_audio`` / ``write_audio``),
an :class:`~livestyle.pipeline.audio.AudioPath` thread carries it from the source to those sinks
past the generator, bypass or not, and never drops it for the video's sake. Each such sink is
closed only after the audio has ended (or ``AUDIO_DRAIN_S`` passed), so a recording ends with its
audio. ``stats()["audio"]`` holds its counters; ``drops["audio"]`` chunks lost to a stalled sink.

Everything hands over by signalling (conditions and events); nothing polls. The clock is a
parameter, so drop policy, pacing and latency are tested exactly.
"""

from __future__ import annotations

import gc
import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import numpy as np

from livestyle.errors import ConfigError, LivestyleError, PipelineError, SinkError
from livestyle.pipeline.audio import AudioPath
from livestyle.pipeline.channels import Inbox, SinkChannel
from livestyle.pipeline.commands import SetBypass, SetDecoder, SetSize, SetSteps, Stop
from livestyle.pipeline.delivery import DeliveryScheduler
from livestyle.pipeline.frames import Frame, Generator, Sink, Source, StreamInfo
from livestyle.pipeline.governor import Governor, Observation, level_from_stats
from livestyle.pipeline.metrics import Metrics

__all__ = ["SHUTDOWN_S", "RunReport", "Runner", "resize_frame"]

log = logging.getLogger(__name__)

StatsListener = Callable[[dict[str, Any]], None]
Clock = Callable[[], float]

AUDIO_DRAIN_S = 3.0
"""Seconds a sink waits at the source's end for its remaining audio before it closes anyway."""
AUDIO_STOP_GRACE_S = 0.3
"""Seconds a sink waits after a stop for audio still on its way (a live source's audio lags a little)."""
SHUTDOWN_S = 1.5
"""Seconds a stop waits for the sinks to write what is queued and close; a sink still busy then
is marked failed and abandoned (its thread is a daemon), so a stalled network receiver can never
hold the process."""


def resize_frame(frame: Frame, size: tuple[int, int], fit: str = "stretch") -> Frame:
    """``frame`` with its picture resized to ``size`` = ``(width, height)`` (area/linear filter).

    ``fit``: ``stretch`` scales each axis on its own (the working-size round trip, whose aspect
    barely changes); ``crop`` / ``pad`` keep the picture's aspect (:mod:`livestyle.pipeline.fit`),
    for a source of another shape. The image stays ``uint8`` ``[H, W, 3]`` RGB; timing fields are kept.
    """
    width, height = size
    if frame.width == width and frame.height == height:
        return frame
    if fit != "stretch":
        from livestyle.pipeline.fit import check_fit, fit_image

        return frame.with_image(np.ascontiguousarray(fit_image(frame.image, size, check_fit(fit))))
    import cv2

    shrink = width < frame.width and height < frame.height
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    image = cv2.resize(frame.image, (width, height), interpolation=interp)
    return frame.with_image(np.ascontiguousarray(image))


@dataclass
class _SinkSlot:
    name: str
    sink: Sink
    channel: SinkChannel
    thread: threading.Thread | None = None
    state: str = "open"  # open | running | closed | failed
    written: int = 0
    error: str | None = None
    writing_since: float | None = None  # time.monotonic() when the current write began


@dataclass(frozen=True)
class RunReport:
    """How a run ended.

    ``stop_reason`` is one of ``"max_frames"``, ``"source_ended"``, ``"stopped"`` (``stop()`` or a
    ``Stop`` command), ``"signal"`` (Ctrl-C, SIGTERM or SIGHUP; ``signal`` says which),
    ``"sinks_failed"`` or ``"error"``.
    """

    frames_in: int
    frames_out: int
    drops: dict[str, int]
    duration_s: float
    stop_reason: str
    sink_errors: dict[str, str]
    latency_ms: dict[str, float]
    stats: dict[str, Any] = field(default_factory=dict)
    signal: int | None = None


class Runner:
    """Streams ``source`` through ``generator`` into ``sinks`` until stopped.

    Args:
        source: opened by :meth:`start` and closed by the source thread at the end.
        generator: the generator stage (``passthrough`` or a model pipeline).
        sinks: opened by :meth:`start` with the pipeline's :class:`StreamInfo`; closed (and so
            finalized) at the end, after their queued frames are written.
        size: pipeline picture size ``(width, height)``; other input sizes are resized to it.
        fps: nominal frame rate, given to the sinks and used for output pacing.
        max_frames: stop after this many output frames (None: run until stopped / source end).
        sink_queue: frames each sink may hold before it drops late ones (at least two chunks are
            always kept; frames still due are never dropped).
        clock: monotonic seconds; the same clock sources use for ``Frame.capture_time``.
        backpressure: drop nothing and do not pace (offline use, ``--no-pace``).
        status_interval: seconds between calls of the stats listeners.
        bypass_filter: applied to each frame shown in bypass (e.g. the effect wrapper's mask
            preview, :meth:`~livestyle.pipeline.effects.EffectGenerator.bypassed`); None: the raw input.
        inbox_chunks: input chunks that may wait for the generator (2: one long call loses nothing).
        warmup: warm the generator on the worker thread before the first live chunk (when it has
            a ``warmup(size)`` method).
        sink_timeout: seconds one ``write`` may block before its sink is failed and abandoned.
        delivery: the scheduler of due times (default: :class:`DeliveryScheduler` at ``fps``).
        fit: how a source frame of another shape is brought to ``size``: ``crop`` (default: centre
            crop, aspect kept), ``pad`` or ``stretch``.
        governor: steps quality down when the generator falls behind (None: settings pinned).
            It sees each chunk's time against the chunk period, the delivery offset D as the
            latency and the frames waiting as the backlog; its decisions are applied between
            chunks and listed in ``stats()["governor"]`` with their reasons.
    """

    def __init__(
        self,
        source: Source,
        generator: Generator,
        sinks: Sequence[Sink],
        *,
        size: tuple[int, int],
        fps: float,
        max_frames: int | None = None,
        sink_queue: int = 4,
        clock: Clock = time.monotonic,
        backpressure: bool = False,
        status_interval: float = 1.0,
        bypass_filter: Callable[[Frame], Frame] | None = None,
        inbox_chunks: int = 2,
        warmup: bool = True,
        sink_timeout: float = 5.0,
        delivery: DeliveryScheduler | None = None,
        governor: Governor | None = None,
        fit: str = "crop",
    ) -> None:
        if max_frames is not None and max_frames < 1:
            raise ConfigError(f"max_frames must be at least 1 (or None to run until stopped), got {max_frames}")
        if fps <= 0:
            raise ConfigError(f"fps must be positive, got {fps}")
        if not sinks:
            raise ConfigError("the runner needs at least one sink (e.g. null, out.mp4, window)")
        if size[0] < 1 or size[1] < 1:
            raise ConfigError(f"size must be positive, got {size[0]}x{size[1]}")
        self._source = source
        self._generator = generator
        self._size = (int(size[0]), int(size[1]))
        self._work_size = self._size
        self._fps = float(fps)
        self._max_frames = max_frames
        self._clock = clock
        self._backpressure = backpressure
        self._status_interval = status_interval
        self._bypass_filter = bypass_filter
        self._metrics = Metrics(clock, fps=self._fps)
        self._inbox = Inbox(backpressure=backpressure, depth=inbox_chunks)
        self._delivery = delivery or DeliveryScheduler(self._fps)
        self._warmup = warmup
        self._warming = False
        self._warmup_s: float | None = None
        self._sink_timeout = float(sink_timeout)
        self._signal: int | None = None
        self._stop_at: float | None = None  # time.monotonic() of the first stop request
        self._governor = governor
        self._fit = fit
        self._governor_retop = True  # (re)build the ladder from the generator's settings at the next chunk
        self._bypass_by_governor = False
        self._sinks: list[_SinkSlot] = []
        seen: dict[str, int] = {}
        for sink in sinks:
            base = str(getattr(sink, "name", type(sink).__name__))
            seen[base] = seen.get(base, 0) + 1
            name = base if seen[base] == 1 else f"{base}#{seen[base]}"
            channel = SinkChannel(sink_queue, backpressure=backpressure, clock=clock)
            self._sinks.append(_SinkSlot(name, sink, channel))
        self._listeners: list[StatsListener] = []
        self._lock = threading.Lock()
        self._bypass = False
        self._stop_reason: str | None = None
        self._error: BaseException | None = None
        self._started = False
        self._done = threading.Event()
        self._finished = False
        self._hurry = threading.Event()  # set on stop: skip pacing waits while draining
        self._frames_out = 0
        self._commands_applied = 0
        self._command_errors = 0
        self._last_command_error: str | None = None
        self._resize_noted = False
        self._threads: list[threading.Thread] = []
        self._source_thread: threading.Thread | None = None
        self._t_start = 0.0
        self._t_end: float | None = None
        self._audio: AudioPath | None = None

    # ---------------------------------------------------------------- public API

    def submit(self, command: object) -> None:
        """Queue a command for the worker (thread-safe; applied before the next chunk)."""
        self._inbox.put_command(command)

    def add_stats_listener(self, fn: StatsListener) -> None:
        """Call ``fn(stats)`` every ``status_interval`` seconds and once at the end."""
        with self._lock:
            self._listeners.append(fn)

    def start(self) -> None:
        """Open the source and sinks, then start the threads. Opening errors are raised here."""
        if self._started:
            raise PipelineError("runner already started; build a new Runner for a new stream")
        self._started = True
        info = self._source.open()
        sink_info = StreamInfo(
            width=self._size[0], height=self._size[1], fps=self._fps, time_base=info.time_base
        )
        opened: list[_SinkSlot] = []
        try:
            audio_sinks = self._open_audio()
            for slot in self._sinks:
                slot.sink.open(sink_info)
                opened.append(slot)
        except BaseException:
            for slot in opened:
                self._close_quietly(slot)
            try:
                self._source.close()
            except Exception as exc:  # noqa: BLE001 - already failing; report the first error
                log.warning("closing source %s after a sink failed to open: %s", self._source.name, exc)
            raise
        if (info.width, info.height) != self._size:
            log.info(
                "source %s gives %dx%d; frames are resized to %dx%d",
                self._source.name, info.width, info.height, *self._size,
            )
            self._resize_noted = True
        self._t_start = self._clock()
        if audio_sinks:
            self._audio = AudioPath(
                audio_sinks,
                backpressure=self._backpressure,
                on_drop=lambda n: self._metrics.drop("audio", n),
            )
            self._source.set_audio_callback(self._audio.put)  # type: ignore[attr-defined]
            self._audio.start()
        for slot in self._sinks:
            slot.state = "running"
            slot.thread = threading.Thread(
                target=self._sink_loop, args=(slot,), name=f"livestyle-sink-{slot.name}", daemon=True
            )
        self._source_thread = threading.Thread(
            target=self._source_loop, name="livestyle-source", daemon=True
        )
        worker = threading.Thread(target=self._worker_loop, name="livestyle-worker", daemon=True)
        status = threading.Thread(target=self._status_loop, name="livestyle-status", daemon=True)
        self._threads = [s.thread for s in self._sinks if s.thread] + [worker, status]
        self._inbox.set_chunk(max(1, int(self._generator.frames_needed())))
        # The source first: a stop (a signal) arriving while the threads start makes the worker
        # finish at once, and it joins the source thread, which must have been started by then.
        self._source_thread.start()
        for thread in self._threads:
            thread.start()

    def _open_audio(self) -> list[tuple[str, Any]]:
        """Offer the source's audio to the sinks that take it; the ``(name, sink)`` that do."""
        audio_info = getattr(self._source, "audio_info", None)
        info = audio_info() if callable(audio_info) else None
        if info is None or not callable(getattr(self._source, "set_audio_callback", None)):
            return []
        taken = []
        for slot in self._sinks:
            open_audio = getattr(slot.sink, "open_audio", None)
            if callable(open_audio) and callable(getattr(slot.sink, "write_audio", None)) and open_audio(info):
                taken.append((slot.name, slot.sink))
        if taken:
            log.info("audio %d Hz x%d to %s", info.sample_rate, info.channels, ", ".join(n for n, _ in taken))
        return taken

    def stop(self, reason: str = "stopped") -> None:
        """Stop cleanly (any thread; returns at once). Queued frames are still written, for at
        most ``SHUTDOWN_S`` seconds."""
        self._set_reason(reason)
        with self._lock:
            if self._stop_at is None:
                self._stop_at = time.monotonic()
        self._hurry.set()
        self._inbox.stop()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the run has ended and every sink is closed; False on timeout."""
        if not self._done.wait(timeout):
            return False
        self._join_threads()
        return True

    def _join_threads(self) -> None:
        # The worker sets `_done` and then unwinds, dropping the last references to the
        # generator's tensors, and the status thread may be reading generator stats. Let them
        # finish: a daemon thread touching torch while the interpreter shuts down aborts the
        # process ("terminate called without an active exception").
        sink_threads = {s.thread for s in self._sinks}
        for thread in self._threads:
            if thread is not threading.current_thread() and thread not in sink_threads:
                thread.join(timeout=10.0)

    def run(self) -> RunReport:
        """Start (if needed), stream until the end, and return the report (blocking).

        In the main thread, SIGINT and SIGTERM stop the run cleanly (recordings are finalized);
        a second signal restores the default handlers so a third one aborts.

        Raises:
            The error that ended the run (a source that failed mid-stream, a generator error,
            every sink failed), after everything is closed.
        """
        restore = self._install_signal_handlers()
        try:
            if not self._started:
                self.start()
            # In the main thread, wake now and then so Python runs signal handlers promptly.
            timeout = 0.5 if threading.current_thread() is threading.main_thread() else None
            while not self._done.wait(timeout):
                pass
            self._join_threads()
        finally:
            restore()
        report = self.report()
        if self._error is not None:
            raise self._error
        return report

    def report(self) -> RunReport:
        """The report of a finished run (or of the run so far)."""
        stats = self.stats()
        return RunReport(
            frames_in=stats["frames_in"],
            frames_out=stats["frames_out"],
            drops=stats["drops"],
            duration_s=stats["elapsed_s"],
            stop_reason=self._stop_reason or "running",
            sink_errors={s.name: s.error for s in self._sinks if s.error},
            latency_ms=stats["latency_ms"],
            stats=stats,
            signal=self._signal,
        )

    def drop_log(self) -> list[tuple[float, str, int]]:
        """The last 256 drops as ``(monotonic time, stage, frames)``: when each loss happened."""
        return self._metrics.drop_log()

    def stats(self) -> dict[str, Any]:
        """A JSON-able snapshot: counts, fps in/out, drops, stage ms, latency ms, sinks, generator."""
        snap = self._metrics.snapshot([s.name for s in self._sinks])
        if self._t_end is not None:
            snap["elapsed_s"] = round(self._t_end - self._t_start, 3)
        elif self._started:
            snap["elapsed_s"] = round(self._clock() - self._t_start, 3)
        with self._lock:
            snap.update(
                {
                    "running": self._started and not self._finished,
                    "stop_reason": self._stop_reason,
                    "bypass": self._bypass,
                    "size": list(self._size),
                    "work_size": list(self._work_size),
                    "fps": self._fps,
                    "commands_applied": self._commands_applied,
                    "commands_coalesced": self._inbox.coalesced,
                    "command_errors": self._command_errors,
                    "last_command_error": self._last_command_error,
                    "warming": self._warming,
                    "warmup_s": self._warmup_s,
                    "inbox": len(self._inbox),
                }
            )
        snap["g2g_p95_ms"] = snap["latency_ms"]["p95"]
        snap["governor"] = self._governor.stats(self._t_start) if self._governor is not None else {"enabled": False}
        offset = self._delivery.offset
        snap["delivery"] = {
            "offset_ms": round(1000.0 * offset, 1) if offset is not None else None,
            "late_frames": self._delivery.late_frames,
        }
        snap["sinks"] = {
            s.name: {
                "state": s.state,
                "written": s.written,
                "queued": len(s.channel),
                "dropped": snap["drops"].get(f"sink:{s.name}", 0),
                "error": s.error,
            }
            for s in self._sinks
        }
        try:
            snap["generator"] = dict(self._generator.stats())
        except Exception as exc:  # noqa: BLE001 - stats are advisory; never break the status line
            snap["generator"] = {"name": getattr(self._generator, "name", "?"), "error": str(exc)}
        if self._audio is not None:
            snap["audio"] = self._audio.stats()
        return snap

    @property
    def bypass(self) -> bool:
        with self._lock:
            return self._bypass

    # ---------------------------------------------------------------- threads

    def _source_loop(self) -> None:
        try:
            for frame in self._source.frames():
                if self._inbox.stopped:
                    break
                self._metrics.frame_in()
                if (frame.width, frame.height) != self._size:
                    if not self._resize_noted:
                        self._resize_noted = True
                        log.info(
                            "source %s changed to %dx%d; frames are resized to %dx%d",
                            self._source.name, frame.width, frame.height, *self._size,
                        )
                    with self._metrics.time("resize"):
                        frame = resize_frame(frame, self._size, self._fit)
                dropped = self._inbox.put_frame(frame)
                if dropped is None:
                    break
                if dropped:
                    self._metrics.drop("warmup" if self._warming else "input", dropped)
            else:
                self._set_reason("source_ended")
        except Exception as exc:  # noqa: BLE001 - reported through run() after the frames read are written
            log.error("source %s failed: %s", self._source.name, exc)
            with self._lock:
                if self._error is None:
                    self._error = exc
            self._set_reason("error")  # no stop: the frames already read still go through (a recording keeps them)
        finally:
            self._inbox.end()
            try:
                self._source.close()
            except Exception as exc:  # noqa: BLE001 - the stream is over; report and go on
                log.warning("closing source %s: %s", self._source.name, exc)
            if self._audio is not None:
                self._audio.end()

    def _worker_loop(self) -> None:
        try:
            self._warm_generator()
            while True:
                self._inbox.set_chunk(1 if self.bypass else max(1, int(self._generator.frames_needed())))
                commands, frames, done = self._inbox.take()
                for command in commands:
                    self._apply(command)
                if self._inbox.stopped:
                    break
                if frames:
                    now = self._clock()
                    for frame in frames:
                        self._metrics.stage("inbox_wait", max(0.0, now - frame.capture_time))
                    if self.bypass:
                        self._emit(self._bypassed(frames))
                        if self._bypass_by_governor:
                            self._govern(0.0, len(frames))
                    elif len(frames) < max(1, int(self._generator.frames_needed())):
                        self._metrics.drop("chunk_tail", len(frames))  # the source ended mid-chunk
                    else:
                        t0 = self._clock()
                        self._emit(self._generate(frames))
                        self._govern(1000.0 * (self._clock() - t0), len(frames))
                if done or self._inbox.stopped:
                    break
        except Exception as exc:  # noqa: BLE001 - reported through run() after a clean stop
            log.error("generator %s failed: %s", getattr(self._generator, "name", "?"), exc)
            self._fail(exc)
        finally:
            self._inbox.stop()
            self._finish_sinks()
            if self._source_thread is not None and self._source_thread.ident is not None:
                # The sinks are closed (their audio drained), so wake a source still blocked waiting
                # for its next frame (a camera, a publisher that left); close() is thread-safe,
                # never blocks, and closing earlier would cut off audio still on its way.
                try:
                    self._source.close()
                except Exception as exc:  # noqa: BLE001 - the stream is over; report and go on
                    log.warning("closing source %s: %s", self._source.name, exc)
                wait = 0.5 if self._stop_at is not None else 2.0
                self._source_thread.join(timeout=wait)
                if self._source_thread.is_alive():
                    log.warning("source %s did not stop within %g s; leaving it", self._source.name, wait)
            if self._audio is not None:
                self._audio.join(timeout=2.0)
            self._t_end = self._clock()
            self._set_reason("stopped")
            self._finished = True
            self._notify(self.stats())
            self._done.set()

    def _warm_generator(self) -> None:
        """Run the generator's warm-up on this thread, then start the live stream afresh.

        cuDNN's autotuner cache and the current CUDA stream are per thread, so a generator warmed
        on another thread pays its first-call cost (0.8-1.4 s measured on an H200) again here.
        Frames that arrive meanwhile are counted as ``drops["warmup"]``.
        """
        warm = getattr(self._generator, "warmup", None)
        if not self._warmup or not callable(warm) or self._backpressure:
            return
        with self._lock:
            self._warming = True
        t0 = self._clock()
        try:
            warm(self._work_size)
        finally:
            flushed = self._inbox.flush()
            with self._lock:
                self._warming = False
                self._warmup_s = round(self._clock() - t0, 3)
            if flushed:
                self._metrics.drop("warmup", flushed)
            self._metrics.restart_viewer()
        # Whatever loading and warming allocated is here for good: collect it once, then keep it out
        # of every later collection (a full collection over a loaded model stalls a chunk by tens of ms).
        gc.collect()
        gc.freeze()
        log.info("generator %s warm in %.2f s", getattr(self._generator, "name", "?"), self._warmup_s)

    def _finish_sinks(self) -> None:
        """Close every sink channel and wait for the sinks to drain and close. Once a stop was
        asked for, a sink gets at most ``SHUTDOWN_S`` from the stop; one still busy then is failed
        and abandoned (a stalled network receiver must not hold the process)."""
        for slot in self._sinks:
            slot.channel.close()
        for slot in self._sinks:
            thread = slot.thread
            while thread is not None and thread.is_alive():
                stop_at = self._stop_at
                if stop_at is None:
                    thread.join(0.1)
                    continue
                remaining = stop_at + SHUTDOWN_S - time.monotonic()
                if remaining <= 0:
                    self._abandon(slot, f"still writing {SHUTDOWN_S:g} s after the stop")
                    break
                thread.join(min(remaining, 0.1))

    def _abandon(self, slot: _SinkSlot, why: str) -> None:
        """Mark a stuck sink failed, forget its queue and close it on a throwaway thread."""
        with self._lock:
            if slot.state == "failed":
                return
            slot.state = "failed"
            slot.error = f"sink {slot.name} {why}; abandoned"
        lost = slot.channel.kill()
        if lost:
            self._metrics.drop(f"sink:{slot.name}", lost)
        log.error("%s", slot.error)
        threading.Thread(target=self._close_quietly, args=(slot,), name=f"livestyle-close-{slot.name}",
                         daemon=True).start()

    def _sink_loop(self, slot: _SinkSlot) -> None:
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
            slot.error = _one_line(exc)
            slot.state = "failed"
            lost = slot.channel.kill()
            if lost:
                self._metrics.drop(stage, lost)
            log.error("sink %s failed and was closed; the other sinks go on: %s", slot.name, slot.error)
            self._close_quietly(slot)
            if all(s.state == "failed" for s in self._sinks):
                self._fail(SinkError(f"every sink failed; last: {slot.name}: {slot.error}"), "sinks_failed")
            return
        if self._audio is not None and slot.name in self._audio.sink_names:
            # The source's last audio may still be on the way. At the source's end it soon ends;
            # after a stop a live source may never end (it waits for its next frame), so it gets
            # a short grace for audio in flight, then what is queued is written.
            with self._lock:
                ended = self._stop_reason in ("source_ended", "error")
            wait = AUDIO_DRAIN_S if ended else AUDIO_STOP_GRACE_S
            if not self._audio.wait_drained(wait) and not self._audio.wait_drained(wait, until_end=False):
                log.warning("sink %s: audio still queued after %g s; closing", slot.name, 2 * wait)
            self._audio.detach(slot.name)
        self._close_quietly(slot)
        if slot.state != "failed":
            slot.state = "closed"

    def _status_loop(self) -> None:
        """Call the stats listeners every ``status_interval``; watch for sink writes that hang."""
        tick = min(self._status_interval, 0.25)
        next_status = time.monotonic() + self._status_interval
        while not self._done.wait(tick):
            now = time.monotonic()
            for slot in self._sinks:
                since = slot.writing_since
                if since is not None and now - since > self._sink_timeout and slot.state != "failed":
                    self._abandon(slot, f"blocked in write for more than {self._sink_timeout:g} s")
                    if all(s.state == "failed" for s in self._sinks):
                        self._fail(SinkError(f"every sink failed; last: {slot.name}: {slot.error}"), "sinks_failed")
            if now >= next_status and not self._finished:
                next_status = now + self._status_interval
                self._notify(self.stats())

    # ---------------------------------------------------------------- helpers

    def _generate(self, chunk: list[Frame]) -> list[Frame]:
        work = self._work_size
        if work != self._size:
            chunk = [resize_frame(f, work) for f in chunk]
        with self._metrics.time("generate"):
            out = self._generator.process(chunk)
        if work != self._size:
            out = [resize_frame(f, self._size) for f in out]
        return out

    def _bypassed(self, frames: list[Frame]) -> list[Frame]:
        if self._bypass_filter is None:
            return frames
        with self._metrics.time("bypass_filter"):
            return [self._bypass_filter(f) for f in frames]

    def _emit(self, frames: list[Frame]) -> None:
        if not frames:
            return
        if self._max_frames is not None:
            frames = frames[: max(0, self._max_frames - self._frames_out)]
            if not frames:
                return
        frames = [f if (f.width, f.height) == self._size else resize_frame(f, self._size) for f in frames]
        if self._backpressure:
            items: list[tuple[float | None, Frame]] = [(None, f) for f in frames]
        else:
            dues = self._delivery.schedule([f.capture_time for f in frames], self._clock())
            items = list(zip(dues, frames))
        for slot in self._sinks:
            if slot.channel.alive:
                dropped = slot.channel.put(items)
                if dropped:
                    self._metrics.drop(f"sink:{slot.name}", dropped)
        self._frames_out += len(frames)
        self._metrics.frame_out(len(frames))
        if self._max_frames is not None and self._frames_out >= self._max_frames:
            self._set_reason("max_frames")
            self._inbox.stop()

    def _govern(self, chunk_ms: float, frames: int) -> None:
        """Show the governor one chunk (or bypassed frames at its bypass rung); apply its decision."""
        gov = self._governor
        if gov is None:
            return
        if self._governor_retop:
            self._governor_retop = False
            try:
                gov.retop(level_from_stats(self._generator.stats()))
            except Exception as exc:  # noqa: BLE001 - stats are advisory; the stream goes on ungoverned
                log.warning("governor off: the generator's settings are unreadable (%s)", exc)
                gov.retop(None)
        with self._lock:
            if self._bypass and not self._bypass_by_governor:
                return  # the streamer's own bypass (the panic button): hands off
        offset = self._delivery.offset
        obs = Observation(chunk_ms=chunk_ms, latency_ms=None if offset is None else 1000.0 * offset,
                          backlog=max(0, len(self._inbox) - frames), now=self._clock())
        budget = 1000.0 * max(1, int(self._generator.frames_needed())) / self._fps
        decision = gov.observe(obs, chunk_budget_ms=budget)
        if decision is None:
            return
        log.warning("governor: %s -> %s (%s)", decision.before.describe(), decision.after.describe(), decision.reason)
        for command in decision.commands:
            self._apply(command, by_governor=True)

    def _apply(self, command: object, *, by_governor: bool = False) -> None:
        """Apply one command between chunks. Nothing a command does can end the stream: a refused
        or failing command is counted in ``command_errors`` with its reason, and the stream goes on.
        A streamer's own change of steps, decoder, size or bypass resets the governor's ladder
        to the new settings (``by_governor``: the change is the governor's)."""
        with self._lock:
            self._commands_applied += 1
        if isinstance(command, Stop):
            self.stop("stopped")
            return
        if isinstance(command, SetBypass):
            with self._lock:
                on = (not self._bypass) if command.value is None else bool(command.value)
                if not by_governor and self._bypass_by_governor and on:
                    on = True  # the streamer confirms bypass: it is theirs now
                self._bypass = on
                self._bypass_by_governor = on and by_governor
            if not by_governor:
                self._governor_retop = True
            log.info("bypass %s%s", "on" if on else "off", " (governor)" if by_governor else "")
            return
        if not by_governor and isinstance(command, (SetSteps, SetDecoder, SetSize)):
            self._governor_retop = True
        if isinstance(command, SetSize):
            size = (int(command.width), int(command.height))
            if size[0] % 16 or size[1] % 16 or min(size) < 16:
                self._command_failed(f"SetSize {size[0]}x{size[1]}: sides must be positive multiples of 16")
                return
        try:
            self._generator.apply(command)
        except LivestyleError as exc:
            self._command_failed(f"{type(command).__name__}: {exc}")
            return
        except Exception as exc:
            log.exception("applying %s failed", type(command).__name__)
            self._command_failed(f"{type(command).__name__}: {_one_line(exc)}")
            return
        if isinstance(command, SetSize):
            self._work_size = (int(command.width), int(command.height))

    def _command_failed(self, message: str) -> None:
        log.warning("command not applied: %s", message)
        with self._lock:
            self._command_errors += 1
            self._last_command_error = message

    def _notify(self, stats: dict[str, Any]) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for fn in listeners:
            try:
                fn(stats)
            except Exception as exc:  # noqa: BLE001 - a broken listener must not stop the stream
                log.warning("stats listener %r failed: %s", fn, exc)

    def _set_reason(self, reason: str) -> None:
        with self._lock:
            if self._stop_reason is None:
                self._stop_reason = reason

    def _fail(self, exc: BaseException, reason: str = "error") -> None:
        with self._lock:
            if self._error is None:
                self._error = exc
        self.stop(reason)

    def _close_quietly(self, slot: _SinkSlot) -> None:
        if self._audio is not None:
            self._audio.detach(slot.name)
        try:
            slot.sink.close()
        except Exception as exc:  # noqa: BLE001 - report, keep closing the rest
            msg = _one_line(exc)
            log.error("closing sink %s: %s", slot.name, msg)
            if slot.error is None:
                slot.error = msg
                slot.state = "failed"

    def _install_signal_handlers(self) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return _noop
        count = 0
        # SIGHUP (the terminal closed) finishes the recordings like SIGTERM does
        sigs = [signal.SIGINT, signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
        previous = {s: signal.getsignal(s) for s in sigs}

        def handler(signum: int, frame: FrameType | None) -> None:
            nonlocal count
            count += 1
            if count == 1:
                self._signal = signum
                log.warning("stopping (finishing the recordings; signal again to hurry)")
                self.stop("signal")
            else:
                self._hurry.set()
                for sig, prev in previous.items():
                    signal.signal(sig, prev)

        for sig in previous:
            signal.signal(sig, handler)

        def restore() -> None:
            for sig, prev in previous.items():
                if signal.getsignal(sig) is handler:
                    signal.signal(sig, prev)

        return restore


def _noop() -> None:
    return None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if isinstance(exc, LivestyleError) else f"{type(exc).__name__}: {text}"
