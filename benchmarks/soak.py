"""Soak test: does a long run stay flat? RSS, output fps and glass-to-glass latency sampled every
``--interval`` seconds of a paced run (issue 18 asks for 2 hours; any duration works).

Generator ``passthrough`` (the plumbing without a GPU) or ``tiny`` (the registry's tiny
random-weight model, loaded through the same path as ``livestyle run --model tiny``, on the CPU
with ``--threads`` torch threads; 256x144 keeps up on two cores), source ``pattern`` at ``--size``
(default 1280x720),
sinks ``null`` plus, with ``--record``, a fragmented MP4 recording in a temporary folder. The
control API's path is exercised too: each sample also applies a prompt change through a
:class:`~livestyle.control.controller.Controller`, as a streamer would.

Growth is reported after a warm-up (the first ``--warmup`` seconds): ``rss_growth_mib`` is the last
sample's RSS minus the first post-warm-up sample's. Prints a table, then one JSON line; ``--out``
also writes the JSON (with every sample) to a file.

    python benchmarks/soak.py --minutes 120 --record --out benchmarks/results/soak.json
    python benchmarks/soak.py --generator tiny --size 256x144 --minutes 120 --out soak_tiny.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from livestyle.config import load_config
from livestyle.control.controller import Controller, Params
from livestyle.control.presets import load_presets
from livestyle.ingest import open_source
from livestyle.output import open_sink
from livestyle.engine.commands import SetPrompt
from livestyle.engine.frames import Generator
from livestyle.generators import open_generator
from livestyle.engine.passthrough import PassthroughGenerator
from livestyle.engine.runner import Runner


def rss_mib() -> float:
    """Resident set size of this process now, MiB (Linux /proc; peak RSS elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def open_soak_generator(name: str, size: tuple[int, int]) -> Generator:
    """``passthrough``, or ``tiny``: the registry's tiny model on the CPU in float32, 1 step, tiny codec both ways."""
    if name == "passthrough":
        return PassthroughGenerator()
    config = load_config(None, [f"model.name={name}", f"stream.size=[{size[0]},{size[1]}]", "model.device=cpu",
                                "model.dtype=float32", "model.steps=1", "model.vae=tiny"])
    return open_generator(name, config)


def soak(seconds: float, interval: float, size: tuple[int, int], fps: float, record: bool,
         generator: str = "passthrough") -> list[dict[str, Any]]:
    """Run for ``seconds``; one sample dict per ``interval``."""
    tmp = tempfile.TemporaryDirectory(prefix="livestyle-soak-")
    sinks = [open_sink("null")]
    if record:
        sinks.append(open_sink(str(Path(tmp.name) / "soak.mp4"), fps=fps))
    gen = open_soak_generator(generator, size)
    runner = Runner(open_source("pattern", size=size, fps=fps), gen, sinks, size=size, fps=fps)
    controller = Controller(load_presets(), runner.submit, Params("start", 0.6, 2, 42))
    samples: list[dict[str, Any]] = []
    t0 = time.monotonic()
    last_frames = 0
    last_t = t0

    def sample_loop() -> None:
        nonlocal last_frames, last_t
        n = 0
        while not runner.wait(interval):
            now = time.monotonic()
            stats = runner.stats()
            frames = stats["frames_out"]
            lat = stats.get("latency_ms", {})
            samples.append({
                "t_s": round(now - t0, 1),
                "rss_mib": round(rss_mib(), 2),
                "fps_out": round((frames - last_frames) / (now - last_t), 2),
                "latency_p50_ms": round(lat.get("p50", 0.0), 1),
                "latency_p95_ms": round(lat.get("p95", 0.0), 1),
                "frames_out": frames,
                "drops": sum(stats.get("drops", {}).values()),
                "frames_lost": stats.get("frames_lost", 0),
                "cpu_s": round(time.process_time(), 1),
            })
            last_frames, last_t = frames, now
            n += 1
            controller.apply(SetPrompt(f"soak prompt {n}"))
            if now - t0 >= seconds:
                runner.stop()

    sampler = threading.Thread(target=sample_loop, name="soak-sampler", daemon=True)
    runner.start()
    sampler.start()
    runner.run()
    sampler.join(interval + 5)
    tmp.cleanup()
    return samples


def summarize(samples: list[dict[str, Any]], warmup: float) -> dict[str, Any]:
    steady = [s for s in samples if s["t_s"] >= warmup] or samples
    p95 = [s["latency_p95_ms"] for s in steady]
    return {
        "samples": len(samples),
        "rss_first_mib": steady[0]["rss_mib"],
        "rss_last_mib": steady[-1]["rss_mib"],
        "rss_max_mib": max(s["rss_mib"] for s in steady),
        "rss_growth_mib": round(steady[-1]["rss_mib"] - steady[0]["rss_mib"], 2),
        "fps_out_min": min(s["fps_out"] for s in steady),
        "fps_out_mean": round(sum(s["fps_out"] for s in steady) / len(steady), 2),
        "latency_p95_ms_min": min(p95),
        "latency_p95_ms_max": max(p95),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=120.0)
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--warmup", type=float, default=30.0, help="seconds left out of the growth figures")
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--record", action="store_true", help="also record a fragmented MP4")
    parser.add_argument("--generator", choices=["passthrough", "tiny"], default="passthrough")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (tiny)")
    parser.add_argument("--machine", default=platform.node(), help="label for the result")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))
    import torch

    torch.set_num_threads(args.threads)
    samples = soak(args.minutes * 60, args.interval, (w, h), args.fps, args.record, args.generator)
    print(f"{'t s':>7} {'RSS MiB':>8} {'fps out':>8} {'p50 ms':>7} {'p95 ms':>7} {'drops':>6}")
    for s in samples:
        print(f"{s['t_s']:7.1f} {s['rss_mib']:8.1f} {s['fps_out']:8.2f} {s['latency_p50_ms']:7.1f} "
              f"{s['latency_p95_ms']:7.1f} {s['drops']:6d}")
    result = {
        "benchmark": "soak",
        "duration_s": samples[-1]["t_s"] if samples else 0.0,
        "machine": args.machine,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "generator": args.generator if args.generator == "passthrough" else f"{args.generator} (random weights, CPU float32, {args.threads} thread)",
        "source": f"pattern {w}x{h} @ {args.fps:g} fps, paced",
        "sinks": ["null", *(["fragmented mp4"] if args.record else [])],
        "interval_s": args.interval,
        "warmup_s": args.warmup,
        "loadavg_end": [round(v, 2) for v in os.getloadavg()],
        **summarize(samples, args.warmup),
    }
    if args.out is not None:
        args.out.write_text(json.dumps({**result, "series": samples}, indent=1) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
