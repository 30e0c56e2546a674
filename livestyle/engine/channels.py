"""The runner's mailboxes: the generator's inbox (frames + commands) and one queue per sink.

Both hand over by signalling (a condition variable), never by polling, and both are bounded.

* :class:`Inbox`: the newest ``depth`` chunks of input frames (two by default, so one generator
  call up to two chunk periods long loses no input) and the live commands. When the generator is
  slower than real time, the oldest *whole chunk* is dropped, so losses come evenly, a chunk at a
  time, never as a burst of single frames torn out of chunks. Commands coalesce: the newest value
  of a setting wins, so a flood of prompt changes costs one prompt change.
* :class:`SinkChannel`: frames with their due times. It never evicts a frame that is still due; only
  frames whose time has passed (a sink slower than real time) go, oldest first.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from livestyle.errors import ConfigError
from livestyle.engine.frames import Frame

__all__ = ["MAX_COMMANDS", "MIN_FRAMES", "Inbox", "SinkChannel", "coalesce_key"]

MIN_FRAMES = 6
"""The fewest frames the inbox holds, whatever the chunk size."""

MAX_COMMANDS = 64
"""Commands that may wait at once; beyond that the oldest coalescible ones go (counted)."""


def coalesce_key(command: object) -> str | None:
    """Commands with the same key replace each other while they wait (the newest wins).

    Settings given as a value (``SetPrompt``, ``SetSteps(2)``, ``SetBypass(True)``...) coalesce;
    toggles (``SetBypass(None)``), ``Reset``, ``Stop`` and unknown commands keep their order and count.
    """
    name = type(command).__name__
    if name == "SetPrompt":
        return name
    if name.startswith("Set") and getattr(command, "value", None) is not None:
        return name
    if name == "SetSize":
        return name
    return None


class Inbox:
    """The generator's mailbox: input frames, taken a chunk at a time, and commands.

    ``chunk`` (the frames the generator's next call takes) is kept up to date by the worker with
    :meth:`set_chunk`; at most ``depth * chunk`` frames wait. Commands keep their order relative
    to chunks: one submitted before a chunk's last frame arrived is applied before that chunk.
    With ``backpressure`` (offline use) nothing is dropped: ``put_frame`` waits for room.
    """

    def __init__(self, *, backpressure: bool = False, chunk: int = 1, depth: int = 2) -> None:
        if depth < 1:
            raise ConfigError(f"runner.inbox_chunks must be at least 1, got {depth}")
        self._cv = threading.Condition()
        self._frames: deque[tuple[int, Frame]] = deque()
        self._chunk = max(1, chunk)
        self._depth = depth
        self._puts = 0
        self._commands: deque[tuple[int, object]] = deque()
        self.coalesced = 0
        self._ended = False
        self._stopped = False
        self._backpressure = backpressure

    @property
    def capacity(self) -> int:
        """``depth`` chunks, and never fewer than ``MIN_FRAMES`` (a one-frame generator, bypass:
        two frames would be 67 ms of slack at 30 fps, less than a busy CPU's hiccup)."""
        return max(self._depth * self._chunk, MIN_FRAMES)

    def set_chunk(self, chunk: int) -> None:
        """The generator's next call takes ``chunk`` (>= 1) frames."""
        with self._cv:
            self._chunk = max(1, int(chunk))
            self._cv.notify_all()

    def put_frame(self, frame: Frame) -> int | None:
        """Offer a frame. Returns how many waiting frames were dropped to make room (a whole
        chunk, or 0), or None if the inbox is stopped (the frame was not taken; the producer should end)."""
        with self._cv:
            if self._backpressure:
                while len(self._frames) >= self.capacity and not self._stopped:
                    self._cv.wait()
            if self._stopped:
                return None
            dropped = 0
            while len(self._frames) >= self.capacity:
                for _ in range(min(self._chunk, len(self._frames))):
                    self._frames.popleft()
                    dropped += 1
            self._puts += 1
            self._frames.append((self._puts, frame))
            self._cv.notify_all()
            return dropped

    def put_command(self, command: object) -> None:
        """Queue a command; a waiting command with the same :func:`coalesce_key` is replaced."""
        key = coalesce_key(command)
        with self._cv:
            if key is not None:
                kept = deque(item for item in self._commands if coalesce_key(item[1]) != key)
                self.coalesced += len(self._commands) - len(kept)
                self._commands = kept
            while len(self._commands) >= MAX_COMMANDS:
                self._commands.popleft()
                self.coalesced += 1
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

    def flush(self) -> int:
        """Forget the waiting frames (returned count); commands stay."""
        with self._cv:
            n = len(self._frames)
            self._frames.clear()
            self._cv.notify_all()
            return n

    def __len__(self) -> int:
        with self._cv:
            return len(self._frames)

    def take(self, timeout: float | None = None) -> tuple[list[object], list[Frame], bool]:
        """Block until a whole chunk, a command, the end or the stop; return ``(commands, frames, done)``.

        Commands due before the next chunk come back first, with no frames (the caller applies
        them, then asks again: the chunk size may have changed). ``frames`` is a whole chunk, or
        at the end of the source whatever is left (fewer). ``done``: stopped, or ended and empty.
        ``timeout``: give up after that many seconds and return ``([], [], False)``.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cv:
            while (len(self._frames) < self._chunk and not self._commands
                   and not self._ended and not self._stopped):
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return [], [], False
                self._cv.wait(remaining)
            if self._stopped:
                return [c for _, c in self._commands], [], True
            if self._commands:
                last = self._frames[self._chunk - 1][0] if len(self._frames) >= self._chunk else None
                if last is None or self._commands[0][0] < last:
                    commands = []
                    while self._commands and (last is None or self._commands[0][0] < last):
                        commands.append(self._commands.popleft()[1])
                    return commands, [], False
            n = min(self._chunk, len(self._frames))
            frames = [self._frames.popleft()[1] for _ in range(n)]
            done = self._ended and not self._frames and not self._commands
            self._cv.notify_all()
            return [], frames, done


class SinkChannel:
    """One sink's queue of ``(due_time or None, frame)``, oldest first.

    ``capacity`` is a soft bound: when a put would exceed it, frames whose due time has passed by
    more than ``late_grace`` seconds are dropped (oldest first); frames still due are kept, up to
    a hard bound of ``4 * capacity`` (memory), past which the oldest go whatever their time. With
    ``backpressure`` a full queue makes ``put`` wait instead (offline use).
    """

    def __init__(self, capacity: int, *, backpressure: bool = False,
                 clock: Callable[[], float] = time.monotonic, late_grace: float = 0.0) -> None:
        if capacity < 1:
            raise ConfigError(f"runner.sink_queue must be at least 1, got {capacity}")
        self.capacity = capacity
        self._clock = clock
        self._late_grace = late_grace
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
            if len(self._items) + len(items) > limit:
                now = self._clock()
                kept: deque[tuple[float | None, Frame]] = deque()
                excess = len(self._items) + len(items) - limit
                for due, frame in self._items:
                    if excess > 0 and (due is None or due + self._late_grace < now):
                        excess -= 1
                        dropped += 1
                        continue
                    kept.append((due, frame))
                self._items = kept
            hard = 4 * limit
            while self._items and len(self._items) + len(items) > hard:
                self._items.popleft()
                dropped += 1
            self._items.extend(items)
            self._cv.notify_all()
        return dropped

    def get(self, timeout: float | None = None) -> tuple[float | None, Frame] | None:
        """The next item; blocks while empty; None once closed and drained (or on timeout)."""
        with self._cv:
            if not self._items and not self._closed:
                self._cv.wait_for(lambda: self._items or self._closed, timeout)
            if not self._items:
                return None
            item = self._items.popleft()
            self._cv.notify_all()
            return item

    @property
    def closed(self) -> bool:
        with self._cv:
            return self._closed

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
