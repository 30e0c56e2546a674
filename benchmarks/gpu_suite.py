"""GPU measurement suite: many configurations in ONE process, JSON written after each one.

Random weights at real shapes (``livestyle.diffusion.random_models``), bf16, 480x832, CUDA events.
Parts (``--part``, repeatable):

- ``checks``: no host syncs in the DiT forward (``torch.cuda.set_sync_debug_mode("error")``, eager
  and compiled, 1.3B with a 6-frame cache); bf16 vs fp32 relative error of the first block and of
  the whole 1.3B forward (TF32 off for the reference).
- ``dit13`` / ``dit14``: transformer ms for 1 latent frame against a full 6-frame cache (3 sink),
  batch 1/2/4 (1.3B) or 1/4 (14B), eager and compiled, peak memory.
- ``codecs``: Wan VAE streaming encode/decode ms per 4-frame chunk (eager NCDHW, channels_last_3d,
  compiled), TAEHV encode/decode ms per chunk (eager, compiled).
- ``umt5``: umT5-XXL-shaped encoder (transformers ``UMT5EncoderModel``, Wan 2.1 wan/modules/t5.py, Wan-Video/Wan2.1 config,
  random bf16 weights) ms per 512-token prompt on the GPU.
- ``pipe13`` / ``pipe14``: ``livestyle bench``'s ``run_bench`` over steps x decoders with one
  shared, compiled stack.

Usage (device): ``python benchmarks/gpu_suite.py --part checks --part dit13 --out $OUT/micro.json``
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from livestyle.cli.bench import BenchOptions, run_bench  # noqa: E402
from livestyle.models.dit import CausalWanDiT  # noqa: E402
from livestyle.models.kv_cache import KVCache  # noqa: E402
from livestyle.models.testing.on_device import random_dit_on, random_umt5_xxl_on  # noqa: E402
from livestyle.diffusion.random_models import RandomStackOptions, random_stream_models  # noqa: E402

DEV = torch.device("cuda")
BF16 = torch.bfloat16
T = 1560  # tokens per latent frame at 480x832
LAT = (60, 104)  # latent H, W


class Suite:
    def __init__(self, out: Path, budget_s: float) -> None:
        self.out = out
        self.t0 = time.perf_counter()
        self.budget_s = budget_s
        self.data: dict[str, Any] = {
            "device": torch.cuda.get_device_name(DEV),
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(),
            "results": {},
        }

    def left(self) -> float:
        return self.budget_s - (time.perf_counter() - self.t0)

    def put(self, key: str, value: Any) -> None:
        self.data["results"][key] = value
        self.out.write_text(json.dumps(self.data, indent=1))
        print(f"[{time.perf_counter() - self.t0:6.1f}s] {key}: {json.dumps(value)[:400]}", flush=True)

    def guarded(self, key: str, fn: Callable[[], Any], need_s: float = 30.0) -> None:
        if self.left() < need_s:
            self.put(key, {"skipped": f"time budget ({self.left():.0f} s left)"})
            return
        try:
            self.put(key, fn())
        except Exception as exc:  # a failed configuration is a result too
            traceback.print_exc()
            self.put(key, {"error": f"{type(exc).__name__}: {str(exc)[:600]}"})
        finally:
            gc.collect()
            torch.cuda.empty_cache()


def cuda_ms(fn: Callable[[], Any], iters: int = 20, warmup: int = 3) -> dict[str, float]:
    """Median / min ms of ``fn`` over ``iters`` runs, timed with CUDA events."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return {"median": round(statistics.median(times), 3), "min": round(min(times), 3)}


def full_cache(model: CausalWanDiT, batch: int, dtype: torch.dtype = BF16) -> tuple[KVCache, Any]:
    """A 6-frame (3 sink) cache with 5 frames already written, and the 6th frame's block."""
    cache = KVCache.allocate(model.config, batch=batch, frames=6, tokens_per_frame=T, sink_frames=3,
                             device=DEV, dtype=dtype, rope_refresh=50, rope_rebase=5)
    ctx = 0.5 * torch.randn(1, 24, model.config.text_dim, device=DEV, dtype=dtype)
    model.encode_prompt(ctx, cache)
    x = torch.randn(batch, 16, 1, *LAT, device=DEV, dtype=dtype)
    t = torch.full((batch,), 500.0, device=DEV)
    for _ in range(5):
        blk = cache.begin_block(1)
        model(x, t, cache=cache, block=blk)
    return cache, cache.begin_block(1)


# ----------------------------------------------------------------------------- parts
def part_checks(s: Suite) -> None:
    def syncs() -> dict[str, Any]:
        model = random_dit_on("1.3b", DEV, BF16)
        out: dict[str, Any] = {}
        with torch.inference_mode():
            cache, blk = full_cache(model, 1)
            x = torch.randn(1, 16, 1, *LAT, device=DEV, dtype=BF16)
            t = torch.full((1,), 500.0, device=DEV)
            compiled = torch.compile(model, dynamic=False)
            compiled(x, t, cache=cache, block=blk)  # compile outside the check
            torch.cuda.synchronize()
            for name, fn in (("eager", model), ("compiled", compiled)):
                torch.cuda.set_sync_debug_mode("error")
                try:
                    for _ in range(3):
                        blk = cache.begin_block(1)
                        fn(x, t, cache=cache, block=blk)
                    out[name] = "no host sync (set_sync_debug_mode('error') passed, 3 chunks incl. begin_block)"
                except RuntimeError as exc:
                    out[name] = f"SYNC: {str(exc)[:300]}"
                finally:
                    torch.cuda.set_sync_debug_mode("default")
        return out

    def precision() -> dict[str, Any]:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        ref = random_dit_on("1.3b", DEV, torch.float32)
        low = random_dit_on("1.3b", DEV, BF16)
        with torch.no_grad():
            for p, q in zip(low.parameters(), ref.parameters()):
                p.copy_(q)
        x = torch.randn(1, 16, 2, *LAT, device=DEV)
        t = torch.full((1,), 500.0, device=DEV)
        ctx = 0.5 * torch.randn(1, 24, 4096, device=DEV)
        grabbed: dict[str, torch.Tensor] = {}

        def hook(name: str) -> Any:
            return lambda mod, args, out: grabbed.__setitem__(name, out.float())

        res: dict[str, Any] = {}
        with torch.inference_mode():
            h = ref.blocks[0].register_forward_hook(hook("ref"))
            y32 = ref(x, t, ctx).float()
            h.remove()
            h = low.blocks[0].register_forward_hook(hook("low"))
            y16 = low(x.to(BF16), t, ctx.to(BF16)).float()
            h.remove()
        rel = lambda a, b: float((a - b).norm() / b.norm())  # noqa: E731
        res["block0_rel_error"] = rel(grabbed["low"], grabbed["ref"])
        res["forward_rel_error"] = rel(y16, y32)
        res["forward_cosine"] = float(torch.nn.functional.cosine_similarity(y16.flatten(), y32.flatten(), dim=0))
        res["setup"] = "1.3B random weights, 2 latent frames 480x832 (3120 tokens), no cache, t=500, TF32 off for fp32"
        del ref, low
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        return res

    s.guarded("checks.host_syncs_dit_forward", syncs, 120)
    s.guarded("checks.bf16_vs_fp32", precision, 60)


def part_dit(s: Suite, size: str, batches: tuple[int, ...], compile_too: bool = True) -> None:
    model = random_dit_on(size, DEV, BF16)
    compiled = torch.compile(model, dynamic=False) if compile_too else None
    for b in batches:
        def one(b: int = b) -> dict[str, Any]:
            torch.cuda.reset_peak_memory_stats()
            with torch.inference_mode():
                cache, blk = full_cache(model, b)
                x = torch.randn(b, 16, 1, *LAT, device=DEV, dtype=BF16)
                t = torch.full((b,), 500.0, device=DEV)
                eager = cuda_ms(lambda: model(x, t, cache=cache, block=blk), iters=10 if size == "14b" else 20)
                comp = cuda_ms(lambda: compiled(x, t, cache=cache, block=blk), iters=10 if size == "14b" else 20) if compiled else None
            return {"eager_ms": eager, "compiled_ms": comp, "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
                    "setup": f"{size} batch {b}, 1 latent frame 480x832 ({T} tokens), 6-frame KV cache (3 sink) full, fused qkv, bf16, SDPA"}
        s.guarded(f"dit.{size}.batch{b}", one, 90 if size == "14b" else 60)
    del model, compiled
    gc.collect()
    torch.cuda.empty_cache()


def part_codecs(s: Suite) -> None:
    from livestyle.models.taehv import TAEHV, TAEHV_CONFIGS, StreamingTAEHV
    from livestyle.models.vae import VAE_CONFIGS, StreamingWanVAE, WanVAE

    torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    with torch.device(DEV):
        vae = WanVAE(VAE_CONFIGS["wan2.1"]).to(BF16).eval().requires_grad_(False)
        tae = TAEHV(TAEHV_CONFIGS["taew2_1"]).to(BF16).eval().requires_grad_(False)
    px0 = torch.rand(1, 3, 1, 480, 832, device=DEV, dtype=BF16) * 2 - 1
    px = torch.rand(1, 3, 4, 480, 832, device=DEV, dtype=BF16) * 2 - 1
    z = torch.randn(1, 16, 1, *LAT, device=DEV, dtype=BF16)

    def wan(variant: str) -> dict[str, Any]:
        v = vae
        cl = variant != "eager"
        if cl:
            with torch.no_grad():
                for p in v.parameters():
                    if p.ndim == 5:
                        p.data = p.data.contiguous(memory_format=torch.channels_last_3d)
        sw = StreamingWanVAE(v, channels_last=cl)
        if variant == "compiled":
            sw.vae = v  # same module; compile the chunk functions below
            enc_fn = torch.compile(v.encode_chunk, dynamic=False)
            dec_fn = torch.compile(v.decode_chunk, dynamic=False)
        else:
            enc_fn, dec_fn = v.encode_chunk, v.decode_chunk
        lay = (lambda a: a.contiguous(memory_format=torch.channels_last_3d)) if cl else (lambda a: a)
        with torch.inference_mode():
            ecache = v.new_encoder_cache()
            enc_fn(lay(px0), ecache)
            enc = cuda_ms(lambda: enc_fn(lay(px), ecache), iters=10, warmup=3)
            dcache = v.new_decoder_cache()
            dec_fn(lay(z), dcache)
            dec = cuda_ms(lambda: dec_fn(lay(z), dcache), iters=10, warmup=3)
        return {"encode_ms": enc, "decode_ms": dec, "setup": f"Wan 2.1 VAE bf16 {variant}, streaming, 4 frames <-> 1 latent at 480x832"}

    def taehv(variant: str) -> dict[str, Any]:
        m = tae.to(memory_format=torch.channels_last)
        st = StreamingTAEHV(m)
        enc_fn, dec_fn = m.encode_chunk, m.decode_chunk
        if variant == "compiled":
            enc_fn = torch.compile(m.encode_chunk, dynamic=False)
            dec_fn = torch.compile(m.decode_chunk, dynamic=False)
        with torch.inference_mode():
            x = px.permute(0, 2, 1, 3, 4).add(1).mul(0.5)  # [B, T, 3, H, W] in [0, 1]
            zz = z.permute(0, 2, 1, 3, 4)
            ec = m.new_encoder_cache()
            enc = cuda_ms(lambda: enc_fn(x, ec), iters=20)
            dc = m.new_decoder_cache()
            dec = cuda_ms(lambda: dec_fn(zz, dc), iters=20)
            st.reset()
        return {"encode_ms": enc, "decode_ms": dec, "setup": f"TAEHV taew2_1 bf16 channels_last {variant}, 4 frames <-> 1 latent at 480x832, memory kept per call"}

    for variant in ("eager", "channels_last_3d", "compiled"):
        s.guarded(f"codecs.wan_vae.{variant}", lambda v=variant: wan(v), 60)
    for variant in ("eager", "compiled"):
        s.guarded(f"codecs.taehv.{variant}", lambda v=variant: taehv(v), 40)


def part_profile(s: Suite, size: str = "1.3b") -> None:
    """Top CUDA kernels of one eager forward (batch 1 and 2, full 6-frame cache) + SDPA variants."""
    import torch.nn.functional as F
    from torch.profiler import ProfilerActivity, profile

    model = random_dit_on(size, DEV, BF16)
    for b in (1, 2):
        def one(b: int = b) -> dict[str, Any]:
            with torch.inference_mode():
                cache, blk = full_cache(model, b)
                x = torch.randn(b, 16, 1, *LAT, device=DEV, dtype=BF16)
                t = torch.full((b,), 500.0, device=DEV)
                for _ in range(3):
                    model(x, t, cache=cache, block=blk)
                torch.cuda.synchronize()
                with profile(activities=[ProfilerActivity.CUDA]) as prof:
                    model(x, t, cache=cache, block=blk)
                    torch.cuda.synchronize()
            rows = []
            for e in sorted(prof.key_averages(), key=lambda e: -e.device_time_total)[:14]:
                rows.append({"kernel": e.key[:110], "calls": e.count, "ms": round(e.device_time_total / 1000, 3)})
            total = sum(e.device_time_total for e in prof.key_averages()) / 1000
            return {"gpu_ms_total": round(total, 2), "top": rows}
        s.guarded(f"profile.{size}.batch{b}", one, 40)

    def sdpa() -> dict[str, Any]:
        from torch.nn.attention import SDPBackend, sdpa_kernel

        h, d = model.config.num_heads, model.config.head_dim
        res: dict[str, Any] = {}
        for b in (1, 2):
            q = torch.randn(b, h, T, d, device=DEV, dtype=BF16)
            k = torch.randn(b, h, 6 * T, d, device=DEV, dtype=BF16)
            v = torch.randn_like(k)
            bias = torch.zeros(b, 1, 1, 6 * T, device=DEV, dtype=BF16)
            for name, be in (("default", None), ("cudnn", SDPBackend.CUDNN_ATTENTION), ("flash", SDPBackend.FLASH_ATTENTION),
                             ("efficient", SDPBackend.EFFICIENT_ATTENTION)):
                for masked in (False, True):
                    key = f"b{b}.{name}.{'bias' if masked else 'nomask'}"
                    try:
                        def call() -> Any:
                            return F.scaled_dot_product_attention(q, k, v, attn_mask=bias if masked else None)
                        if be is None:
                            res[key] = cuda_ms(call)["median"]
                        else:
                            with sdpa_kernel(be):
                                res[key] = cuda_ms(call)["median"]
                    except Exception as exc:
                        res[key] = f"{type(exc).__name__}"
        res["setup"] = f"one layer's self-attention, q {T} tokens, k/v {6 * T} (6-frame cache), {h} heads x {d}, bf16"
        return res

    s.guarded(f"sdpa.{size}", sdpa, 30)
    del model
    gc.collect()
    torch.cuda.empty_cache()


def part_umt5(s: Suite) -> None:
    def run() -> dict[str, Any]:
        model = random_umt5_xxl_on(DEV, BF16)
        params = sum(p.numel() for p in model.parameters())
        ids = torch.randint(0, 256384, (1, 512), device=DEV)
        mask = torch.zeros(1, 512, dtype=torch.long, device=DEV)
        mask[:, :40] = 1
        with torch.inference_mode():
            ms = cuda_ms(lambda: model(input_ids=ids, attention_mask=mask).last_hidden_state, iters=10)
        gib = torch.cuda.memory_allocated() / 2**30
        del model
        return {"encode_ms": ms, "params": params, "weights_gib": round(gib, 2),
                "setup": "transformers UMT5EncoderModel, Wan 2.1 wan/modules/t5.py, Wan-Video/Wan2.1 config, random bf16 weights, 512 tokens (40 real), GPU"}

    s.guarded("umt5.gpu", run, 60)


def wall_ms(fn: Callable[[], Any], iters: int = 20, warmup: int = 3) -> dict[str, float]:
    """Median / min host wall ms of ``fn`` (synchronised), plus the CUDA-event median."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    walls, gpu = [], []
    for _ in range(iters):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        t0 = time.perf_counter()
        a.record()
        fn()
        b.record()
        b.synchronize()
        walls.append(1000 * (time.perf_counter() - t0))
        gpu.append(a.elapsed_time(b))
    return {"wall_median": round(statistics.median(walls), 3), "wall_min": round(min(walls), 3),
            "events_median": round(statistics.median(gpu), 3)}


def part_dit_graphs(s: Suite, size: str, batches: tuple[int, ...]) -> None:
    """DiT ms per forward, 1 latent frame, full 6-frame cache, begin_block every call (the real
    pattern): eager (unmasked once full, fused modulation/RoPE) vs CUDA-graph replay; graph output
    vs eager output on the same cache state; host-sync check of the replay path."""
    model = random_dit_on(size, DEV, BF16)
    for b in batches:
        def one(b: int = b) -> dict[str, Any]:
            torch.cuda.reset_peak_memory_stats()
            out: dict[str, Any] = {}
            with torch.inference_mode():
                cache, _ = full_cache(model, b)
                x = torch.randn(b, 16, 1, *LAT, device=DEV, dtype=BF16)
                t = torch.full((b,), 500.0, device=DEV)

                def step() -> torch.Tensor:
                    blk = cache.begin_block(1)
                    return model(x, t, cache=cache, block=blk)

                model.disable_cuda_graphs()
                for _ in range(3):
                    step()
                out["cache_full_flag"] = cache.full
                iters = 10 if size == "14b" else 30
                out["eager"] = wall_ms(step, iters=iters)
                ref = step()
                model.enable_cuda_graphs()
                out["graphs"] = wall_ms(step, iters=iters)
                # same cache state: the eager ref was computed one block earlier; recompute both now
                blk = cache.begin_block(1)
                g_out = model(x, t, cache=cache, block=blk)
                graphs = model._graphs
                model.disable_cuda_graphs()
                e_out = model(x, t, cache=cache, block=blk)
                out["graph_vs_eager_max_abs"] = float((g_out.float() - e_out.float()).abs().max())
                out["graph_vs_eager_rel"] = float((g_out.float() - e_out.float()).norm() / e_out.float().norm())
                out["ref_finite"] = bool(torch.isfinite(ref).all())
                out["captures"] = graphs.captures if graphs else 0
                model.enable_cuda_graphs()
                for _ in range(4):
                    step()
                torch.cuda.synchronize()
                torch.cuda.set_sync_debug_mode("error")
                try:
                    for _ in range(3):
                        step()
                    out["sync_check"] = "no host sync in begin_block + graph replay (3 chunks)"
                except RuntimeError as exc:
                    out["sync_check"] = f"SYNC: {str(exc)[:300]}"
                finally:
                    torch.cuda.set_sync_debug_mode("default")
                model.disable_cuda_graphs()
            out["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
            out["setup"] = (f"{size} batch {b}, 1 latent frame 480x832 ({T} tokens), 6-frame KV cache (3 sink) full, "
                            "fused qkv, bf16, SDPA, begin_block per call")
            return out
        s.guarded(f"dit_graphs.{size}.batch{b}", one, 90 if size == "14b" else 40)
    del model
    gc.collect()
    torch.cuda.empty_cache()


def part_dit_fp8(s: Suite, size: str, batches: tuple[int, ...]) -> None:
    """fp8 block linears (``quantize_fp8``) vs bf16: ms per forward (CUDA graphs) and the relative
    error of the velocity on the same cache state (1 latent frame, full 6-frame cache)."""
    model = random_dit_on(size, DEV, BF16)
    caches: dict[int, Any] = {}
    refs: dict[int, dict[str, Any]] = {}
    with torch.inference_mode():
        for b in batches:  # bf16 first: caches, reference outputs, timings
            cache, _ = full_cache(model, b)
            x = torch.randn(b, 16, 1, *LAT, device=DEV, dtype=BF16)
            t = torch.full((b,), 500.0, device=DEV)
            caches[b] = (cache, x, t)
            model.enable_cuda_graphs()
            ms = wall_ms(lambda: model(x, t, cache=cache, block=cache.begin_block(1)), iters=10)
            blk = cache.begin_block(1)
            model.disable_cuda_graphs()
            refs[b] = {"bf16": ms, "blk": blk, "ref": model(x, t, cache=cache, block=blk).float()}
        model.quantize_fp8()
        for b in batches:
            def one(b: int = b) -> dict[str, Any]:
                cache, x, t = caches[b]
                r = refs[b]
                out = model(x, t, cache=cache, block=r["blk"]).float()
                rel = float((out - r["ref"]).norm() / r["ref"].norm())
                cos = float(torch.nn.functional.cosine_similarity(out.flatten(), r["ref"].flatten(), dim=0))
                model.enable_cuda_graphs()
                ms = wall_ms(lambda: model(x, t, cache=cache, block=cache.begin_block(1)), iters=10)
                model.disable_cuda_graphs()
                return {"bf16_graphs": r["bf16"], "fp8_graphs": ms, "rel_error_vs_bf16": round(rel, 5), "cosine": round(cos, 6),
                        "setup": f"{size} batch {b}, 1 latent frame, full 6-frame cache, block linears e4m3 per-tensor scales"}
            s.guarded(f"dit_fp8.{size}.batch{b}", one, 30)
    del model, caches, refs
    gc.collect()
    torch.cuda.empty_cache()


def part_pipe(s: Suite, size: str, steps_list: tuple[int, ...], vaes: tuple[str, ...], seconds: float,
              glass: float, compile_dit: bool = True, tag: str = "", cuda_graphs: bool = False,
              compile_codecs: bool = False, fp8: bool = False) -> None:
    torch.backends.cudnn.benchmark = True
    t0 = time.perf_counter()
    models = random_stream_models(size, DEV, BF16, RandomStackOptions(
        compile_dit=compile_dit, cuda_graphs=cuda_graphs, compile_codecs=compile_codecs, fp8=fp8))
    s.put(f"build.{size}{tag}", {"build_s": round(time.perf_counter() - t0, 1)})
    for steps in steps_list:
        for vae in vaes:
            opts = BenchOptions(model=size, steps=steps, vae=vae, seconds=seconds, glass_seconds=glass,
                                compile=compile_dit, device="cuda", cuda_graphs=cuda_graphs,
                                compile_codecs=compile_codecs, fp8=fp8)
            s.guarded(f"pipe.{size}.steps{steps}.{vae}{tag}", lambda o=opts: run_bench(o, models=models, log=print),
                      150 if size == "14b" else 75)
    del models
    gc.collect()
    torch.cuda.empty_cache()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", action="append", required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--budget", type=float, default=560.0, help="seconds before remaining items are skipped")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--glass", type=float, default=3.0)
    a = ap.parse_args()
    torch._dynamo.config.cache_size_limit = 64
    s = Suite(a.out, a.budget)
    for part in a.part:
        if part == "checks":
            part_checks(s)
        elif part == "dit13":
            part_dit(s, "1.3b", (1, 2, 4))
        elif part == "dit14eager":
            part_dit(s, "14b", (1, 4), compile_too=False)
        elif part == "pipe14eager":
            part_pipe(s, "14b", (1, 4), ("tiny-decoder", "wan"), a.seconds, a.glass, compile_dit=False, tag=".eager")
        elif part == "pipe13c":
            part_pipe(s, "1.3b", (2,), ("tiny",), a.seconds, a.glass, compile_dit=True)
        elif part == "dit14":
            part_dit(s, "14b", (1, 4))
        elif part == "codecs":
            part_codecs(s)
        elif part == "profile":
            part_profile(s)
        elif part == "umt5":
            part_umt5(s)
        elif part == "pipe13":
            part_pipe(s, "1.3b", (2, 1, 4), ("tiny-decoder", "tiny", "wan"), a.seconds, a.glass)
        elif part == "pipe13eager":
            part_pipe(s, "1.3b", (2, 1, 4), ("tiny-decoder", "tiny", "wan"), a.seconds, a.glass, compile_dit=False, tag=".eager")
        elif part == "ditg13":
            part_dit_graphs(s, "1.3b", (1, 2, 4))
        elif part == "ditg13smoke":
            part_dit_graphs(s, "1.3b", (1, 2))
        elif part == "ditg14":
            part_dit_graphs(s, "14b", (1, 4))
        elif part == "pipeg13smoke":
            part_pipe(s, "1.3b", (2,), ("tiny",), a.seconds, a.glass, compile_dit=False, tag=".graphs",
                      cuda_graphs=True, compile_codecs=True)
        elif part == "pipeg13":
            part_pipe(s, "1.3b", (2, 1, 4), ("tiny", "tiny-decoder", "wan"), a.seconds, a.glass, compile_dit=False,
                      tag=".graphs", cuda_graphs=True, compile_codecs=True)
        elif part == "pipeg14":
            part_pipe(s, "14b", (1, 4), ("tiny-decoder",), a.seconds, a.glass, compile_dit=False, tag=".graphs",
                      cuda_graphs=True, compile_codecs=True)
        elif part == "glass13":
            part_pipe(s, "1.3b", (2, 1), ("tiny",), a.seconds, a.glass, compile_dit=False, tag=".graphs.glass",
                      cuda_graphs=True, compile_codecs=True)
        elif part == "fp8_14":
            part_dit_fp8(s, "14b", (1, 4))
        elif part == "fp8_13":
            part_dit_fp8(s, "1.3b", (1, 2))
        elif part == "pipefp8_14":
            part_pipe(s, "14b", (1, 4), ("tiny-decoder",), a.seconds, a.glass, compile_dit=False, tag=".graphs.fp8",
                      cuda_graphs=True, compile_codecs=True, fp8=True)
        elif part == "pipefp8_13":
            part_pipe(s, "1.3b", (2,), ("tiny",), a.seconds, 0.0, compile_dit=False, tag=".graphs.fp8",
                      cuda_graphs=True, compile_codecs=True, fp8=True)
        elif part == "diag13":
            part_pipe(s, "1.3b", (1, 2), ("tiny",), a.seconds, a.glass, compile_dit=False, tag=".graphs.glass",
                      cuda_graphs=True, compile_codecs=True)
        elif part == "pipeg14tiny":
            part_pipe(s, "14b", (1, 4), ("tiny",), a.seconds, 0.0, compile_dit=False, tag=".graphs",
                      cuda_graphs=True, compile_codecs=True)
        elif part == "pipefp8_14tiny":
            part_pipe(s, "14b", (4, 1), ("tiny",), a.seconds, 0.0, compile_dit=False, tag=".graphs.fp8",
                      cuda_graphs=True, compile_codecs=True, fp8=True)
        elif part == "pipe14":
            part_pipe(s, "14b", (1, 4), ("tiny-decoder", "wan"), a.seconds, a.glass)
        else:
            raise SystemExit(f"unknown part {part}")
    print("done", json.dumps({"elapsed_s": round(time.perf_counter() - s.t0, 1)}))


if __name__ == "__main__":
    main()
