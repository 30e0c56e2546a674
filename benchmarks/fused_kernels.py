"""Fused Triton kernels on the GPU: parity with the unfused ops, DiT ms, and the pipeline before/after.

Random weights at real shapes (``livestyle.pipeline.random_models``), bf16, 480x832, one process,
JSON written after each item (``gpu_suite.Suite``). Parts (``--part``, repeatable):

- ``check``: the 1.3B forward in fp32 (unfused, TF32 off) against bf16 fused and bf16 unfused, with
  no cache (2 latent frames) and on a full 6-frame cache (1 frame: the KV-write kernel); fp8 fused
  and unfused against bf16 fused; one layer's fused fp8 rows against the reference quantiser
  (the in-register e4m3 cast the CPU tests cannot run).
- ``dit13`` / ``dit14``: DiT ms per forward (CUDA-graph replay, full 6-frame cache, 1 latent frame),
  unfused vs fused, bf16 then fp8, at the stream-batch sizes the pipeline runs (1.3B: 1, 2; 14B: 1, 4).
- ``sdpa``: one 14B layer's cached self-attention per PyTorch SDPA backend (cuDNN, flash 2, efficient).
- ``pipe13`` / ``pipe14`` / ``pipe14fp8``: ``livestyle bench``'s ``run_bench`` (tiny codec both
  ways, CUDA graphs, compiled codecs, no camera run) fused and unfused on the same stack, each with
  the kernel-time profile by category (``livestyle.cli.bench_kernels``).

Usage (device): ``python benchmarks/fused_kernels.py --part check --part dit13 --out $OUT/fused.json``
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

os.environ.setdefault("LIVESTYLE_FUSED_STRICT", "1")  # a failing kernel is an error here, not a silent fallback
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gpu_suite import BF16, DEV, LAT, Suite, full_cache, wall_ms  # noqa: E402

from livestyle.cli.bench import BenchOptions, run_bench  # noqa: E402
from livestyle.models.kernels import set_fused  # noqa: E402
from livestyle.models.kv_cache import KVCache  # noqa: E402
from livestyle.models.testing.on_device import random_dit_on  # noqa: E402
from livestyle.pipeline.random_models import RandomStackOptions, random_stream_models  # noqa: E402


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return round(float((a.float() - b.float()).norm() / b.float().norm()), 6)


def _cached_out(model: Any, dtype: torch.dtype, seed: int = 0) -> torch.Tensor:
    """Velocity of the 6th block after 5 written ones (same inputs for every model/dtype)."""
    gen = torch.Generator(device=DEV).manual_seed(seed)
    cache = KVCache.allocate(model.config, batch=1, frames=6, tokens_per_frame=1560, sink_frames=3,
                             device=DEV, dtype=dtype, rope_refresh=50, rope_rebase=5)
    ctx = 0.5 * torch.randn(1, 24, model.config.text_dim, device=DEV, generator=gen)
    model.encode_prompt(ctx.to(dtype), cache)
    out = None
    for i in range(6):
        x = torch.randn(1, 16, 1, *LAT, device=DEV, generator=gen)
        out = model(x.to(dtype), torch.full((1,), 900.0 - 100 * i, device=DEV), cache=cache, block=cache.begin_block(1))
    assert out is not None
    return out.float()


def part_check(s: Suite) -> None:
    def run() -> dict[str, Any]:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        ref = random_dit_on("1.3b", DEV, torch.float32)
        low = random_dit_on("1.3b", DEV, BF16)
        with torch.no_grad():
            for p, q in zip(low.parameters(), ref.parameters(), strict=True):
                p.copy_(q)
        gen = torch.Generator(device=DEV).manual_seed(1)
        x = torch.randn(1, 16, 2, *LAT, device=DEV, generator=gen)
        t = torch.full((1,), 500.0, device=DEV)
        ctx = 0.5 * torch.randn(1, 24, 4096, device=DEV, generator=gen)
        res: dict[str, Any] = {}
        with torch.inference_mode():
            set_fused(False)
            y32 = ref(x, t, ctx).float()
            c32 = _cached_out(ref, torch.float32)
            outs = {}
            for fused in (False, True):
                set_fused(None if fused else False)
                outs[fused] = (low(x.to(BF16), t, ctx.to(BF16)).float(), _cached_out(low, BF16))
            res["bf16_unfused_vs_fp32"] = {"nocache": _rel(outs[False][0], y32), "cached": _rel(outs[False][1], c32)}
            res["bf16_fused_vs_fp32"] = {"nocache": _rel(outs[True][0], y32), "cached": _rel(outs[True][1], c32)}
            res["bf16_fused_vs_unfused"] = {"nocache": _rel(outs[True][0], outs[False][0]), "cached": _rel(outs[True][1], outs[False][1])}
            del ref
            low.quantize_fp8()
            for fused in (False, True):
                set_fused(None if fused else False)
                y8, c8 = low(x.to(BF16), t, ctx.to(BF16)).float(), _cached_out(low, BF16)
                res[f"fp8_{'fused' if fused else 'unfused'}_vs_bf16_fused"] = {"nocache": _rel(y8, outs[True][0]), "cached": _rel(c8, outs[True][1])}
            set_fused(None)
            # the in-register e4m3 cast: fused fp8 rows vs the reference quantiser of the same h
            from livestyle.models.kernels.norm import norm_modulate
            from livestyle.models.kernels.quant import quantize_rows_reference
            xb = torch.randn(4, 1560, 5120, device=DEV, dtype=BF16, generator=gen)
            mods = 0.1 * torch.randn(4, 1, 6, 1, 5120, device=DEV, dtype=BF16, generator=gen)
            _, h = norm_modulate(xb, 1, 1e-6, shift=mods[:, :, 0], scale1=1 + mods[:, :, 1])
            _, q = norm_modulate(xb, 1, 1e-6, shift=mods[:, :, 0], scale1=1 + mods[:, :, 1], quantize=True)
            want = quantize_rows_reference(h.float())
            codes = (q.data.view(torch.uint8).int() - want.data.view(torch.uint8).int()).abs()
            res["fp8_rows_vs_reference"] = {"scale_rel": _rel(q.scale, want.scale), "codes_max_step": int(codes.max()),
                                            "codes_differing": round(float((codes > 0).float().mean()), 6),
                                            "dequant_rel": _rel(q.data.float() * q.scale, h.float().reshape(-1, h.shape[-1]))}
        res["setup"] = ("1.3B random weights; nocache: 2 latent frames 480x832, t=500; cached: 6 blocks of 1 frame into "
                        "a 6-frame (3 sink) cache, the 6th compared; fp32 unfused with TF32 off is the reference")
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        del low
        return res

    def gelu_epilogue() -> dict[str, Any]:
        """cuBLASLt's GELU epilogue (``torch._addmm_activation``) against Linear + tanh/erf GELU, 14B FFN shape."""
        import torch.nn.functional as F

        from gpu_suite import cuda_ms

        gen = torch.Generator(device=DEV).manual_seed(2)
        x = torch.randn(6240, 5120, device=DEV, dtype=BF16, generator=gen)
        w = torch.randn(13824, 5120, device=DEV, dtype=BF16, generator=gen) / 5120**0.5
        b = 0.1 * torch.randn(13824, device=DEV, dtype=BF16, generator=gen)
        ep = torch._addmm_activation(b, x, w.t(), use_gelu=True)
        lin = F.linear(x, w, b)
        return {"vs_tanh_rel": _rel(ep, F.gelu(lin, approximate="tanh")), "vs_erf_rel": _rel(ep, F.gelu(lin)),
                "epilogue_ms": cuda_ms(lambda: torch._addmm_activation(b, x, w.t(), use_gelu=True)),
                "linear_then_gelu_ms": cuda_ms(lambda: F.gelu(F.linear(x, w, b), approximate="tanh")),
                "linear_only_ms": cuda_ms(lambda: F.linear(x, w, b))}

    s.guarded("check.parity", run, 120)
    s.guarded("check.gelu_epilogue", gelu_epilogue, 20)
    gc.collect()
    torch.cuda.empty_cache()


def part_dit(s: Suite, size: str, batches: tuple[int, ...]) -> None:
    """One model per batch size (a 14B with two full caches does not fit an H100): bf16 unfused and
    fused, then the same model quantised to fp8, unfused and fused."""
    for b in batches:
        model = random_dit_on(size, DEV, BF16)
        with torch.inference_mode():
            cache = full_cache(model, b)[0]
            x = torch.randn(b, 16, 1, *LAT, device=DEV, dtype=BF16)
            t = torch.full((b,), 500.0, device=DEV)
            for kind in ("bf16", "fp8"):
                if kind == "fp8":
                    model.quantize_fp8()

                def one(kind: str = kind, b: int = b, model: Any = model, cache: Any = cache, x: Any = x, t: Any = t) -> dict[str, Any]:
                    out: dict[str, Any] = {}
                    for fused in (False, True):
                        set_fused(None if fused else False)
                        model.enable_cuda_graphs()  # fresh graphs: capture this path
                        out["fused" if fused else "unfused"] = wall_ms(
                            lambda: model(x, t, cache=cache, block=cache.begin_block(1)), iters=10 if size == "14b" else 30)
                    model.disable_cuda_graphs()
                    set_fused(None)
                    out["speedup"] = round(out["unfused"]["events_median"] / out["fused"]["events_median"], 3)
                    out["setup"] = f"{size} {kind} batch {b}, 1 latent frame, full 6-frame cache, CUDA graphs"
                    return out
                s.guarded(f"dit.{size}.{kind}.batch{b}", one, 60 if size == "14b" else 30)
        del model, cache
        gc.collect()
        torch.cuda.empty_cache()


def part_sdpa(s: Suite) -> None:
    """One 14B layer's self-attention (q 1560 tokens, k/v a full 6-frame cache) per SDPA backend."""
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from gpu_suite import cuda_ms

    def run() -> dict[str, Any]:
        res: dict[str, Any] = {}
        for b in (1, 4):
            q = torch.randn(b, 40, 1560, 128, device=DEV, dtype=BF16)
            k = torch.randn(b, 40, 6 * 1560, 128, device=DEV, dtype=BF16)
            v = torch.randn_like(k)
            for name, be in (("cudnn", SDPBackend.CUDNN_ATTENTION), ("flash2", SDPBackend.FLASH_ATTENTION),
                             ("efficient", SDPBackend.EFFICIENT_ATTENTION)):
                try:
                    with sdpa_kernel(be):
                        res[f"b{b}.{name}_ms"] = cuda_ms(lambda: F.scaled_dot_product_attention(q, k, v))["median"]
                except Exception as exc:  # a backend this build or GPU lacks is a result too
                    res[f"b{b}.{name}_ms"] = type(exc).__name__
            res[f"b{b}.default_ms"] = cuda_ms(lambda: F.scaled_dot_product_attention(q, k, v))["median"]
        try:
            import flash_attn  # type: ignore[import-not-found]
            res["flash_attn"] = flash_attn.__version__
        except ImportError:
            res["flash_attn"] = "not installed (FlashAttention-3 not measurable here)"
        res["setup"] = "14B self-attention: 40 heads x 128, q 1560 tokens, k/v 9360 (6-frame cache), bf16, unmasked"
        return res

    s.guarded("sdpa.14b", run, 30)


def part_pipe(s: Suite, size: str, steps_list: tuple[int, ...], fp8: bool, seconds: float, profile: int,
              modes: tuple[bool, ...] = (False, True)) -> None:
    torch.backends.cudnn.benchmark = False
    models = random_stream_models(size, DEV, BF16, RandomStackOptions(compile_codecs=True, cuda_graphs=True, fp8=fp8))
    tag = ".fp8" if fp8 else ""
    for steps in steps_list:
        for fused in modes:
            def one(steps: int = steps, fused: bool = fused) -> dict[str, Any]:
                models.dit.enable_cuda_graphs()  # fresh graphs: capture this path
                opts = BenchOptions(model=size, steps=steps, vae="tiny", seconds=seconds, glass_seconds=0.0, device="cuda",
                                    cuda_graphs=True, compile_codecs=True, fp8=fp8, fused=fused, profile_chunks=profile)
                return run_bench(opts, models=models, log=print)
            s.guarded(f"pipe.{size}.steps{steps}{tag}.{'fused' if fused else 'unfused'}", one, 60 if size == "14b" else 30)
    set_fused(None)
    del models
    gc.collect()
    torch.cuda.empty_cache()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", action="append", required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--budget", type=float, default=560.0, help="seconds before remaining items are skipped")
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--profile", type=int, default=4, help="chunks profiled per pipeline run (0: none)")
    ap.add_argument("--modes", default="unfused,fused", help="pipeline runs: unfused, fused or both (comma-separated)")
    a = ap.parse_args()
    s = Suite(a.out, a.budget)
    modes = tuple(m.strip() == "fused" for m in a.modes.split(",") if m.strip())
    parts = {
        "check": lambda: part_check(s),
        "sdpa": lambda: part_sdpa(s),
        "dit13": lambda: part_dit(s, "1.3b", (1, 2)),
        "dit14": lambda: part_dit(s, "14b", (1, 4)),
        "pipe13": lambda: part_pipe(s, "1.3b", (1, 2), False, a.seconds, a.profile, modes),
        "pipe14": lambda: part_pipe(s, "14b", (4,), False, a.seconds, a.profile, modes),
        "pipe14fp8": lambda: part_pipe(s, "14b", (4, 1), True, a.seconds, a.profile, modes),
    }
    for part in a.part:
        if part not in parts:
            raise SystemExit(f"unknown part {part}; choose from {', '.join(parts)}")
        parts[part]()
    print("done", json.dumps({"elapsed_s": round(time.perf_counter() - s.t0, 1)}))


if __name__ == "__main__":
    main()
