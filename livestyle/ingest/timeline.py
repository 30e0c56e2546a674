"""One monotonic output timeline over source timestamps that restart or jump.

Files restart their pts when they loop, a live stream's pts jumps when the sender restarts and
MPEG-TS timestamps wrap. Frames leave a source with ``pts`` that start at 0 and only grow.
"""

from __future__ import annotations

from fractions import Fraction

__all__ = ["Timeline"]


class Timeline:
    """Maps source pts (in ``time_base`` ticks, or None) to output pts in the same time base.

    A backwards step, or a forward jump larger than ``max_gap`` seconds, is a discontinuity: the
    next output frame follows the previous one by one nominal frame duration.
    """

    def __init__(self, time_base: Fraction, fps: float, *, max_gap: float = 5.0) -> None:
        self.time_base = time_base
        self.frame_ticks = max(1, round(1 / (fps * time_base)))
        self._max_gap_ticks = max(self.frame_ticks, round(max_gap / time_base))
        self._offset: int | None = None
        self._last_src: int | None = None
        self._last_out = -self.frame_ticks

    def map(self, pts: int | None) -> int:
        """The output pts for a frame whose source pts is ``pts``."""
        following = self._last_out + self.frame_ticks
        if pts is None:
            out = following
        else:
            out = pts + self._offset if self._offset is not None else following
            step = pts - self._last_src if self._last_src is not None else 0
            if self._offset is None or not 0 < step <= self._max_gap_ticks or out <= self._last_out:
                self._offset = following - pts
                out = following
            self._last_src = pts
        self._last_out = out
        return out

    def seconds(self, out_pts: int) -> float:
        """Output pts in seconds."""
        return float(out_pts * self.time_base)
