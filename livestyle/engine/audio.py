"""The runner's audio path: source audio to every sink that takes audio, on its own thread.

::

    source (any thread) --AudioPath.put--> bounded queue --audio thread--> sink.write_audio(...)

Audio never goes through the generator and is never dropped because video frames are: the video
path drops by design (newest frame wins), the audio path keeps every chunk. Its queue is bounded:
offline (``backpressure``) a full queue makes the source wait; live, the oldest chunk goes and is
counted (``drops["audio"]``), which only happens when a sink's audio writes stall for longer than
the queue holds (``capacity`` chunks, about 10 s of 20 ms chunks).

Sync is the sinks' business and needs no help here: chunks carry pts on the video frames'
timeline, styled frames keep their input pts, and a sink muxes both by pts (see
:mod:`livestyle.output.audio` for how live streams hold audio back by the measured video delay).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from livestyle.engine.frames import AudioChunk

__all__ = ["AudioPath"]

log = logging.getLogger(__name__)


class AudioPath:
    """Moves :class:`AudioChunk`s from the source to ``sinks`` (objects with ``write_audio``).

    Args:
        sinks: ``(name, sink)`` pairs; each ``sink.write_audio(chunk)`` is called on the path's
            thread. A sink whose ``write_audio`` raises gets no more audio (logged once).
        backpressure: a full queue makes ``put`` wait instead of dropping.
        on_drop: called with the number of chunks dropped.
        capacity: chunks the queue holds.
    """

    def __init__(
        self,
        sinks: Sequence[tuple[str, Any]],
        *,
        backpressure: bool = False,
        on_drop: Callable[[int], None] = lambda n: None,
        capacity: int = 500,
    ) -> None:
        self._sinks = {name: sink for name, sink in sinks}
        self._backpressure = backpressure
        self._on_drop = on_drop
        self._capacity = capacity
        self._cv = threading.Condition()
        self._queue: deque[AudioChunk] = deque()
        self._ended = False
        self._idle = True
        self._write_lock = threading.Lock()  # held while writing; detach waits for it
        self._thread = threading.Thread(target=self._loop, name="livestyle-audio", daemon=True)
        self.chunks_in = 0
        self.chunks_out = 0
        self.errors: dict[str, str] = {}

    @property
    def sink_names(self) -> list[str]:
        return list(self._sinks)

    def start(self) -> None:
        self._thread.start()

    def put(self, chunk: AudioChunk) -> None:
        """The source's audio callback (any thread). Ignored once the path has ended."""
        with self._cv:
            if self._ended:
                return
            if self._backpressure:
                while len(self._queue) >= self._capacity and not self._ended:
                    self._cv.wait()
                if self._ended:
                    return
            dropped = 0
            while len(self._queue) >= self._capacity:
                self._queue.popleft()
                dropped += 1
            self._queue.append(chunk)
            self.chunks_in += 1
            self._cv.notify_all()
        if dropped:
            self._on_drop(dropped)

    def end(self) -> None:
        """No more audio will come; queued chunks are still delivered."""
        with self._cv:
            self._ended = True
            self._cv.notify_all()

    def wait_drained(self, timeout: float, *, until_end: bool = True) -> bool:
        """Block until every queued chunk was written (and, with ``until_end``, the source's
        audio has ended); False on timeout."""
        with self._cv:
            return self._cv.wait_for(
                lambda: (self._ended or not until_end) and not self._queue and self._idle, timeout
            )

    def detach(self, name: str) -> None:
        """Write no more audio to sink ``name`` (it is about to close); waits for a write in flight."""
        with self._write_lock:
            self._sinks.pop(name, None)

    def join(self, timeout: float) -> None:
        self.end()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def stats(self) -> dict[str, Any]:
        with self._cv:
            queued = len(self._queue)
        return {"chunks_in": self.chunks_in, "chunks_out": self.chunks_out, "queued": queued,
                "sinks": self.sink_names, "errors": dict(self.errors)}

    def _loop(self) -> None:
        while True:
            with self._cv:
                self._idle = True
                self._cv.notify_all()
                while not self._queue and not self._ended:
                    self._cv.wait()
                if not self._queue:
                    return
                chunk = self._queue.popleft()
                self._idle = False
                self._cv.notify_all()
            with self._write_lock:
                for name, sink in list(self._sinks.items()):
                    try:
                        sink.write_audio(chunk)
                    except Exception as exc:  # noqa: BLE001 - one sink's audio failing stops only its audio
                        self.errors[name] = " ".join(str(exc).split()) or type(exc).__name__
                        self._sinks.pop(name, None)
                        log.error("sink %s: audio failed and stopped (video goes on): %s", name, self.errors[name])
                self.chunks_out += 1
