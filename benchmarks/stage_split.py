"""One-GPU measurements for splitting the DiT over GPUs (``--gpus N``, livestyle/parallel).

On one device, random weights at real shapes (``livestyle.models.testing.on_device``), 480x832 by
default, one latent frame per micro-step against a full 6-frame cache (3 sink), batch 1 (a
stream-batch slot is its own micro-step on the stages):

- ``blocks``: ms of each block alone (``StageDiT`` over a one-block span, its own cache), of the
  patch embedding and of the head: the per-block costs ``planning.stage_split.split_blocks`` takes;
- ``activation``: the bytes one micro-step hands from stage to stage (tokens ``[1, F*T, dim]``
  plus the latents and the timestep) and per chunk for 1..4 steps;
- ``transfer``: a same-GPU estimate of a hop: a device-to-device copy of the activation, and a
  device -> pinned host -> device round trip (an upper bound for a PCIe hop without peer access).

Writes one JSON object (``--out``; device name, torch version, every figure). Usage (device):
``python benchmarks/stage_split.py --model 14b --out $OUT/stage_split_14b.json``; ``--model tiny
--device cpu`` runs the same code on a CPU in seconds (a smoke test, not a measurement).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from livestyle.models.kv_cache import KVCache  # noqa: E402
from livestyle.models.testing.on_device import random_dit_on  # noqa: E402
from livestyle.parallel.stage_dit import StageDiT  # noqa: E402
from livestyle.planning.stage_split import StageSpan  # noqa: E402


def timed_ms(fn: Callable[[], Any], device: torch.device, iters: int, warmup: int = 3) -> dict[str, float]:
    """Median / min ms of ``fn`` (CUDA events on a GPU, wall time on the CPU)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        if device.type == "cuda":
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            b.synchronize()
            times.append(a.elapsed_time(b))
        else:
            t0 = time.perf_counter()
            fn()
            times.append(1000.0 * (time.perf_counter() - t0))
    return {"median": round(statistics.median(times), 4), "min": round(min(times), 4)}


def measure(model: str, device: torch.device, dtype: torch.dtype, size: tuple[int, int], iters: int) -> dict[str, Any]:
    """Every figure of the module docstring for DiT ``model`` at ``size`` = (width, height)."""
    dit = random_dit_on(model, device, dtype, seed=0, fuse_qkv=device.type == "cuda")
    cfg = dit.config
    w, h = size
    lat = (h // 8, w // 8)
    tpf = (lat[0] // 2) * (lat[1] // 2)
    ctx = 0.5 * torch.randn(1, 24, cfg.text_dim, device=device, dtype=dtype)
    x = torch.randn(1, 16, 1, *lat, device=device, dtype=dtype)
    t = torch.full((1, 1), 500.0, device=device)
    out: dict[str, Any] = {"model": model, "size": f"{w}x{h}", "tokens_per_frame": tpf, "dtype": str(dtype),
                           "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                           "torch": torch.__version__}
    with torch.no_grad():
        tokens = StageDiT(dit, StageSpan(0, 1, 0, 1)).embed(x)
        blocks = []
        for i in range(cfg.num_layers):
            stage = StageDiT(dit, StageSpan(0, 1, i, i + 1))
            cache = KVCache.allocate(stage.config, batch=1, frames=6, tokens_per_frame=tpf, sink_frames=3,
                                     device=device, dtype=dtype, rope_refresh=50, rope_rebase=5)
            stage.encode_prompt(ctx, cache.cross)
            grid = stage.grid(tuple(x.shape))
            for _ in range(5):
                stage.blocks_forward(tokens, t, grid, cache, cache.begin_block(1))
            block = cache.begin_block(1)
            blocks.append(timed_ms(lambda: stage.blocks_forward(tokens, t, grid, cache, block), device, iters)["median"])
        last = StageDiT(dit, StageSpan(0, 1, 0, cfg.num_layers))
        out["block_ms"] = blocks
        out["block_ms_total"] = round(sum(blocks), 3)
        out["embed_ms"] = timed_ms(lambda: last.embed(x), device, iters)
        out["head_ms"] = timed_ms(lambda: last.head(tokens, t, tuple(x.shape), x.dtype), device, iters)
    hop = tokens.numel() * tokens.element_size() + x.numel() * x.element_size() + 4
    out["activation_bytes_per_step"] = hop
    out["activation_bytes_per_chunk"] = {str(steps): steps * hop for steps in (1, 2, 3, 4)}
    src = tokens.contiguous()
    dst = torch.empty_like(src)
    out["transfer_d2d_ms"] = timed_ms(lambda: dst.copy_(src), device, iters)
    if device.type == "cuda":
        host = torch.empty(src.shape, dtype=src.dtype, pin_memory=True)

        def round_trip() -> None:
            host.copy_(src, non_blocking=True)
            dst.copy_(host, non_blocking=True)

        out["transfer_via_host_ms"] = timed_ms(round_trip, device, iters)
        d2d = out["transfer_d2d_ms"]["median"]
        out["d2d_gbs"] = round(src.numel() * src.element_size() / (d2d * 1e6), 1) if d2d > 0 else None
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="1.3b", choices=("1.3b", "14b", "tiny"))
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--size", default="832x480", help="WIDTHxHEIGHT")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    w, h = (int(v) for v in args.size.lower().split("x"))
    result = measure(args.model, device, dtype, (w, h), args.iters)
    text = json.dumps(result)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return result


if __name__ == "__main__":
    main()
