"""A second process that measures how long this machine keeps a sleeping process from running.

Real-time tests of the runner on a shared CI machine see one-off delays that are the machine's,
not the code's (another test hogging both cores). The canary sleeps 2 ms in a loop in its own
process (so our threads and their GIL cannot delay it) and records every wake-up later than
``late_s``. A test may then excuse a stall only where the canary was held up at the same time by
a comparable amount; a stall the machine does not explain still fails.
"""

from __future__ import annotations

import subprocess
import sys
import time

__all__ = ["HostCanary"]

_CHILD = r"""
import sys, time
late = float(sys.argv[1])
while True:
    t0 = time.monotonic()
    time.sleep(0.002)
    t1 = time.monotonic()
    if t1 - t0 - 0.002 > late:
        sys.stdout.write(f"{t0} {t1}\n")
        sys.stdout.flush()
"""


class HostCanary:
    """``with HostCanary() as canary:`` ... ``canary.explains(start, end, amount)``."""

    def __init__(self, late_s: float = 0.015) -> None:
        self.late_s = late_s
        self.holds: list[tuple[float, float]] = []
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> HostCanary:
        self._proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(self.late_s)], stdout=subprocess.PIPE, text=True)
        time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._proc is not None
        self._proc.kill()
        out, _ = self._proc.communicate(timeout=10)
        for line in out.splitlines():
            a, b = line.split()
            self.holds.append((float(a), float(b)))

    def explains(self, start: float, end: float, amount: float) -> bool:
        """Was a sleeping process held up by at least ``amount`` seconds within ``[start - 0.5, end]``?"""
        return any(b - a >= amount and a <= end and b >= start - 0.5 for a, b in self.holds)


def unexplained_losses(drop_log: list[tuple[float, str, int]], canary: HostCanary, period: float,
                       stages: tuple[str, ...] = ("input",)) -> list[tuple[float, str, int]]:
    """The drops in ``drop_log`` (``Runner.drop_log()``) of ``stages`` that the machine does not
    explain: the canary saw no hold of at least one frame ``period`` in the half second before."""
    return [(t, stage, n) for t, stage, n in drop_log if stage in stages and not canary.explains(t - 0.5, t, period)]
