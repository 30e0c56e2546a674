"""umT5-XXL prompt encoding on the CPU: milliseconds per 512-token prompt.

The full encoder (5.68 B parameters) needs 23 GB in fp32 and has no fast bf16 path on CPUs
without AVX512-BF16/AMX, so this builds the real layer shapes (transformers' UMT5EncoderModel,
d_model 4096, 64 heads x 64, gated-GELU FFN 10240; Wan 2.1 wan/modules/t5.py, Wan-Video/Wan2.1) with ``--layers`` of the
24 layers and random weights, times a 512-token forward, and scales the per-layer time to 24
layers (every layer has the same shape; the embedding lookup is negligible). Prints a table and a
JSON line last.

    python benchmarks/umt5_cpu.py --layers 2 --dtype float32 --threads 2
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch
from transformers import UMT5Config, UMT5EncoderModel

FULL_LAYERS = 24


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    config = UMT5Config(
        vocab_size=256384, d_model=4096, d_kv=64, d_ff=10240, num_heads=64, num_layers=args.layers,
        relative_attention_num_buckets=32, relative_attention_max_distance=128,
        feed_forward_proj="gated-gelu", is_encoder_decoder=False, use_cache=False,
    )
    torch.manual_seed(0)
    with torch.device("meta"):
        model = UMT5EncoderModel(config)
    model = model.to_empty(device="cpu").to(dtype).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.02)
    ids = torch.randint(0, config.vocab_size, (1, 512))
    mask = torch.ones_like(ids)
    times = []
    with torch.inference_mode():
        model(input_ids=ids, attention_mask=mask)  # warm-up
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            model(input_ids=ids, attention_mask=mask)
            times.append((time.perf_counter() - t0) * 1000.0)
    measured = statistics.median(times)
    per_layer = measured / args.layers
    full = per_layer * FULL_LAYERS
    print(f"{'layers run':<22}{args.layers}")
    print(f"{'dtype / threads':<22}{args.dtype} / {args.threads}")
    print(f"{'ms measured':<22}{measured:.0f}")
    print(f"{'ms per layer':<22}{per_layer:.0f}")
    print(f"{'ms per prompt (24 l.)':<22}{full:.0f}  (scaled)")
    print(json.dumps({
        "bench": "umt5_cpu", "layers_run": args.layers, "dtype": args.dtype, "threads": args.threads,
        "ms_measured": round(measured, 1), "ms_per_layer": round(per_layer, 1),
        "ms_per_prompt_24_layers": round(full, 1), "tokens": 512, "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
