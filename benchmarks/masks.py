"""CPU cost of background effects per frame: chroma key and person mask (MODNet), 640x480 and 1280x720.

Stages timed per frame (median over ``--iters`` frames after a warm-up):
  mask       the provider's ``compute`` (chroma key + despill, or MODNet at ``--input-size``)
  post       resize to frame size + temporal EMA + feathering (what EffectGenerator adds per mask)
  composite  blending the styled frame with the camera frame
  added      mask + post + composite: the latency one frame gains (masks are computed before the
             generator runs, compositing after it)

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads for MODNet")
    ap.add_argument("--input-size", type=int, default=256, help="short side MODNet sees (multiple of 32)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    modnet = MODNet(MODNET_CONFIGS["modnet"]).eval()
    rows = []
    for width, height in SIZES:
        rows.append({"mask": "chroma", "size": f"{width}x{height}", **time_provider(ChromaKeyer(ChromaKeyConfig()), width, height, args.iters)})
        seg = PersonSegmenter(modnet, PersonMaskConfig(input_size=args.input_size))
        mh, mw = model_input_size(height, width, args.input_size)
        rows.append({"mask": f"person@{mw}x{mh}", "size": f"{width}x{height}", **time_provider(seg, width, height, args.iters)})
    print(f"{'mask':<18} {'frame':>10} {'mask ms':>9} {'post ms':>9} {'comp ms':>9} {'added ms':>9}")
    for r in rows:
        print(f"{r['mask']:<18} {r['size']:>10} {r['mask_ms']:9.1f} {r['post_ms']:9.1f} {r['composite_ms']:9.1f} {r['added_ms']:9.1f}")
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
