"""CPU cost of background effects per frame: chroma key, selfie and MODNet person masks, 640x480 and 1280x720.

Stages timed per frame (median over ``--iters`` frames after a warm-up):
  mask       the provider's ``compute``: chroma key + despill; selfie (MediaPipe selfie segmentation
             on LiteRT, one thread, with its face check every 6th frame, pre/post-processing
             included); person-hq (MODNet at ``--input-size``, ``--threads`` torch threads)
  post       temporal EMA + feathering + resize to frame size (effects.prepare_mask, as EffectGenerator)
  composite  blending the styled frame with the camera frame
  added      mask + post + composite: the CPU time one frame costs in total
  blur       the camera blurred for ``effects.fill=blur`` (sigma 12), on top of ``added``

The person masks run on 640x480 / 1280x720 views of scikit-image's ``astronaut`` photo (a real
person; a synthetic frame would close the selfie mask's face gate and time nothing), panned 4 px
per frame; chroma on a noisy green screen. The selfie files are pulled on first use
(``livestyle weights pull mediapipe-selfie``).

End to end (``--chunk`` frames per chunk through EffectGenerator around a generator that waits
``--gen-ms`` per chunk the way a GPU generator's host thread does): wall ms per chunk with no
effect, with masks beside the generator (default) and before it (``keep_hint``); the difference is
the latency the effect adds to every frame of the chunk.

Random MODNet weights (speed does not depend on weight values). Prints a table, then one JSON line.

    python benchmarks/masks.py                                  # chroma, selfie, person-hq
    python benchmarks/masks.py --masks selfie --iters 200       # the selfie mask alone, more frames
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import cv2
import numpy as np
import torch

from livestyle.config import ChromaKeyConfig, PersonMaskConfig, SelfieMaskConfig
from livestyle.models.segmentation import MODNET_CONFIGS, MODNet
from livestyle.effects.generator import blurred, composite, prepare_mask
from livestyle.effects.masks.chroma import ChromaKeyer
from livestyle.effects.masks.person import PersonSegmenter, model_input_size
from livestyle.effects.masks.smoothing import TemporalSmoother

SIZES = ((640, 480), (1280, 720))


def scene(width: int, height: int, seed: int) -> np.ndarray:
    """A noisy green screen with a person-sized skin/shirt block."""
    rng = np.random.default_rng(seed)
    img = np.clip(np.array((0, 177, 64), np.float32) + rng.normal(0, 6, (height, width, 3)), 0, 255).astype(np.uint8)
    img[height // 4 :, width // 3 : 2 * width // 3] = (224, 172, 140)
    return img


def photo_views(width: int, height: int, n: int, step: int = 4) -> list[np.ndarray]:
    """``n`` views of the astronaut photo (enlarged to cover ``width`` + pan), panned ``step`` px per frame."""
    from skimage import data

    side = max(2 * height, width + n * step)
    big = cv2.resize(data.astronaut(), (side, side), interpolation=cv2.INTER_CUBIC)
    top = (side - height) // 8
    return [np.ascontiguousarray(big[top : top + height, i * step : i * step + width]) for i in range(n)]


def time_provider(provider, frames: list[np.ndarray], iters: int) -> dict[str, float]:
    height, width = frames[0].shape[:2]
    styled = 255 - frames[0]
    smoother = TemporalSmoother(0.5)
    mask_ms, post_ms, comp_ms, blur_ms, covered = [], [], [], [], []
    for i in range(iters + 2):
        img = frames[i % len(frames)]
        t0 = time.perf_counter()
        result = provider.compute(img)
        t1 = time.perf_counter()
        subject = prepare_mask(result.subject, smoother, 2.0, height, width)
        t2 = time.perf_counter()
        composite(styled, img, subject, "background")
        t3 = time.perf_counter()
        blurred(img, 12.0)
        t4 = time.perf_counter()
        if i >= 2:  # warm-up
            mask_ms.append(1000 * (t1 - t0))
            post_ms.append(1000 * (t2 - t1))
            comp_ms.append(1000 * (t3 - t2))
            blur_ms.append(1000 * (t4 - t3))
            covered.append(float(subject.mean()))
    m, p, c, b = (statistics.median(v) for v in (mask_ms, post_ms, comp_ms, blur_ms))
    total = [a + b + c for a, b, c in zip(mask_ms, post_ms, comp_ms)]
    return {"mask_ms": m, "post_ms": p, "composite_ms": c, "added_ms": statistics.median(total),
            "added_ms_best": min(total), "blur_ms": b, "subject_mean": statistics.mean(covered)}


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


def chunk_latency(provider, imgs: list[np.ndarray], chunk: int, gen_ms: float, iters: int) -> dict[str, float]:
    """Median wall ms per chunk: no effect, masks beside the generator, masks before it."""
    from fractions import Fraction

    from livestyle.config import EffectsConfig
    from livestyle.effects.generator import EffectGenerator
    from livestyle.engine.frames import Frame

    out = {}
    for label, mode, keep in (("none", "full", False), ("beside", "background", False), ("before", "background", True)):
        gen = EffectGenerator(WaitingGenerator(chunk, gen_ms), EffectsConfig(mode=mode, mask="chroma", keep_hint=keep), provider)
        times, idx = [], 0
        for i in range(iters + 1):
            frames = [Frame(imgs[(idx + k) % len(imgs)], pts=idx + k, time_base=Fraction(1, 30), capture_time=0.0, index=idx + k) for k in range(chunk)]
            idx += chunk
            t0 = time.perf_counter()
            gen.process(frames)
            if i:
                times.append(1000 * (time.perf_counter() - t0))
        out[label] = statistics.median(times)
    return {"chunk_ms_no_effect": out["none"], "chunk_ms_beside": out["beside"], "chunk_ms_before": out["before"],
            "added_ms_beside": out["beside"] - out["none"], "added_ms_before": out["before"] - out["none"]}


def open_selfie():
    from livestyle.models.weights_pull import pull
    from livestyle.effects.masks.selfie import open_selfie_segmenter

    pull("mediapipe-selfie", progress=False)
    return open_selfie_segmenter(SelfieMaskConfig())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=60, help="frames timed per row (MODNet rows: a tenth, at least 2)")
    ap.add_argument("--masks", default="chroma,selfie,person-hq", help="comma-separated: chroma, selfie, person-hq")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads for MODNet")
    ap.add_argument("--input-size", type=int, default=256, help="short side MODNet sees (multiple of 32)")
    ap.add_argument("--chunk", type=int, default=4, help="frames per chunk for the end-to-end latency")
    ap.add_argument("--gen-ms", type=float, default=200.0, help="generator wait per chunk (stands for GPU time)")
    args = ap.parse_args()
    masks = [m.strip() for m in args.masks.split(",") if m.strip()]
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cv2.setNumThreads(1)
    rows = []
    for width, height in SIZES:
        for kind in masks:
            if kind == "chroma":
                provider, label, iters = ChromaKeyer(ChromaKeyConfig()), "chroma", args.iters
                frames = [scene(width, height, i) for i in range(4)]
            elif kind == "selfie":
                provider, iters = open_selfie(), args.iters
                label = f"selfie@{provider.model_for(height, width).variant.role}"
                frames = photo_views(width, height, 48)
            elif kind == "person-hq":
                modnet = MODNet(MODNET_CONFIGS["modnet"]).eval()
                provider, iters = PersonSegmenter(modnet, PersonMaskConfig(input_size=args.input_size)), max(2, args.iters // 10)
                mh, mw = model_input_size(height, width, args.input_size)
                label, frames = f"person-hq@{mw}x{mh}", photo_views(width, height, 8)
            else:
                raise SystemExit(f"unknown mask {kind!r}; choose from chroma, selfie, person-hq")
            rows.append({"mask": label, "size": f"{width}x{height}", **time_provider(provider, frames, iters),
                         **chunk_latency(provider, frames, args.chunk, args.gen_ms, max(2, iters // 10))})
    print(f"per frame, CPU (selfie: 1 LiteRT thread; MODNet: {args.threads} torch threads; OpenCV 1 thread); "
          f"per {args.chunk}-frame chunk around a {args.gen_ms:.0f} ms generator wait")
    print(f"{'mask':<20} {'frame':>9} {'mask ms':>8} {'post ms':>8} {'comp ms':>8} {'total ms':>9} {'best':>6}"
          f" {'+blur':>6} {'+chunk beside':>14} {'+chunk before':>14}")
    for r in rows:
        print(f"{r['mask']:<20} {r['size']:>9} {r['mask_ms']:8.2f} {r['post_ms']:8.2f} {r['composite_ms']:8.2f} {r['added_ms']:9.2f}"
              f" {r['added_ms_best']:6.2f} {r['blur_ms']:6.2f} {r['added_ms_beside']:14.1f} {r['added_ms_before']:14.1f}")
    print(json.dumps({
        "benchmark": "masks",
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpu_threads": args.threads,
        "iters": args.iters,
        "input_size": args.input_size,
        "rows": [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()} for r in rows],
    }))


if __name__ == "__main__":
    main()
