"""The streaming runner: one source, one generator, any number of sinks, wired with threads.

::

    source thread --inbox (newest 2 chunks)--> worker (generator) --due times--> per-sink queues --> sink threads
                                                  ^
                                   commands (submit from any thread; coalesced)

* The source thread reads frames, resizes any frame whose size differs from the pipeline size and
  puts it in the worker's :class:`~livestyle.engine.channels.Inbox`, which holds the newest two
  chunks: one generator call up to two chunk periods long loses no input; a generator slower
  than real time loses whole chunks, evenly (``drops["input"]``).
* The worker is one long-lived thread. Before the first live chunk it warms the generator *on
  itself* (``generator.warmup(size)`` when the generator has one: cuDNN autotuning, CUDA graphs
  and compiled code are per-thread or per-shape state); frames that arrive meanwhile are
  discarded and counted as ``drops["warmup"]``, not as losses. Then it takes whole chunks,
  applies commands between them (:class:`~livestyle.engine.live_settings.LiveSettings`:
  ``SetBypass`` and ``Stop`` itself, the rest through ``generator.apply``; a command that fails
  is a command error in the stats, never the end of the stream), runs the generator and hands
  each output frame to every sink with a due time.
* Due times come from capture times, not from the previous chunk
  (:class:`~livestyle.engine.delivery.DeliveryScheduler`): each frame is shown at
  ``capture_time + D``, D learned from recent chunk delays.
* Each sink has its own thread and :class:`~livestyle.engine.channels.SinkChannel`
  (:mod:`livestyle.engine.sink_threads`), which never evicts a frame that is still due; a sink
  slower than real time drops its own late frames (``drops["sink:<name>"]``). A sink whose
  ``write`` fails, or blocks longer than ``sink_timeout``, is reported, closed and abandoned; the
  others go on.
* The status thread calls the stats listeners every ``status_interval`` and watches for sink
  writes that hang. In the main thread, :meth:`Runner.run` turns Ctrl-C, SIGTERM and SIGHUP into
  a clean stop (:mod:`livestyle.engine.stop_signals`).
* ``backpressure=True`` (``--no-pace``: offline, as fast as possible) drops nothing: the source
  waits for the worker and the worker waits for every sink, and output is not paced.

Metrics (:meth:`Runner.stats`, :mod:`livestyle.engine.metrics`): viewer-side ``fps_written``,
``frames_lost``, ``gap_ms`` (judder), ``stalls``, ``latency_ms`` (glass to glass, p50/p95/p99)
and ``viewer`` per sink; producer-side ``stage_ms`` (``inbox_wait``, ``resize``, ``generate``,
``sink:<name>``), ``drops`` (``input``, ``warmup``, ``chunk_tail``, ``sink:<name>``, ``audio``) and
``delivery`` (the current offset D and late frames).

Audio (optional, :mod:`livestyle.engine.audio`): when the source offers audio
(``audio_info()`` / ``set_audio_callback``) and a sink takes it (``open_audio`` / ``write_audio``),
an :class:`~livestyle.engine.audio.AudioPath` thread carries it from the source to those sinks
past the generator, bypass or not, and never drops it for the video's sake. Each such sink is
closed only after the audio has ended (or ``AUDIO_DRAIN_S`` passed), so a recording ends with its
audio. ``stats()["audio"]`` holds its counters; ``drops["audio"]`` chunks lost to a stalled sink.

Everything hands over by signalling (conditions and events); nothing polls. The clock is a
parameter, so drop policy, pacing and latency are tested exactly. docs/architecture.md draws the
threads and queues of a whole live stream.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from livestyle.errors import ConfigError, PipelineError, SourceError
from livestyle.engine.audio import AudioPath
from livestyle.engine.channels import Inbox
from livestyle.engine.commands import SetSize
from livestyle.engine.delivery import DeliveryScheduler
from livestyle.engine.frames import Frame, Generator, Sink, Source, StreamInfo
from livestyle.engine.governor import Governor
from livestyle.engine.live_settings import LiveSettings
from livestyle.engine.metrics import Metrics
from livestyle.engine.resize import resize_frame
from livestyle.engine.run_report import RunReport
from livestyle.engine.sink_threads import SinkThreads
from livestyle.engine.stop_signals import install_stop_handlers

__all__ = ["Runner"]

log = logging.getLogger(__name__)

StatsListener = Callable[[dict[str, Any]], None]
Clock = Callable[[], float]


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
            preview, :meth:`~livestyle.effects.generator.EffectGenerator.bypassed`); None: the raw input.
        inbox_chunks: input chunks that may wait for the generator (2: one long call loses nothing).
        warmup: warm the generator on the worker thread before the first live chunk (when it has
            a ``warmup(size)`` method).
        sink_timeout: seconds one ``write`` may block before its sink is failed and abandoned.
        delivery: the scheduler of due times (default: :class:`DeliveryScheduler` at ``fps``).
        fit: how a source frame of another shape is brought to ``size``: ``crop`` (default: centre
            crop, aspect kept), ``pad`` or ``stretch``.
        size_for_source: once the source is open, its size -> the size to work and write at
            (e.g. :func:`~livestyle.engine.fit.working_size`: the source's aspect ratio); None
            keeps ``size``.
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
        size_for_source: Callable[[tuple[int, int]], tuple[int, int]] | None = None,
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
        self._size_for_source = size_for_source
        self._listeners: list[StatsListener] = []
        self._lock = threading.Lock()
        self._stop_reason: str | None = None
        self._error: BaseException | None = None
        self._started = self._opening = False
        self._done = threading.Event()
        self._finished = False
        self._hurry = threading.Event()  # set on stop: skip pacing waits while draining
        self._sinks = SinkThreads(
            sinks, sink_queue=sink_queue, backpressure=backpressure, clock=clock, metrics=self._metrics,
            hurry=self._hurry, on_all_failed=lambda exc: self._fail(exc, "sinks_failed"),
            stop_reason=self._current_reason,
        )
        self._live = LiveSettings(
            generator, size=self._size, fps=self._fps, clock=clock, governor=governor,
            delivery=self._delivery, inbox=self._inbox, on_stop=lambda: self.stop("stopped"),
        )
        self._frames_out = 0
        self._resize_noted = False
        self._threads: list[threading.Thread] = []
        self._source_thread: threading.Thread | None = None
        self._t_start = 0.0
        self._clock_started = False  # _t_start is set once the source is open (serve: its first browser)
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
        self._started = self._opening = True
        try:  # a stop while open() waits (a browser source before its publisher) is a clean stop
            info = self._source.open()
        except SourceError:
            if self._stop_at is None:
                raise
            self._done.set()
            return
        finally:
            self._opening = False
        if self._size_for_source is not None and info.width > 0 and info.height > 0:
            self._follow_source((info.width, info.height))
        sink_info = StreamInfo(
            width=self._size[0], height=self._size[1], fps=self._fps, time_base=info.time_base
        )
        try:
            audio_sinks = self._open_audio()
            self._sinks.open(sink_info)  # closes the sinks it opened if one fails
        except BaseException:
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
        self._clock_started = True
        if audio_sinks:
            self._audio = AudioPath(
                audio_sinks,
                backpressure=self._backpressure,
                on_drop=lambda n: self._metrics.drop("audio", n),
            )
            self._sinks.audio = self._audio
            self._source.set_audio_callback(self._audio.put)  # type: ignore[attr-defined]
            self._audio.start()
        sink_threads = self._sinks.make_threads()
        self._source_thread = threading.Thread(
            target=self._source_loop, name="livestyle-source", daemon=True
        )
        worker = threading.Thread(target=self._worker_loop, name="livestyle-worker", daemon=True)
        status = threading.Thread(target=self._status_loop, name="livestyle-status", daemon=True)
        self._threads = [*sink_threads, worker, status]
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
        taken = self._sinks.offer_audio(info)
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
        if self._opening:
            self._source.close()  # ends an open() that waits (start() then returns)

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
        sink_threads = {s.thread for s in self._sinks.slots}
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
        restore = install_stop_handlers(self._on_signal, self._hurry.set)
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
        return RunReport.from_stats(self.stats(), stop_reason=self._stop_reason or "running",
                                    sink_errors=self._sinks.errors(), signal=self._signal)

    def drop_log(self) -> list[tuple[float, str, int]]:
        """The last 256 drops as ``(monotonic time, stage, frames)``: when each loss happened."""
        return self._metrics.drop_log()

    def stats(self) -> dict[str, Any]:
        """A JSON-able snapshot: counts, fps in/out, drops, stage ms, latency ms, sinks, generator."""
        snap = self._metrics.snapshot(self._sinks.names)
        if self._t_end is not None:
            snap["elapsed_s"] = round(self._t_end - self._t_start, 3)
        elif self._clock_started:
            snap["elapsed_s"] = round(self._clock() - self._t_start, 3)
        live = self._live.stats()
        with self._lock:
            snap.update(
                {
                    "running": self._started and not self._finished,
                    "stop_reason": self._stop_reason,
                    "bypass": live["bypass"],
                    "size": list(self._size),
                    "work_size": live["work_size"],
                    "fps": self._fps,
                    "commands_applied": live["commands_applied"],
                    "commands_coalesced": self._inbox.coalesced,
                    "command_errors": live["command_errors"],
                    "last_command_error": live["last_command_error"],
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
            **self._delivery.summary(),
        }
        snap["sinks"] = self._sinks.stats(snap["drops"])
        try:
            snap["generator"] = dict(self._generator.stats())
        except Exception as exc:  # noqa: BLE001 - stats are advisory; never break the status line
            snap["generator"] = {"name": getattr(self._generator, "name", "?"), "error": str(exc)}
        if self._audio is not None:
            snap["audio"] = self._audio.stats()
        return snap

    @property
    def bypass(self) -> bool:
        return self._live.bypass

    def _follow_source(self, source: tuple[int, int]) -> None:
        """Work (and write) at ``size_for_source(source)``: e.g. a 4:3 camera's aspect ratio at
        about the requested pixel count, so nothing is cropped or stretched (``stream.aspect``)."""
        assert self._size_for_source is not None
        size = self._size_for_source(source)
        if size == self._size:
            return
        log.info("source %s is %dx%d: working at %dx%d (its aspect ratio)", self._source.name, *source, *size)
        self._size = size
        self._live.apply(SetSize(*size))  # before the warm-up, so the first chunk is already at this size

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
                    self._live.apply(command)
                if self._inbox.stopped:
                    break
                if frames:
                    now = self._clock()
                    for frame in frames:
                        self._metrics.stage("inbox_wait", max(0.0, now - frame.capture_time))
                    if self.bypass:
                        self._emit(self._bypassed(frames))
                        if self._live.bypass_by_governor:
                            self._live.govern(0.0, len(frames))
                    elif len(frames) < max(1, int(self._generator.frames_needed())):
                        self._metrics.drop("chunk_tail", len(frames))  # the source ended mid-chunk
                    else:
                        t0 = self._clock()
                        self._emit(self._generate(frames))
                        self._live.govern(1000.0 * (self._clock() - t0), len(frames))
                if done or self._inbox.stopped:
                    break
        except Exception as exc:  # noqa: BLE001 - reported through run() after a clean stop
            log.error("generator %s failed: %s", getattr(self._generator, "name", "?"), exc)
            self._fail(exc)
        finally:
            self._inbox.stop()
            self._sinks.finish(self._stop_time)
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
            warm(self._live.work_size)
            # Whatever loading and warming allocated is here for good: collect it once, then keep it
            # out of every later collection (a full collection over a loaded model stalls a chunk by
            # tens of ms). Still inside the warm-up: over a large heap this one collection takes
            # hundreds of ms, and the frames it holds up are warm-up frames, not live ones lost.
            gc.collect()
            gc.freeze()
        finally:
            flushed = self._inbox.flush()
            with self._lock:
                self._warming = False
                self._warmup_s = round(self._clock() - t0, 3)
            if flushed:
                self._metrics.drop("warmup", flushed)
            self._metrics.restart_viewer()
        log.info("generator %s warm in %.2f s", getattr(self._generator, "name", "?"), self._warmup_s)

    def _status_loop(self) -> None:
        """Call the stats listeners every ``status_interval``; watch for sink writes that hang."""
        tick = min(self._status_interval, 0.25)
        next_status = time.monotonic() + self._status_interval
        while not self._done.wait(tick):
            now = time.monotonic()
            self._sinks.watch(now, self._sink_timeout)
            if now >= next_status and not self._finished:
                next_status = now + self._status_interval
                self._notify(self.stats())

    # ---------------------------------------------------------------- helpers

    def _generate(self, chunk: list[Frame]) -> list[Frame]:
        work = self._live.work_size
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
        self._sinks.put(items)
        self._frames_out += len(frames)
        self._metrics.frame_out(len(frames))
        if self._max_frames is not None and self._frames_out >= self._max_frames:
            self._set_reason("max_frames")
            self._inbox.stop()

    def _notify(self, stats: dict[str, Any]) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for fn in listeners:
            try:
                fn(stats)
            except Exception as exc:  # noqa: BLE001 - a broken listener must not stop the stream
                log.warning("stats listener %r failed: %s", fn, exc)

    def _on_signal(self, signum: int) -> None:
        self._signal = signum
        log.warning("stopping (finishing the recordings; signal again to hurry)")
        self.stop("signal")

    def _current_reason(self) -> str | None:
        with self._lock:
            return self._stop_reason

    def _stop_time(self) -> float | None:
        return self._stop_at

    def _set_reason(self, reason: str) -> None:
        with self._lock:
            if self._stop_reason is None:
                self._stop_reason = reason

    def _fail(self, exc: BaseException, reason: str = "error") -> None:
        with self._lock:
            if self._error is None:
                self._error = exc
        self.stop(reason)
