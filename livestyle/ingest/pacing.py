"""Real-time pacing: release frame ``t`` (media seconds) at ``origin + t`` on a clock.

The clock and the sleep are parameters so tests drive pacing with a fake clock and check the
exact waits (STYLE habit 11).
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["Pacer"]


class Pacer:
    """Keeps media time and wall time in step.

    The first call anchors media time 0 to the current clock reading and returns at once. Later
    calls sleep until their frame is due. A consumer that stalls for more than ``max_lag``
    seconds re-anchors the timeline instead of bursting through the backlog.
    """

    def __init__(
        self,
        clock: Callable[[], float],
        sleep: Callable[[float], object],
        *,
        max_lag: float = 0.5,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._max_lag = max_lag
        self._origin: float | None = None

    def wait(self, media_seconds: float) -> None:
        """Block until ``media_seconds`` after the anchor (or re-anchor when far behind)."""
        now = self._clock()
        if self._origin is None:
            self._origin = now - media_seconds
            return
        delay = self._origin + media_seconds - now
        if delay > 0:
            self._sleep(delay)
        elif -delay > self._max_lag:
            self._origin = now - media_seconds

    def reset(self) -> None:
        """Forget the anchor; the next ``wait`` anchors again."""
        self._origin = None
