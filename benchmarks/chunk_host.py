"""Where the host time around one chunk goes: the same StreamPipeline, four ways (issue 24).

``livestyle bench`` times ``process()`` back to back; inside a live stream the same call takes
longer. This runs one random stack (1.3B/14B on CUDA, ``tiny`` on CPU) and times ``process()``
(wall clock, ms per chunk, after warm-up) in:

  tight     back to back on one thread with a pool of 64 frames reused (the bench loop);
  fresh     back to back, every chunk's frames freshly allocated (as a source hands them out);
  paced     one chunk per chunk period (frames / --fps), sleeping in between: the device and the
            worker thread idle between chunks as in a live stream, no other threads;
  runner    the real Runner: paced ``pattern`` source thread, null sink thread, status thread
            (``stage_ms.generate``: the same ``process()`` call, timed by the runner).

``tight`` vs ``paced`` is what idling costs (GPU clocks ramping back up, a cold worker thread);
``paced`` vs ``runner`` is what the other threads cost (GIL, CPU). It also times the chunk's two
transfers alone (:class:`~livestyle.diffusion.transfer.ChunkTransfer` upload/download at the
working size) and the old path (``np.stack`` + pageable ``.to()``, ``.cpu()``) for comparison.

    python benchmarks/chunk_host.py --model 1.3b --seconds 20 --out $OUT/chunk_host.json   # GPU
    python benchmarks/chunk_host.py --model tiny --size 64x48 --seconds 5                   # CPU
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from livestyle.ingest.pattern import PatternSource  # noqa: E402
from livestyle.output.null import NullSink  # noqa: E402
from livestyle.diffusion.family import family_from_mapping  # noqa: E402
from livestyle.engine.frames import Frame  # noqa: E402
from livestyle.diffusion.random_models import RandomStackOptions, random_stream_models  # noqa: E402
from livestyle.engine.runner import Runner  # noqa: E402
from livestyle.diffusion.stream import StreamPipeline  # noqa: E402
from livestyle.diffusion.stream_state import Controls  # noqa: E402
from livestyle.diffusion.transfer import ChunkTransfer  # noqa: E402


def summary(ms: list[float]) -> dict[str, float]:
    s = sorted(ms)
    def pct(q: float) -> float:
        return round(s[min(len(s) - 1, round(q / 100 * (len(s) - 1)))], 2)
    return {"p50": pct(50), "p95": pct(95), "p99": pct(99), "max": round(s[-1], 2),
            "mean": round(statistics.fmean(s), 2), "n": len(s)}


def image(i: int, width: int, height: int) -> np.ndarray:
    ys, xs = np.mgrid[0:height, 0:width]
    return np.stack([(xs + 7 * i) % 256, (ys + 3 * i) % 256, (xs + ys + 11 * i) % 256], -1).astype(np.uint8)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def loop(pipe: StreamPipeline, size: tuple[int, int], seconds: float, *, fresh: bool = False,
         period: float | None = None) -> dict[str, float]:
    pool = [image(i, *size) for i in range(64)]
    ms: list[float] = []
    i, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or len(ms) < 10:
        k = pipe.frames_needed()
        images = [image(i + j, *size) if fresh else pool[(i + j) % 64] for j in range(k)]
        frames = [Frame(im, i + j, Fraction(1, 30), time.monotonic(), i + j) for j, im in enumerate(images)]
        i += k
        t0 = time.perf_counter()
        pipe.process(frames)
        ms.append(1000.0 * (time.perf_counter() - t0))
        if period is not None:
            time.sleep(max(0.0, period - (time.perf_counter() - t0)))
    return summary(ms)


def runner(pipe: StreamPipeline, size: tuple[int, int], fps: float, seconds: float) -> dict[str, Any]:
    pipe.reset()
    source = PatternSource(size, fps, pace=True)
    run = Runner(source, pipe, [NullSink(stamp=True)], size=size, fps=fps, max_frames=int(seconds * fps))
    report = run.run()  # warms the pipeline on its worker thread first (warm-up frames are not counted)
    return {"generate_ms": report.stats["stage_ms"].get("generate", {}), "drops": report.drops,
            "latency_ms": report.latency_ms}


def transfers(device: torch.device, size: tuple[int, int], frames: int, n: int = 50) -> dict[str, Any]:
    """The chunk's upload and download alone: ChunkTransfer vs the path before it."""
    w, h = size
    images = [image(i, w, h) for i in range(frames)]
    dev = torch.randint(0, 256, (frames, h, w, 3), dtype=torch.uint8, device=device)
    xfer = ChunkTransfer(device)

    def timed(fn: Any) -> dict[str, float]:
        ms = []
        for _ in range(n):
            sync(device)
            t0 = time.perf_counter()
            fn()
            sync(device)
            ms.append(1000.0 * (time.perf_counter() - t0))
        return summary(ms)

    return {
        "upload_old_stack_pageable": timed(lambda: torch.from_numpy(np.stack(images)).to(device, non_blocking=True)),
        "upload_pinned_staging": timed(lambda: xfer.upload(images)),
        "download_old_cpu": timed(lambda: [np.ascontiguousarray(a) for a in dev.cpu().numpy()]),
        "download_pinned_event": timed(lambda: list(xfer.download(dev)[0])),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="1.3b", help="1.3b, 14b (CUDA) or tiny (CPU)")
    ap.add_argument("--size", default="832x480")
    ap.add_argument("--steps", type=int, default=1)
    ap.add_argument("--vae", default="tiny")
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--seconds", type=float, default=20.0, help="length of each timed mode")
    ap.add_argument("--mode", action="append", help="tight, fresh, paced, runner, transfers (default: all)")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    width, height = (int(v) for v in a.size.split("x"))
    device = torch.device("cuda" if torch.cuda.is_available() and a.model != "tiny" else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    models = random_stream_models(a.model, device, dtype, RandomStackOptions(compile_codecs=False, cuda_graphs=True))
    family = family_from_mapping({"family": "sdv2"}, source="chunk_host")
    controls = Controls(prompt="a watercolor painting", strength=0.7, steps=a.steps, seed=0,
                        width=width, height=height, decoder=a.vae)
    pipe = StreamPipeline(models, family, controls, device=device, dtype=dtype, name="chunk_host")
    period = family.chunk_frames / a.fps
    out: dict[str, Any] = {"benchmark": "chunk_host", "model": a.model, "size": a.size, "steps": a.steps,
                           "vae": a.vae, "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                           "chunk_period_ms": round(1000 * period, 1), "modes": {}}
    modes = a.mode or ["transfers", "tight", "fresh", "paced", "runner"]
    with torch.no_grad():
        pipe.warmup((width, height))
        for mode in modes:
            if mode == "transfers":
                result: Any = transfers(device, (width, height), family.chunk_frames)
            elif mode == "runner":
                result = runner(pipe, (width, height), a.fps, a.seconds)
            else:
                pipe.reset()
                loop(pipe, (width, height), 1.0)  # refill the cache (and re-capture graphs) first
                result = loop(pipe, (width, height), a.seconds, fresh=mode == "fresh",
                              period=period if mode == "paced" else None)
            out["modes"][mode] = result
            print(f"{mode:<10} {json.dumps(result)}", flush=True)
    out["stages_ms"] = {k: round(v["p50"], 2) for k, v in pipe.stats()["stages_ms"].items()}
    print(json.dumps(out))
    if a.out is not None:
        a.out.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
