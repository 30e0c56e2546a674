"""Hand-offs between the event loop and the runner's threads, by signalling, latest item wins.

Two directions, two small classes:

- :class:`ThreadSlot` — the event loop (or any producer) ``put``s, one thread blocks in ``get``.
  A ``threading.Condition`` wakes the reader; an item nobody took before the next ``put`` is
  replaced and counted in ``dropped``. This is how decoded WebRTC frames reach the source thread.
- :class:`Broadcast` — one thread ``publish``es, any number of asyncio readers ``await`` the newest
  item through their own :class:`Subscription`. ``publish`` schedules the hand-over with
  ``loop.call_soon_threadsafe`` and readers wait on futures, so nobody polls and a slow reader
  skips to the newest item (counted in its ``skipped``) instead of queueing. This is the relay
  that lets several viewers watch one stream.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Generic, TypeVar

__all__ = ["Broadcast", "Closed", "Subscription", "ThreadSlot"]

T = TypeVar("T")


class Closed(Exception):
    """The slot or broadcast was closed; no more items will come."""


class ThreadSlot(Generic[T]):
    """A one-item mailbox read by a thread; the newest item wins."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: T | None = None
        self._has_item = False
        self._closed = False
        self.delivered = 0
        self.dropped = 0

    def put(self, item: T) -> None:
        """Store ``item`` (replacing an untaken one) and wake the reader. Never blocks for long."""
        with self._cond:
            if self._closed:
                return
            if self._has_item:
                self.dropped += 1
            self._item = item
            self._has_item = True
            self._cond.notify()

    def get(self, timeout: float | None = None) -> T | None:
        """The newest item, waiting up to ``timeout`` seconds (``None``: forever).

        Returns ``None`` on timeout; raises :class:`Closed` once the slot is closed and empty.
        """
        with self._cond:
            if not self._cond.wait_for(lambda: self._has_item or self._closed, timeout):
                return None
            if not self._has_item:
                raise Closed("slot closed")
            item, self._item, self._has_item = self._item, None, False
            self.delivered += 1
            return item  # type: ignore[return-value]

    def close(self) -> None:
        """Wake the reader with :class:`Closed`; later ``put`` calls are ignored."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def reopen(self) -> None:
        """Accept items again after :meth:`close` (a new reader is about to start)."""
        with self._cond:
            self._closed = False
            self._item, self._has_item = None, False


class Subscription(Generic[T]):
    """One reader's view of a :class:`Broadcast`: ``await next()`` gives items newer than the last."""

    def __init__(self, broadcast: Broadcast[T]) -> None:
        self._broadcast = broadcast
        self._seen = broadcast._seq
        self._waiter: asyncio.Future[None] | None = None
        self.received = 0
        self.skipped = 0
        self.closed = False

    async def next(self) -> T:
        """Wait for an item newer than the last one returned and return the newest.

        Must be awaited on the broadcast's loop. Raises :class:`Closed` when the subscription or
        the broadcast is closed.
        """
        b = self._broadcast
        while b._seq == self._seen:
            if self.closed or b._closed:
                raise Closed("broadcast closed")
            self._waiter = b._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        if self.closed:
            raise Closed("subscription closed")
        self.skipped += b._seq - self._seen - 1
        self._seen = b._seq
        self.received += 1
        return b._item  # type: ignore[return-value]

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def close(self) -> None:
        """Stop reading; a pending ``next`` raises :class:`Closed`. Call on the loop."""
        self.closed = True
        self._broadcast._subscribers.discard(self)
        self._wake()


class Broadcast(Generic[T]):
    """Latest-item fan-out from any thread to asyncio readers on one loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._item: T | None = None
        self._seq = 0
        self._closed = False
        self._subscribers: set[Subscription[T]] = set()

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def subscribe(self) -> Subscription[T]:
        """A new reader that receives items published from now on. Call on the loop."""
        sub: Subscription[T] = Subscription(self)
        self._subscribers.add(sub)
        return sub

    def publish(self, item: T) -> None:
        """Hand ``item`` to every reader (thread-safe, never blocks)."""
        if self._closed:
            return
        try:
            self._loop.call_soon_threadsafe(self._deliver, item)
        except RuntimeError:  # the loop is closed: the server is gone, nobody can read
            self._closed = True

    def _deliver(self, item: T) -> None:
        self._item = item
        self._seq += 1
        for sub in list(self._subscribers):
            sub._wake()

    def close(self) -> None:
        """End every subscription (thread-safe)."""
        if self._closed:
            return
        self._closed = True

        def wake_all() -> None:
            for sub in list(self._subscribers):
                sub._wake()

        try:
            self._loop.call_soon_threadsafe(wake_all)
        except RuntimeError:  # the loop is closed: the server is gone and nobody is waiting
            return
