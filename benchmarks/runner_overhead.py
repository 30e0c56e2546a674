"""The streaming runner's own cost: CPU per frame and added latency, 1280x720 at 30 fps.

Three paced runs of ``--seconds`` each, generator ``passthrough``, sink ``null``:

  replay    a source that hands out pre-rendered 1280x720 frames in real time, so nearly all
            process CPU is the runner's (threads, mailboxes, metrics, pacing, the null sink);
            this is the runner's CPU cost per frame (target <= 1 ms).
  pattern   the real ``pattern`` source (renders every frame), for context: total process CPU
            per frame, rendering included.
  bypass    ``pattern`` with bypass on; latency = sink write time - frame capture time, i.e.
            what the runner adds between source and sink (target p95 <= 10 ms).

CPU is process CPU time (all threads) from ``time.process_time``. The machine's load average is
printed because this is usually a shared 2-core box. Prints a table, then one JSON line.

    python benchmarks/runner_overhead.py --seconds 10
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

from livestyle.ingest import open_source
from livestyle.output import open_sink
from livestyle.engine.commands import SetBypass
from livestyle.engine.frames import Frame, StreamInfo
from livestyle.engine.passthrough import PassthroughGenerator
from livestyle.engine.runner import Runner

SIZE = (1280, 720)
FPS = 30.0


class ReplaySource:
    """``pattern`` frames rendered once at ``open``, then handed out in real time (no render cost)."""

    name = "replay"

    def __init__(self, size: tuple[int, int], fps: float, frames: int = 30) -> None:
        self._size, self._fps, self._count = size, fps, frames
        self._images: list[Any] = []
        self._closed = False

    def open(self) -> StreamInfo:
        src = open_source("pattern", size=self._size, fps=self._fps, pace=False)
        src.open()
        for frame in src.frames():
            self._images.append(frame.image)
            if len(self._images) == self._count:
                break
        src.close()
        return StreamInfo(self._size[0], self._size[1], self._fps, Fraction(1, int(self._fps)))

    def frames(self) -> Iterator[Frame]:
        tb = Fraction(1, int(self._fps))
        start = time.monotonic()
        i = 0
        while not self._closed:
            due = start + i / self._fps
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            yield Frame(self._images[i % len(self._images)], i, tb, time.monotonic(), i)
            i += 1

    def close(self) -> None:
        self._closed = True


def measure(source: Any, seconds: float, *, bypass: bool = False) -> dict[str, Any]:
    frames = max(1, int(seconds * FPS))
    runner = Runner(source, PassthroughGenerator(), [open_sink("null")], size=SIZE, fps=FPS,
                    max_frames=frames, status_interval=3600)
    if bypass:
        runner.submit(SetBypass(True))
    runner.start()  # opening (pre-rendering for replay) is not part of the measurement
    cpu0, wall0 = time.process_time(), time.monotonic()
    runner.wait()
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    report = runner.report()
    return {
        "frames": report.frames_out,
        "wall_s": round(wall, 3),
        "fps_out": round(report.frames_out / wall, 2),
        "cpu_ms_per_frame": round(cpu * 1000 / max(1, report.frames_out), 3),
        "latency_p50_ms": report.latency_ms["p50"],
        "latency_p95_ms": report.latency_ms["p95"],
        "latency_max_ms": report.latency_ms["max"],
        "drops": sum(report.drops.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each run")
    args = parser.parse_args()

    results = {
        "replay": measure(ReplaySource(SIZE, FPS), args.seconds),
        "pattern": measure(open_source("pattern", size=SIZE, fps=FPS), args.seconds),
        "bypass": measure(open_source("pattern", size=SIZE, fps=FPS), args.seconds, bypass=True),
    }
    load = os.getloadavg()
    print(f"runner overhead, {SIZE[0]}x{SIZE[1]} @ {FPS:g} fps, passthrough -> null, "
          f"{os.cpu_count()} CPUs, load {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}")
    cols = ["frames", "fps_out", "cpu_ms_per_frame", "latency_p50_ms", "latency_p95_ms", "latency_max_ms", "drops"]
    print(f"{'run':<8}" + "".join(f"{c:>18}" for c in cols))
    for name, r in results.items():
        print(f"{name:<8}" + "".join(f"{r[c]:>18}" for c in cols))
    summary = {
        "benchmark": "runner_overhead",
        "size": f"{SIZE[0]}x{SIZE[1]}",
        "fps": FPS,
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, load {load[0]:.1f}",
        "runner_cpu_ms_per_frame": results["replay"]["cpu_ms_per_frame"],
        "bypass_latency_p50_ms": results["bypass"]["latency_p50_ms"],
        "bypass_latency_p95_ms": results["bypass"]["latency_p95_ms"],
        "targets": {"runner_cpu_ms_per_frame": 1.0, "bypass_latency_p95_ms": 10.0},
        "runs": results,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
