"""What the viewer gets on a GPU: a paced 30 fps camera through the real Runner, one minute each.

For each configuration (random weights at real shapes, 480x832, bf16, tiny codec both ways, CUDA
graphs on, codecs eager as in ``livestyle run``): ``livestyle bench``'s ``run_bench`` with
``--glass-seconds`` of camera after the Runner's warm-up on its own worker thread, then the
budget planner's glass-to-glass prediction from a profile holding this run's own measured stage
medians, and the error of that prediction against the measured p50 and p95.

Configurations (``--part``, repeatable):

- ``13s1``: 1.3B, 1 step; ``13s2seq``: 1.3B, 2 steps without stream batch; ``13s2sb``: 1.3B,
  2 steps with stream batch; ``13s1cudnn``: 1.3B, 1 step with cuDNN autotuning on (the policy
  check, 20 s); ``14s1``: 14B, 1 step;
- ``prompt``: 1.3B, 1 step, with an umT5-XXL-shaped text encoder (transformers
  ``UMT5EncoderModel``, random bf16 weights, 512 tokens) on the same GPU, and a free-text prompt
  change half-way: the largest frame gap around it.
- ``lora``: 1.3B, 1 step, two random rank-32 LoRAs on every Linear of every block (PEFT files in
  a folder, as ``--lora``/presets use them) switched four times during the camera run: the largest
  frame gap after each switch; and the switch time itself (``LoraMerger.set`` to the other LoRA,
  10 times, CUDA-synchronised) on the 1.3B (and ``lora14``: on the 14B).

Usage (device): ``python benchmarks/delivery.py --part 13s1 --part 13s2seq --out $OUT/delivery.json``
Prints one line per configuration and the whole result as a JSON line last.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gpu_suite import Suite  # noqa: E402

from livestyle.cli.bench import BenchOptions, run_bench, write_profile  # noqa: E402
from livestyle.models.testing.on_device import random_umt5_xxl_on  # noqa: E402
from livestyle.planning.budget import Candidate, load_profile, predict  # noqa: E402
from livestyle.diffusion.random_models import RandomStackOptions, random_stream_models  # noqa: E402

DEV = torch.device("cuda")
BF16 = torch.bfloat16
ROOT = Path(__file__).resolve().parents[1]


def umt5_encoder() -> Any:
    """An umT5-XXL-shaped encoder with random bf16 weights on the GPU: text -> ``[1, 512, 4096]``.

    Token ids come from a hash of the text (no tokenizer files on the device): the cost of a
    512-token pass is what matters here, not the ids.
    """
    model = random_umt5_xxl_on(DEV, BF16)
    vocab = model.config.vocab_size

    def encode(text: str) -> torch.Tensor:
        seed = int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)
        gen = torch.Generator(device=DEV).manual_seed(seed)
        ids = torch.randint(0, vocab, (1, 512), device=DEV, generator=gen)
        mask = torch.zeros(1, 512, dtype=torch.long, device=DEV)
        mask[:, :40] = 1
        with torch.no_grad():
            out = model(input_ids=ids, attention_mask=mask).last_hidden_state
        out[:, 40:] = 0
        return out[..., :4096]

    return encode


def predicted(result: dict[str, Any]) -> dict[str, Any]:
    """The planner's glass-to-glass for this configuration, from a profile of its own medians."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "measured.yaml"
        shutil.copy(ROOT / "configs" / "gpus" / "h100.yaml", path)
        write_profile(path, result)
        profile = load_profile("measured", Path(tmp))
    model = "sdv2-14b" if result["dit"] == "14b" else "sdv2-1.3b"
    width, height = (int(v) for v in result["size"].split("x"))
    cand = Candidate(model, (width, height), result["steps"], result["vae"], bool(result["stream_batch"]))
    p = predict(profile, cand, input_fps=30.0)
    g = result["glass_to_glass_ms"]
    return {"g2g_ms": round(p.latency_ms, 1), "chunk_ms": round(p.chunk_ms, 1),
            "error_vs_p50": round(p.latency_ms / g["p50"] - 1, 3) if g.get("p50") else None,
            "error_vs_p95": round(p.latency_ms / g["p95"] - 1, 3) if g.get("p95") else None}


def lora_switch_ms(dit: Any, size: str, rank: int = 32) -> dict[str, Any]:
    """Time ``LoraMerger.set`` switching between two random rank-``rank`` LoRAs on every Linear."""
    from livestyle.models.lora import LoraFile, LoraLayer, LoraMerger
    from livestyle.models.testing.lora import random_lora

    def as_file(seed: int, name: str) -> LoraFile:
        layers = random_lora(size, rank=rank, seed=seed)
        return LoraFile(name, {k: LoraLayer(a.to(DEV), b.to(DEV), al, k) for k, (a, b, al) in layers.items()})

    a, b = as_file(1, "a"), as_file(2, "b")
    merger = LoraMerger(dit)
    t0 = time.perf_counter()
    merger.set([(a, 1.0)])  # the first switch also keeps a copy of the base weights
    torch.cuda.synchronize()
    first = 1000.0 * (time.perf_counter() - t0)
    times = []
    for i in range(10):
        t0 = time.perf_counter()
        merger.set([(b if i % 2 == 0 else a, 1.0)])
        torch.cuda.synchronize()
        times.append(1000.0 * (time.perf_counter() - t0))
    t0 = time.perf_counter()
    merger.set([])
    torch.cuda.synchronize()
    unload = 1000.0 * (time.perf_counter() - t0)
    layers = len(a.layers)
    del a, b, merger
    return {"rank": rank, "layers": layers, "first_ms": round(first, 1), "switch_ms_median": round(sorted(times)[5], 1),
            "switch_ms_max": round(max(times), 1), "unload_ms": round(unload, 1)}


def lora_stream(models: Any, *, glass: float, seconds: float) -> dict[str, Any]:
    """A camera run on the 1.3B at 1 step with four LoRA switches through the live command path."""
    from livestyle.models.testing.lora import random_lora, write_lora
    from livestyle.engine.commands import LoraRef, SetLora
    from livestyle.diffusion.loras import LoraLibrary

    with tempfile.TemporaryDirectory() as tmp:
        for seed, name in ((1, "ink"), (2, "film")):
            write_lora(Path(tmp) / f"{name}.safetensors", random_lora("1.3b", rank=32, seed=seed), "peft")
        models.loras = LoraLibrary(tmp, models.dit.config, device=DEV)
        step = glass / 5
        commands = ((step, SetLora((LoraRef("ink", 1.0),))), (2 * step, SetLora((LoraRef("film", 0.8),))),
                    (3 * step, SetLora(())), (4 * step, SetLora((LoraRef("ink", 0.6),))))
        opts = BenchOptions(model="1.3b", steps=1, vae="tiny", seconds=seconds, glass_seconds=glass, device="cuda",
                            cuda_graphs=True, compile_codecs=False, live_commands=commands)
        try:
            result = run_bench(opts, models=models, log=print)
        finally:
            models.loras = None
    g = result["glass_to_glass_ms"]
    print(f"== lora switches: viewer {g['fps_written']} fps written, lost {g['frames_lost']}, "
          f"gaps after each switch {[c['max_gap_ms'] for c in g.get('live_commands', [])]} ms", flush=True)
    return result


def one(models: Any, *, size: str, steps: int, stream_batch: bool, glass: float, seconds: float,
        cudnn: bool = False, prompt_at: float | None = None) -> dict[str, Any]:
    opts = BenchOptions(model=size, steps=steps, vae="tiny", seconds=seconds, glass_seconds=glass, device="cuda",
                        cuda_graphs=True, compile_codecs=False, cudnn_benchmark=cudnn, prompt_change_at=prompt_at,
                        family={} if stream_batch else {"stream_batch": False})
    result = run_bench(opts, models=models, log=print)
    result["prediction"] = predicted(result)
    g = result["glass_to_glass_ms"]
    print(f"== {size} steps={steps} sb={stream_batch} cudnn={cudnn}: bench {result['fps']} fps; viewer "
          f"{g['fps_written']} fps written, lost {g['frames_lost']}, gap p95/max {g['gap_ms']}, stalls {g['stalls']}, "
          f"g2g p50/p95/p99 {g['p50']}/{g['p95']}/{g['p99']} ms; predicted {result['prediction']}", flush=True)
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", action="append", required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--budget", type=float, default=580.0)
    ap.add_argument("--glass", type=float, default=60.0)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--glass-short", type=float, default=30.0, help="camera seconds of the prompt and lora parts")
    a = ap.parse_args()
    s = Suite(a.out, a.budget)
    s.data["setup"] = ("random weights, 480x832, bf16, tiny codec both ways, CUDA graphs, eager codecs, "
                       f"paced 30 fps pattern -> Runner -> stamping null sink, {a.glass:g} s after warm-up")
    stacks: dict[str, Any] = {}

    def stack(size: str) -> Any:
        if size not in stacks:
            for k in list(stacks):
                del stacks[k]
            gc.collect()
            torch.cuda.empty_cache()
            t0 = time.perf_counter()
            stacks[size] = random_stream_models(size, DEV, BF16, RandomStackOptions(cuda_graphs=True, compile_codecs=False))
            s.put(f"build.{size}", {"build_s": round(time.perf_counter() - t0, 1)})
        return stacks[size]

    need = a.glass + 60
    for part in a.part:
        if part == "13s1":
            s.guarded("1.3b.steps1", lambda: one(stack("1.3b"), size="1.3b", steps=1, stream_batch=True, glass=a.glass, seconds=a.seconds), need)
        elif part == "13s2seq":
            s.guarded("1.3b.steps2.sequential", lambda: one(stack("1.3b"), size="1.3b", steps=2, stream_batch=False, glass=a.glass, seconds=a.seconds), need)
        elif part == "13s2sb":
            s.guarded("1.3b.steps2.stream_batch", lambda: one(stack("1.3b"), size="1.3b", steps=2, stream_batch=True, glass=a.glass, seconds=a.seconds), need)
        elif part == "13s1cudnn":
            s.guarded("1.3b.steps1.cudnn_benchmark", lambda: one(stack("1.3b"), size="1.3b", steps=1, stream_batch=True, glass=20.0, seconds=a.seconds, cudnn=True), 80)
        elif part == "14s1":
            s.guarded("14b.steps1", lambda: one(stack("14b"), size="14b", steps=1, stream_batch=True, glass=a.glass, seconds=a.seconds), need + 60)
        elif part == "lora":
            s.guarded("1.3b.lora_switch", lambda: lora_switch_ms(stack("1.3b").dit, "1.3b"), 30)
            s.guarded("1.3b.steps1.lora_switches_live", lambda: lora_stream(stack("1.3b"), glass=a.glass_short, seconds=a.seconds), a.glass_short + 40)
        elif part == "lora14":
            s.guarded("14b.lora_switch", lambda: lora_switch_ms(stack("14b").dit, "14b"), 60)
        elif part == "prompt":
            def prompt_run() -> dict[str, Any]:
                models = stack("1.3b")
                fast, cached = models.prompt_encoder, models.prompt_cached
                encode = umt5_encoder()
                t0 = time.perf_counter()
                encode("warm the encoder")
                torch.cuda.synchronize()
                first_ms = 1000 * (time.perf_counter() - t0)
                models.prompt_encoder = lambda text: encode(text)
                models.prompt_cached = lambda text: text == "a watercolor painting"
                try:
                    out = one(models, size="1.3b", steps=1, stream_batch=True, glass=a.glass_short,
                              seconds=a.seconds, prompt_at=a.glass_short / 2)
                finally:
                    models.prompt_encoder, models.prompt_cached = fast, cached
                out["umt5_first_call_ms"] = round(first_ms, 1)
                return out
            s.guarded("1.3b.steps1.prompt_change_umt5", prompt_run, a.glass_short + 60)
        else:
            raise SystemExit(f"unknown part {part!r}")
    print(json.dumps(s.data))


if __name__ == "__main__":
    main()
