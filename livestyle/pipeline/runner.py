"""The streaming runner: one source, one generator, any number of sinks, wired with threads.

::

    source thread --latest-frame slot--> worker (generator) --per-sink queue--> sink thread(s)
                                            ^
                                 commands (submit from any thread)

* The source thread reads frames, resizes any frame whose size differs from the pipeline size and
  puts it in the worker's inbox, where the newest frame wins: a frame the worker has not taken yet
  is replaced and counted as dropped (``drops["input"]``).
* The worker assembles chunks of ``generator.frames_needed()`` frames, applies commands between
  chunks (``SetBypass`` and ``Stop`` itself, the rest through ``generator.apply``), runs the
  generator and hands each output frame to every sink. In bypass the generator is not touched and
  frames go straight to the sinks: the panic button.
* Each sink has its own thread and short queue; when a slow sink's queue is full its oldest frame
  is dropped (``drops["sink:<name>"]``), so a slow sink never holds up the others or the worker.
  A sink whose ``write`` fails is reported and closed; the others go on.
* Frames of one chunk are released to the sinks ``1/fps`` apart (output pacing, see
  :func:`spread_due_times`), so a model that produces 4 frames at once still shows a steady
  picture; single frames (bypass) go at once.
* ``backpressure=True`` (``--no-pace``: offline, as fast as possible) drops nothing: the source
  waits for the worker and the worker waits for every sink, and output is not paced.

Metrics (:meth:`Runner.stats`): ``stage_ms`` holds ``inbox_wait`` (capture to the worker taking
the frame), ``resize``, ``generate`` (per chunk) and ``sink:<name>`` (per write); ``drops`` holds
``input``, ``chunk_tail`` (a half-built chunk at the end) and ``sink:<name>``; ``latency_ms`` is
glass to glass (sink write done minus ``Frame.capture_time``).

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

import logging
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import numpy as np

from livestyle.control.commands import SetBypass, SetSize, Stop
from livestyle.errors import ConfigError, LivestyleError, PipelineError, SinkError
from livestyle.pipeline.audio import AudioPath
from livestyle.pipeline.frames import Frame, Generator, Sink, Source, StreamInfo
from livestyle.pipeline.metrics import Metrics

__all__ = ["Runner", "RunReport", "Inbox", "SinkChannel", "spread_due_times", "resize_frame"]

log = logging.getLogger(__name__)

StatsListener = Callable[[dict[str, Any]], None]
Clock = Callable[[], float]

AUDIO_DRAIN_S = 3.0
"""Seconds a sink waits at the source's end for its remaining audio before it closes anyway."""
AUDIO_STOP_GRACE_S = 0.3
"""Seconds a sink waits after a stop for audio still on its way (a live source's audio lags a little)."""


def spread_due_times(n: int, now: float, fps: float, last_due: float | None = None) -> list[float]:
    """Release times for ``n`` frames that the generator produced together at ``now``.

    One frame (bypass, single-frame chunks) goes at once: pacing it could only add latency,
    and a camera slightly faster than ``fps`` would make that latency grow. Several frames go
    one period (``1 / fps``) apart, starting one period after the previous chunk's last frame
    (``last_due``) so chunks join up evenly, but never later than one chunk's duration
    (``n / fps``) after ``now``, so a source faster than ``fps`` cannot build up delay.
    """
    period = 1.0 / fps
    if n <= 1:
        return [now] * n
    start = now if last_due is None else max(now, min(last_due + period, now + n * period))
    return [start + i * period for i in range(n)]


def resize_frame(frame: Frame, size: tuple[int, int]) -> Frame:
    """``frame`` with its picture resized to ``size`` = ``(width, height)`` (area/linear filter).

    The image stays ``uint8`` ``[H, W, 3]`` RGB; timing fields are kept.
    """
    width, height = size
    if frame.width == width and frame.height == height:
        return frame
    import cv2

    shrink = width < frame.width and height < frame.height
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    image = cv2.resize(frame.image, (width, height), interpolation=interp)
    return frame.with_image(np.ascontiguousarray(image))


class Inbox:
    """The worker's mailbox: the newest ``capacity`` frames, a command queue and the end/stop flags.

    ``put_frame`` never blocks unless ``backpressure`` is set: when ``capacity`` frames wait
    untaken, the oldest is dropped for the newest, and the caller is told so it can count the
    drop. The worker sets ``capacity`` to the frames its next chunk needs, so a chunked generator
    that was busy finds a whole chunk of the newest consecutive frames waiting (with room for one
    frame it would find one, wait for the rest in real time, then drop again while it works).
    Commands keep their order relative to frames: a command submitted after a frame was put
    applies after that frame, one submitted before it applies before it.
    """

    def __init__(self, *, backpressure: bool = False, capacity: int = 1) -> None:
        self._cv = threading.Condition()
        self._frames: deque[tuple[int, Frame]] = deque()
        self._capacity = max(1, capacity)
        self._puts = 0
        self._commands: deque[tuple[int, object]] = deque()
        self._ended = False
        self._stopped = False
        self._backpressure = backpressure

    def set_capacity(self, capacity: int) -> int:
        """Keep at most ``capacity`` (>= 1) untaken frames; returns how many older ones were dropped."""
        with self._cv:
            self._capacity = max(1, int(capacity))
            dropped = 0
            while len(self._frames) > self._capacity:
                self._frames.popleft()
                dropped += 1
            self._cv.notify_all()
            return dropped

    def put_frame(self, frame: Frame) -> bool | None:
        """Offer a frame. Returns True if an untaken frame was dropped for it, False if not,
        None if the inbox is stopped (the frame was not taken; the producer should end)."""
        with self._cv:
            if self._backpressure:
                while len(self._frames) >= self._capacity and not self._stopped:
                    self._cv.wait()
            if self._stopped:
                return None
            dropped = len(self._frames) >= self._capacity
            if dropped:
                self._frames.popleft()
            self._puts += 1
            self._frames.append((self._puts, frame))
            self._cv.notify_all()
            return dropped

    def put_command(self, command: object) -> None:
        with self._cv:
            self._commands.append((self._puts, command))
            self._cv.notify_all()

    def end(self) -> None:
        """The source has no more frames."""
        with self._cv:
            self._ended = True
            self._cv.notify_all()

    def stop(self) -> None:
        """Stop now: wake everyone, refuse further frames."""
        with self._cv:
            self._stopped = True
            self._cv.notify_all()

    @property
    def stopped(self) -> bool:
        with self._cv:
            return self._stopped

    def take(self) -> tuple[list[object], Frame | None, bool]:
        """Block until there is a frame, a command, or the end; return ``(commands, frame, done)``.

        ``frame`` is the oldest waiting one; ``commands`` are the ones to apply before it (those
        submitted after it stay for the next call, which then returns at once). ``done`` is True
        when the inbox was stopped, or the source ended and nothing is left.
        """
        with self._cv:
            while not self._frames and not self._commands and not self._ended and not self._stopped:
                self._cv.wait()
            commands: list[object] = []
            frame: Frame | None = None
            if self._frames:
                seq, frame = self._frames.popleft()
                while self._commands and self._commands[0][0] < seq:
                    commands.append(self._commands.popleft()[1])
            else:
                commands = [c for _, c in self._commands]
                self._commands.clear()
            done = self._stopped or (self._ended and frame is None and not commands)
            self._cv.notify_all()
            return commands, frame, done


class SinkChannel:
    """One sink's queue: at most ``max(capacity, len(batch))`` frames; the oldest go first.

    Items are ``(due_time or None, frame)``. With ``backpressure`` a full queue makes ``put``
    wait instead of dropping.
    """

    def __init__(self, capacity: int, *, backpressure: bool = False) -> None:
        if capacity < 1:
            raise ConfigError(f"runner.sink_queue must be at least 1, got {capacity}")
        self.capacity = capacity
        self._cv = threading.Condition()
        self._items: deque[tuple[float | None, Frame]] = deque()
        self._closed = False
        self._dead = False
        self._backpressure = backpressure

    def put(self, items: Sequence[tuple[float | None, Frame]]) -> int:
        """Queue ``items``; return how many queued frames were dropped to make room."""
        limit = max(self.capacity, len(items))
        dropped = 0
        with self._cv:
            if self._dead:
                return 0
            if self._backpressure:
                while len(self._items) + len(items) > limit and not self._dead:
                    self._cv.wait()
                if self._dead:
                    return 0
            while self._items and len(self._items) + len(items) > limit:
                self._items.popleft()
                dropped += 1
            self._items.extend(items)
            self._cv.notify_all()
        return dropped

    def get(self) -> tuple[float | None, Frame] | None:
        """The next item; blocks while empty; None once closed and drained."""
        with self._cv:
            while not self._items and not self._closed:
                self._cv.wait()
            if not self._items:
                return None
            item = self._items.popleft()
            self._cv.notify_all()
            return item

    def close(self) -> None:
        """No more items will come; ``get`` drains what is queued, then returns None."""
        with self._cv:
            self._closed = True
            self._cv.notify_all()

    def kill(self) -> int:
        """The sink died: forget queued frames (returned count) and refuse new ones."""
        with self._cv:
            self._dead = True
            self._closed = True
            n = len(self._items)
            self._items.clear()
            self._cv.notify_all()
            return n

    @property
    def alive(self) -> bool:
        with self._cv:
            return not self._dead

    def __len__(self) -> int:
        with self._cv:
            return len(self._items)


@dataclass
class _SinkSlot:
    name: str
    sink: Sink
    channel: SinkChannel
    thread: threading.Thread | None = None
    state: str = "open"  # open | running | closed | failed
    written: int = 0
    error: str | None = None


@dataclass(frozen=True)
class RunReport:
    """How a run ended.

    ``stop_reason`` is one of ``"max_frames"``, ``"source_ended"``, ``"stopped"`` (``stop()`` or a
    ``Stop`` command), ``"signal"`` (Ctrl-C / SIGTERM), ``"sinks_failed"`` or ``"error"``.
    """

    frames_in: int
    frames_out: int
    drops: dict[str, int]
    duration_s: float
    stop_reason: str
    sink_errors: dict[str, str]
    latency_ms: dict[str, float]
    stats: dict[str, Any] = field(default_factory=dict)


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
        sink_queue: frames each sink may hold before it drops its oldest.
        clock: monotonic seconds; the same clock sources use for ``Frame.capture_time``.
        backpressure: drop nothing and do not pace (offline use, ``--no-pace``).
        status_interval: seconds between calls of the stats listeners.
        bypass_filter: applied to each frame shown in bypass (e.g. the effect wrapper's mask
            preview, :meth:`~livestyle.pipeline.effects.EffectGenerator.bypassed`); None: the raw input.
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
        self._metrics = Metrics(clock)
        self._inbox = Inbox(backpressure=backpressure)
        self._sinks: list[_SinkSlot] = []
        seen: dict[str, int] = {}
        for sink in sinks:
            base = str(getattr(sink, "name", type(sink).__name__))
            seen[base] = seen.get(base, 0) + 1
            name = base if seen[base] == 1 else f"{base}#{seen[base]}"
            self._sinks.append(_SinkSlot(name, sink, SinkChannel(sink_queue, backpressure=backpressure)))
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
        self._last_due: float | None = None
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
        self._inbox.set_capacity(max(1, int(self._generator.frames_needed())))
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
        """Stop cleanly (any thread; returns at once). Queued frames are still written."""
        self._set_reason(reason)
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
        for thread in self._threads:
            if thread is not threading.current_thread():
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
        )

    def stats(self) -> dict[str, Any]:
        """A JSON-able snapshot: counts, fps in/out, drops, stage ms, latency ms, sinks, generator."""
        snap = self._metrics.snapshot()
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
                    "command_errors": self._command_errors,
                    "last_command_error": self._last_command_error,
                }
            )
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
                        frame = resize_frame(frame, self._size)
                replaced = self._inbox.put_frame(frame)
                if replaced is None:
                    break
                if replaced:
                    self._metrics.drop("input")
            else:
                self._set_reason("source_ended")
        except Exception as exc:  # noqa: BLE001 - reported through run() after a clean stop
            log.error("source %s failed: %s", self._source.name, exc)
            self._fail(exc)
        finally:
            self._inbox.end()
            try:
                self._source.close()
            except Exception as exc:  # noqa: BLE001 - the stream is over; report and go on
                log.warning("closing source %s: %s", self._source.name, exc)
            if self._audio is not None:
                self._audio.end()

    def _worker_loop(self) -> None:
        pending: list[Frame] = []
        try:
            while True:
                commands, frame, done = self._inbox.take()
                for command in commands:
                    self._apply(command, pending)
                if self._inbox.stopped:
                    break
                if frame is not None:
                    self._metrics.stage("inbox_wait", max(0.0, self._clock() - frame.capture_time))
                    if self.bypass:
                        self._emit(self._bypassed([frame]))
                    else:
                        pending.append(frame)
                        needed = max(1, int(self._generator.frames_needed()))
                        if len(pending) >= needed:
                            chunk, pending = pending[:needed], pending[needed:]
                            self._emit(self._generate(chunk))
                dropped = self._inbox.set_capacity(1 if self.bypass else self._generator.frames_needed())
                if dropped:
                    self._metrics.drop("input", dropped)
                if done or self._inbox.stopped:
                    break
        except Exception as exc:  # noqa: BLE001 - reported through run() after a clean stop
            log.error("generator %s failed: %s", getattr(self._generator, "name", "?"), exc)
            self._fail(exc)
        finally:
            if pending:
                self._metrics.drop("chunk_tail", len(pending))
            self._inbox.stop()
            for slot in self._sinks:
                slot.channel.close()
            for slot in self._sinks:
                if slot.thread is not None:
                    slot.thread.join()
            if self._source_thread is not None and self._source_thread.ident is not None:
                # The sinks are closed (their audio drained), so wake a source still blocked waiting
                # for its next frame (a camera, a publisher that left); close() is thread-safe,
                # never blocks, and closing earlier would cut off audio still on its way.
                try:
                    self._source.close()
                except Exception as exc:  # noqa: BLE001 - the stream is over; report and go on
                    log.warning("closing source %s: %s", self._source.name, exc)
                self._source_thread.join(timeout=2.0)
                if self._source_thread.is_alive():
                    log.warning("source %s did not stop within 2 s; leaving it", self._source.name)
            if self._audio is not None:
                self._audio.join(timeout=2.0)
            self._t_end = self._clock()
            self._set_reason("stopped")
            self._finished = True
            self._notify(self.stats())
            self._done.set()

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
                slot.sink.write(frame)
                t1 = self._clock()
                self._metrics.stage(stage, t1 - t0)
                self._metrics.latency(t1 - frame.capture_time)
                slot.written += 1
        except Exception as exc:  # noqa: BLE001 - one sink failing must not stop the others
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
        while not self._done.wait(self._status_interval):
            if not self._finished:
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
            dues = spread_due_times(len(frames), self._clock(), self._fps, self._last_due)
            self._last_due = dues[-1]
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

    def _apply(self, command: object, pending: list[Frame]) -> None:
        with self._lock:
            self._commands_applied += 1
        if isinstance(command, Stop):
            self.stop("stopped")
            return
        if isinstance(command, SetBypass):
            with self._lock:
                self._bypass = (not self._bypass) if command.value is None else bool(command.value)
                on = self._bypass
            log.info("bypass %s", "on" if on else "off")
            if on and pending:
                frames = list(pending)
                pending.clear()
                self._emit(self._bypassed(frames))
            return
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
        previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

        def handler(signum: int, frame: FrameType | None) -> None:
            nonlocal count
            count += 1
            if count == 1:
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
