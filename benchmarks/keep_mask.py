"""Keep masks in the StreamPipeline (issue 9): their cost per chunk and their effect on the output.

Tiny random model (SDV2 family, stream batch), CPU. A synthetic 640x480 scene whose known keep
mask covers a person-sized block (what ``EffectGenerator`` hands over with ``effects.keep_hint``
under ``--effect background``) goes through the real :class:`StreamPipeline` at a small working
size, with no masks and with masks at ``keep_strength`` 0.5 and 1.0.

Reported:
  chunk_ms     median wall ms of ``process`` per 4-frame chunk after the warm-up chunks (the three
               settings run chunk by chunk in turn, so a loaded machine slows them alike)
  map_ms       median ms of the keep map alone (``latent_keep_mask`` of 4 frames + ``keep_scale``)
               at 640x480 and 1280x720 frames → the 832x480 working size's 104x60 latents
  latent_keep / latent_rest
               mean |clean latent leaving the pipeline − encoder latent of the input| inside and
               outside the keep region (the denoiser's distance from the input, where it is decided)
  pixel_keep / pixel_rest
               mean |output − input| in 0..255 inside and outside the keep region (with random VAE
               weights the decoder does not reconstruct the input, so these barely move)

    python benchmarks/keep_mask.py --chunks 12 --threads 1
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from fractions import Fraction

import numpy as np
import torch

from livestyle.models.dit import DIT_CONFIGS, CausalWanDiT
from livestyle.models.testing.dit import random_dit_state_dict
from livestyle.models.testing.stack import random_wan_vae
from livestyle.models.vae import StreamingWanVAE
from livestyle.diffusion.family import FAMILY_PRESETS
from livestyle.engine.frames import Frame
from livestyle.diffusion.noise import keep_scale, latent_keep_mask
from livestyle.diffusion.stream import StreamPipeline
from livestyle.diffusion.stream_state import Controls, StreamModels

SRC_W, SRC_H = 640, 480


def scene() -> tuple[np.ndarray, np.ndarray]:
    """A textured 640x480 frame and its keep mask (1 on a person-sized block, feathered edge)."""
    yy, xx = np.mgrid[0:SRC_H, 0:SRC_W]
    image = np.stack([xx * 2 % 256, yy * 3 % 256, (xx + yy) % 256], -1).astype(np.uint8)
    keep = np.zeros((SRC_H, SRC_W), np.float32)
    keep[SRC_H // 4 :, SRC_W // 3 : 2 * SRC_W // 3] = 1.0
    return image, keep


class _Record:
    def __init__(self) -> None:
        self.encoded: list[torch.Tensor] = []
        self.decoded: list[torch.Tensor] = []


def build(width: int, height: int, steps: int, rec: _Record) -> StreamPipeline:
    dit = CausalWanDiT(DIT_CONFIGS["tiny"])
    dit.load_state_dict(random_dit_state_dict("tiny", seed=1))
    vae = random_wan_vae("tiny", seed=2)
    embeds = torch.randn(1, 8, DIT_CONFIGS["tiny"].text_dim, generator=torch.Generator().manual_seed(3))

    class Encoder(StreamingWanVAE):
        def encode(self, pixels: torch.Tensor) -> torch.Tensor:
            z = super().encode(pixels)
            rec.encoded.append(z)
            return z

    class Decoder(StreamingWanVAE):
        def decode(self, latents: torch.Tensor) -> torch.Tensor:
            rec.decoded.append(latents)
            return super().decode(latents)

    models = StreamModels(dit=dit.eval(), prompt_encoder=lambda text: embeds,
                          codecs={"wan": (lambda: Encoder(vae, normalize_latents=False), lambda: Decoder(vae))})
    controls = Controls(prompt="p", strength=0.8, steps=steps, seed=0, width=width, height=height)
    return StreamPipeline(models, FAMILY_PRESETS["sdv2"], controls)


def run(width: int, height: int, steps: int, chunks: int, warmup: int,
        strengths: tuple[float | None, ...]) -> list[dict[str, float]]:
    """One pipeline per keep strength (None: no masks), stepped chunk by chunk in turn so that the
    machine's load falls on every setting alike."""
    image, keep = scene()
    recs = [_Record() for _ in strengths]
    pipes = [build(width, height, steps, rec) for rec in recs]
    outs: list[list[Frame]] = [[] for _ in strengths]
    times: list[list[float]] = [[] for _ in strengths]
    i = 0
    with torch.no_grad():
        for c in range(chunks + warmup + 1):
            n = pipes[0].frames_needed()
            for s, (strength, pipe) in enumerate(zip(strengths, pipes)):
                extras = {} if strength is None else {"keep_mask": keep, "keep_strength": strength}
                frames = [Frame(image, pts=j, time_base=Fraction(1, 30), capture_time=0.0, index=j, extras=extras)
                          for j in range(i, i + n)]
                t0 = time.perf_counter()
                outs[s] += pipe.process(frames)
                if c > warmup:
                    times[s].append(time.perf_counter() - t0)
            i += n
    small = torch.nn.functional.interpolate(torch.from_numpy(keep)[None, None], size=(height // 8, width // 8), mode="area")[0, 0]
    lat_keep, lat_rest = small > 0.5, small < 0.5
    rows = []
    for strength, rec, out, t in zip(strengths, recs, outs, times):
        diffs = torch.cat([(d - e).abs() for e, d in zip(rec.encoded, rec.decoded)], dim=2)
        pix = np.stack([np.abs(o.image.astype(np.float32) - image) for o in out])
        rows.append({
            "keep_strength": strength,
            "chunk_ms": 1000 * statistics.median(t),
            "latent_keep": diffs[..., lat_keep].mean().item(),
            "latent_rest": diffs[..., lat_rest].mean().item(),
            "pixel_keep": float(pix[:, keep > 0.5].mean()),
            "pixel_rest": float(pix[:, keep < 0.5].mean()),
        })
    return rows


def time_map(src_w: int, src_h: int, iters: int) -> float:
    """Median ms of one 4-frame chunk's keep map for the 832x480 working size (104x60 latents)."""
    masks = [np.random.default_rng(i).random((src_h, src_w), dtype=np.float32) for i in range(4)]
    times = []
    for _ in range(iters + 2):
        t0 = time.perf_counter()
        keep = latent_keep_mask(masks, 1, (60, 104))
        assert keep is not None
        keep_scale(0.8, keep, 0.5)
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times[2:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--chunks", type=int, default=12, help="timed chunks per setting")
    ap.add_argument("--warmup", type=int, default=3, help="untimed chunks after the first")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--sizes", default="64x48,128x96", help="working sizes WxH, comma-separated")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for size in args.sizes.split(","):
        w, h = (int(v) for v in size.split("x"))
        rows += [{"size": size, **r} for r in run(w, h, args.steps, args.chunks, args.warmup, (None, 0.5, 1.0))]
    maps = {f"{w}x{h}": time_map(w, h, 20) for w, h in ((640, 480), (1280, 720))}
    print(f"{'size':>8} {'hint':>6} {'chunk_ms':>9} {'latent_keep':>12} {'latent_rest':>12} {'pixel_keep':>11} {'pixel_rest':>11}")
    for r in rows:
        hint = "off" if r["keep_strength"] is None else f"k={r['keep_strength']}"
        print(f"{r['size']:>8} {hint:>6} {r['chunk_ms']:9.1f} {r['latent_keep']:12.3f} {r['latent_rest']:12.3f} "
              f"{r['pixel_keep']:11.1f} {r['pixel_rest']:11.1f}")
    for k, v in maps.items():
        print(f"keep map, 4 frames {k} -> 104x60 latents: {v:.2f} ms")
    print(json.dumps({"machine": platform.processor() or platform.machine(), "threads": args.threads, "steps": args.steps,
                      "rows": rows, "map_ms": maps}))


if __name__ == "__main__":
    main()
