"""CPU cost of background effects per frame: chroma key and person mask (MODNet), 640x480 and 1280x720.

Stages timed per frame (median over ``--iters`` frames after a warm-up):
  mask       the provider's ``compute`` (chroma key + despill, or MODNet at ``--input-size``)
  post       resize to frame size + temporal EMA + feathering (what EffectGenerator adds per mask)
  composite  blending the styled frame with the camera frame
  added      mask + post + composite: the CPU time one frame costs in total

End to end (``--chunk`` frames per chunk through EffectGenerator around a generator that waits
``--gen-ms`` per chunk the way a GPU generator's host thread does): wall ms per chunk with no
effect, with masks beside the generator (default) and before it (``keep_hint``); the difference is
the latency the effect adds to every frame of the chunk.

Random MODNet weights (speed does not depend on weight values). Prints a table, then one JSON line.

    python benchmarks/masks.py --iters 10 --threads 2
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import numpy as np
import torch

from livestyle.config import ChromaKeyConfig, PersonMaskConfig
from livestyle.models.segmentation import MODNET_CONFIGS, MODNet
from livestyle.pipeline.effects import composite
from livestyle.pipeline.masks.base import fit_mask
from livestyle.pipeline.masks.chroma import ChromaKeyer
from livestyle.pipeline.masks.person import PersonSegmenter, model_input_size
from livestyle.pipeline.masks.smoothing import TemporalSmoother, feather

SIZES = ((640, 480), (1280, 720))


def scene(width: int, height: int, seed: int) -> np.ndarray:
    """A noisy green screen with a person-sized skin/shirt block."""
    rng = np.random.default_rng(seed)
    img = np.clip(np.array((0, 177, 64), np.float32) + rng.normal(0, 6, (height, width, 3)), 0, 255).astype(np.uint8)
    img[height // 4 :, width // 3 : 2 * width // 3] = (224, 172, 140)
    return img


def time_provider(provider, width: int, height: int, iters: int) -> dict[str, float]:
    frames = [scene(width, height, i) for i in range(4)]
    styled = 255 - frames[0]
    smoother = TemporalSmoother(0.5)
    mask_ms, post_ms, comp_ms = [], [], []
    for i in range(iters + 2):
        img = frames[i % len(frames)]
        t0 = time.perf_counter()
        result = provider.compute(img)
        t1 = time.perf_counter()
        subject = feather(smoother.update(fit_mask(result.subject, height, width)), 2.0)
        t2 = time.perf_counter()
        composite(styled, img, subject, "background")
        t3 = time.perf_counter()
        if i >= 2:  # warm-up
            mask_ms.append(1000 * (t1 - t0))
            post_ms.append(1000 * (t2 - t1))
            comp_ms.append(1000 * (t3 - t2))
    m, p, c = (statistics.median(v) for v in (mask_ms, post_ms, comp_ms))
    return {"mask_ms": m, "post_ms": p, "composite_ms": c, "added_ms": m + p + c}


class WaitingGenerator:
    """Stands for a GPU generator: the host thread waits ``gen_ms`` per chunk, the CPU is free."""

    name = "gpu-wait"

    def __init__(self, chunk: int, gen_ms: float) -> None:
        self.chunk, self.gen_s = chunk, gen_ms / 1000

    def frames_needed(self) -> int:
        return self.chunk

    def process(self, frames):
        time.sleep(self.gen_s)
        return [f.with_image(255 - f.image) for f in frames]

    def apply(self, command: object) -> None:
        """Commands change nothing in a waiting generator."""

    def reset(self) -> None:
        """Stateless."""

    def stats(self) -> dict:
        return {}


def chunk_latency(provider, width: int, height: int, chunk: int, gen_ms: float, iters: int) -> dict[str, float]:
    """Median wall ms per chunk: no effect, masks beside the generator, masks before it."""
    from fractions import Fraction

    from livestyle.config import EffectsConfig
    from livestyle.pipeline.effects import EffectGenerator
    from livestyle.pipeline.frames import Frame

    imgs = [scene(width, height, i) for i in range(4)]
    out = {}
    for label, mode, keep in (("none", "full", False), ("beside", "background", False), ("before", "background", True)):
        gen = EffectGenerator(WaitingGenerator(chunk, gen_ms), EffectsConfig(mode=mode, mask="chroma", keep_hint=keep), provider)
        times, idx = [], 0
        for i in range(iters + 1):
            frames = [Frame(imgs[(idx + k) % 4], pts=idx + k, time_base=Fraction(1, 30), capture_time=0.0, index=idx + k) for k in range(chunk)]
            idx += chunk
            t0 = time.perf_counter()
            gen.process(frames)
            if i:
                times.append(1000 * (time.perf_counter() - t0))
        out[label] = statistics.median(times)
    return {"chunk_ms_no_effect": out["none"], "chunk_ms_beside": out["beside"], "chunk_ms_before": out["before"],
            "added_ms_beside": out["beside"] - out["none"], "added_ms_before": out["before"] - out["none"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads for MODNet")
    ap.add_argument("--input-size", type=int, default=256, help="short side MODNet sees (multiple of 32)")
    ap.add_argument("--chunk", type=int, default=4, help="frames per chunk for the end-to-end latency")
    ap.add_argument("--gen-ms", type=float, default=200.0, help="generator wait per chunk (stands for GPU time)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    modnet = MODNet(MODNET_CONFIGS["modnet"]).eval()
    rows = []
    for width, height in SIZES:
        chroma = ChromaKeyer(ChromaKeyConfig())
        rows.append({"mask": "chroma", "size": f"{width}x{height}", **time_provider(chroma, width, height, args.iters),
                     **chunk_latency(chroma, width, height, args.chunk, args.gen_ms, args.iters)})
        seg = PersonSegmenter(modnet, PersonMaskConfig(input_size=args.input_size))
        mh, mw = model_input_size(height, width, args.input_size)
        rows.append({"mask": f"person@{mw}x{mh}", "size": f"{width}x{height}", **time_provider(seg, width, height, args.iters),
                     **chunk_latency(seg, width, height, args.chunk, args.gen_ms, max(2, args.iters // 2))})
    print(f"per frame, CPU ({args.threads} torch threads); per {args.chunk}-frame chunk around a {args.gen_ms:.0f} ms generator wait")
    print(f"{'mask':<18} {'frame':>10} {'mask ms':>9} {'post ms':>9} {'comp ms':>9} {'total ms':>9}"
          f" {'+chunk beside':>14} {'+chunk before':>14}")
    for r in rows:
        print(f"{r['mask']:<18} {r['size']:>10} {r['mask_ms']:9.1f} {r['post_ms']:9.1f} {r['composite_ms']:9.1f} {r['added_ms']:9.1f}"
              f" {r['added_ms_beside']:14.1f} {r['added_ms_before']:14.1f}")
    print(json.dumps({
        "benchmark": "masks",
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpu_threads": args.threads,
        "iters": args.iters,
        "input_size": args.input_size,
        "rows": [{k: (round(v, 2) if isinstance(v, float) else v) for k, v in r.items()} for r in rows],
    }))


if __name__ == "__main__":
    main()
