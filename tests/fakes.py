"""Stand-ins that several test files share: a clock moved by hand and a sink that stamps what it is given.

Import them as a sibling module (``from fakes import FakeClock``): ``tests/`` has no
``__init__.py``, so pytest puts the folder on ``sys.path`` (as for ``host_canary``).
"""

from __future__ import annotations

import time

from livestyle.engine.frames import Frame, StreamInfo


class FakeClock:
    """A clock the test moves by hand, starting at ``now`` seconds (100.0 unless given).

    Call it for the time (a ``time.monotonic`` stand-in); pass ``clock.sleep`` where code sleeps:
    it records each duration in ``sleeps`` and moves the clock on by it instead of waiting.
    """

    def __init__(self, now: float = 100.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class StampSink:
    """A sink that keeps (frame index, capture time, write time on ``time.monotonic``) of every
    frame it is given, in ``rows``; ``times`` is the write times alone. Writes nothing anywhere."""

    name = "stamp"

    def __init__(self) -> None:
        self.rows: list[tuple[int, float, float]] = []

    def open(self, info: StreamInfo) -> None:
        self.info = info

    def write(self, frame: Frame) -> None:
        self.rows.append((frame.index, frame.capture_time, time.monotonic()))

    @property
    def times(self) -> list[float]:
        return [written for _, _, written in self.rows]

    def close(self) -> None:
        pass
