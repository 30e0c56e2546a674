"""Fused Triton kernels on the GPU: parity with the unfused ops, DiT ms, and the pipeline before/after.

Random weights at real shapes (``livestyle.diffusion.random_models``), bf16, 480x832, one process,
JSON written after each item (``gpu_suite.Suite``). Parts (``--part``, repeatable):

- ``check``: the 1.3B forward in fp32 (unfused, TF32 off) against bf16 fused and bf16 unfused, with
  no cache (2 latent frames) and on a full 6-frame cache (1 frame: the KV-write kernel); fp8 fused
  and unfused against bf16 fused; one layer's fused fp8 rows against the reference quantiser
  (the in-register e4m3 cast the CPU tests cannot run).
- ``dit13`` / ``dit14``: DiT ms per forward (CUDA-graph replay, full 6-frame cache, 1 latent frame),
  unfused vs fused, bf16 then fp8, at the stream-batch sizes the pipeline runs (1.3B: 1, 2; 14B: 1, 4).
- ``sdpa``: one 14B layer's cached self-attention per PyTorch SDPA backend (cuDNN, flash 2, efficient).
- ``kv``: the q/k kernel and the adaptive sink's means + scatter at the 14B's shape, fused vs
  reference (ms and parity).
- ``attn``: the fp8 and int8 attention backends against cuDNN's bf16 SDPA (one 14B layer, ms and
  error) and the 1.3B's cached forward with fp8 GEMMs and 8-bit attention against bf16.
- ``spikes``: per-chunk wall and stage GPU times of the 1.3B at 1 step, gc on and off: where the
  bench loop's slow chunks come from.
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
from livestyle.diffusion.random_models import RandomStackOptions, random_stream_models  # noqa: E402


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


def part_attn(s: Suite) -> None:
    """The 8-bit attention backends against cuDNN's bf16 SDPA: one 14B layer's cached self-attention
    (q 1560 tokens, k/v a full 6-frame cache, 40 heads x 128) at batch 1 and 4, ms and relative
    error to fp32 attention; then the 1.3B's full forward, fp8 GEMMs + 8-bit attention vs bf16."""
    import torch.nn.functional as F

    from gpu_suite import cuda_ms

    from livestyle.models.attention import set_backend
    from livestyle.models.kernels.fp8_attention import fp8_attention

    def layer() -> dict[str, Any]:
        res: dict[str, Any] = {}
        for b in (1, 4):
            gen = torch.Generator(device=DEV).manual_seed(b)
            q = torch.randn(b, 1560, 40, 128, device=DEV, dtype=BF16, generator=gen)
            k = torch.randn(b, 6 * 1560, 40, 128, device=DEV, dtype=BF16, generator=gen)
            v = torch.randn_like(k)

            def sdpa() -> torch.Tensor:
                return F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)).transpose(1, 2)

            exact = F.scaled_dot_product_attention(q.float().transpose(1, 2), k.float().transpose(1, 2),
                                                   v.float().transpose(1, 2)).transpose(1, 2)
            res[f"b{b}"] = {"sdpa_ms": cuda_ms(sdpa), "sdpa_rel": _rel(sdpa(), exact)}
            for pv in ("fp8", "bf16"):
                name = "fp8" if pv == "fp8" else "int8"
                res[f"b{b}"][f"{name}_ms"] = cuda_ms(lambda pv=pv: fp8_attention(q, k, v, pv=pv))
                res[f"b{b}"][f"{name}_rel"] = _rel(fp8_attention(q, k, v, pv=pv), exact)
        return res

    def forward() -> dict[str, Any]:
        model = random_dit_on("1.3b", DEV, BF16)
        with torch.inference_mode():
            base = _cached_out(model, BF16)
            model.quantize_fp8()
            gemm8 = _cached_out(model, BF16)
            res: dict[str, Any] = {"fp8_gemms_vs_bf16": _rel(gemm8, base), "bound": 0.015}
            for name in ("fp8", "int8"):
                set_backend(name)  # type: ignore[arg-type]
                try:
                    res[f"fp8_gemms_and_{name}_attention_vs_bf16"] = _rel(_cached_out(model, BF16), base)
                finally:
                    set_backend(None)
        return res

    s.guarded("attn.layer", layer, 40)
    s.guarded("attn.forward", forward, 60)


def part_pipe(s: Suite, size: str, steps_list: tuple[int, ...], fp8: bool, seconds: float, profile: int,
              modes: tuple[bool, ...] = (False, True), compile_codecs: bool = True) -> None:
    torch.backends.cudnn.benchmark = False
    models = random_stream_models(size, DEV, BF16, RandomStackOptions(compile_codecs=compile_codecs, cuda_graphs=True, fp8=fp8))
    tag = (".fp8" if fp8 else "") + ("" if compile_codecs else ".eager_codecs")
    for steps in steps_list:
        for fused in modes:
            def one(steps: int = steps, fused: bool = fused) -> dict[str, Any]:
                models.dit.enable_cuda_graphs()  # fresh graphs: capture this path
                opts = BenchOptions(model=size, steps=steps, vae="tiny", seconds=seconds, glass_seconds=0.0, device="cuda",
                                    cuda_graphs=True, compile_codecs=compile_codecs, fp8=fp8, fused=fused, profile_chunks=profile)
                return run_bench(opts, models=models, log=print)
            s.guarded(f"pipe.{size}.steps{steps}{tag}.{'fused' if fused else 'unfused'}", one, 60 if size == "14b" else 30)
    set_fused(None)
    del models
    gc.collect()
    torch.cuda.empty_cache()


def part_spikes(s: Suite, seconds: float, size: str = "1.3b") -> None:
    """Where the bench loop's slow chunks come from (issue 24: p95 ~1.9x p50 on the 1.3B at 1 step).

    The 1.3B, 1 step, tiny codec both ways, ``seconds`` of chunks per variant: per chunk the host
    wall time and the GPU span of each stage (``StageTimer``'s CUDA events, read afterwards).
    Variants: as ``livestyle bench`` runs (gc on); gc frozen and disabled during the loop. A chunk
    is slow when its wall time exceeds 1.3x the median; for those the stage that grew is listed.
    """
    from livestyle.diffusion.family import family_from_mapping
    from livestyle.diffusion.stream import StreamPipeline
    from livestyle.diffusion.stream_state import Controls
    from livestyle.diffusion.timing import StageTimer
    from livestyle.cli.bench import _frames, _resolve_model

    torch.backends.cudnn.benchmark = False
    models = random_stream_models(size, DEV, BF16, RandomStackOptions(compile_codecs=DEV.type == "cuda", cuda_graphs=True))
    _, fam, _ = _resolve_model(size)

    def one(gc_off: bool) -> dict[str, Any]:
        family = family_from_mapping(fam, source="spikes")
        w, h = (832, 480) if size != "tiny" else (64, 48)
        controls = Controls(prompt="a watercolor painting", strength=0.8, steps=1, seed=0, width=w, height=h, decoder="tiny")
        pipe = StreamPipeline(models, family, controls, device=DEV, dtype=BF16, name="spikes")
        pool = _frames(w, h, 0, 64, 30.0)
        i = 0
        with torch.no_grad():
            def feed() -> int:
                nonlocal i
                n = pipe.frames_needed()
                frames = [pool[(i + j) % len(pool)] for j in range(n)]
                i += n
                return len(pipe.process(frames))
            for _ in range(30):
                feed()
            if DEV.type == "cuda":
                torch.cuda.synchronize()
            pipe.timer = StageTimer(DEV, capacity=100000)
            if gc_off:
                gc.collect()
                gc.freeze()
                gc.disable()
            walls, t_end = [], time.perf_counter() + seconds
            collections0 = [st["collections"] for st in gc.get_stats()]
            try:
                while time.perf_counter() < t_end:
                    t0 = time.perf_counter()
                    feed()
                    walls.append(1000 * (time.perf_counter() - t0))
            finally:
                if gc_off:
                    gc.enable()
                    gc.unfreeze()
            if DEV.type == "cuda":
                torch.cuda.synchronize()
            collections = [st["collections"] - c0 for st, c0 in zip(gc.get_stats(), collections0)]
        pipe.timer._drain()
        stages = {name: list(ring._values) for name, ring in pipe.timer._rings.items()}
        srt = sorted(walls)
        med = srt[len(srt) // 2]
        slow = [k for k, w in enumerate(walls) if w > 1.3 * med]
        stage_med = {n: sorted(v)[len(v) // 2] for n, v in stages.items() if v}
        detail = []
        for k in slow[:12]:
            row = {"chunk": k, "wall_ms": round(walls[k], 2)}
            for n, v in stages.items():
                if k < len(v):
                    row[n] = round(v[k], 2)
            detail.append(row)
        del pipe
        return {"chunks": len(walls), "wall_ms": {"p50": round(med, 2), "p95": round(srt[int(0.95 * (len(srt) - 1))], 2),
                                                  "p99": round(srt[int(0.99 * (len(srt) - 1))], 2), "max": round(srt[-1], 2)},
                "stage_p50_ms": {n: round(v, 2) for n, v in stage_med.items()},
                "slow_chunks": len(slow), "slow_every": [b - a for a, b in zip(slow, slow[1:])][:20],
                "slow_detail": detail, "gc_collections_by_generation": collections}

    s.guarded("spikes.gc_on", lambda: one(False), seconds + 20)
    s.guarded("spikes.gc_off", lambda: one(True), seconds + 20)
    del models
    gc.collect()
    torch.cuda.empty_cache()


def part_kv(s: Suite) -> None:
    """The q/k kernel and the adaptive sink's means + scatter at the 14B's shape (4 rows x 1560
    tokens x 5120), fused vs the reference ops, CUDA-event ms; and their parity."""
    from gpu_suite import cuda_ms

    from livestyle.models.kernels.kv_write import frame_means, frame_means_reference, scatter_rows, scatter_rows_reference
    from livestyle.models.kernels.qk_rope import qk_norm_rope, qk_norm_rope_reference
    from livestyle.models.rope import build_rope_tables, rope_cos_sin

    def run() -> dict[str, Any]:
        gen = torch.Generator(device=DEV).manual_seed(3)
        b, t, d, heads = 4, 1560, 5120, 40
        qkv = torch.randn(b, t, 3 * d, device=DEV, dtype=BF16, generator=gen)
        q, k, v = qkv.chunk(3, dim=-1)
        wq = 1 + 0.1 * torch.randn(d, device=DEV, dtype=BF16, generator=gen)
        wk = 1 + 0.1 * torch.randn(d, device=DEV, dtype=BF16, generator=gen)
        tables = build_rope_tables(d // heads, 1024)
        cos, sin = rope_cos_sin(tables, torch.full((b, 1), 5), 30, 52)
        cos, sin = cos.to(DEV), sin.to(DEV)
        cache_k = torch.zeros(b, 6 * t, heads, d // heads, device=DEV, dtype=BF16)
        cache_v = torch.zeros_like(cache_k)
        index = (torch.arange(b, device=DEV)[:, None] * 6 * t + 2 * t + torch.arange(t, device=DEV)).reshape(-1)
        res: dict[str, Any] = {}
        fq, fk, fv = qk_norm_rope(q, k, v, wq, wk, cos, sin, 1e-6, heads)
        rq, rk, rv = qk_norm_rope_reference(q, k, v, wq, wk, cos, sin, 1e-6, heads)
        res["qk_rel"] = {"q": _rel(fq, rq), "k": _rel(fk, rk), "v": _rel(fv, rv)}
        res["qk_ms"] = {"fused": cuda_ms(lambda: qk_norm_rope(q, k, v, wq, wk, cos, sin, 1e-6, heads, k_out=cache_k, v_out=cache_v, index=index)),
                        "fused_fresh": cuda_ms(lambda: qk_norm_rope(q, k, v, wq, wk, cos, sin, 1e-6, heads)),
                        "reference": cuda_ms(lambda: qk_norm_rope_reference(q, k, v, wq, wk, cos, sin, 1e-6, heads, k_out=cache_k, v_out=cache_v, index=index))}
        mf, mr = frame_means(fk, fv, t, BF16), frame_means_reference(fk, fv, t, BF16)
        res["means_rel"] = {"k": _rel(mf[0], mr[0]), "v": _rel(mf[1], mr[1])}
        res["means_ms"] = {"fused": cuda_ms(lambda: frame_means(fk, fv, t, BF16)),
                           "reference": cuda_ms(lambda: frame_means_reference(fk, fv, t, BF16))}
        res["scatter_ms"] = {"fused": cuda_ms(lambda: scatter_rows(fk, fv, cache_k, cache_v, index)),
                             "reference": cuda_ms(lambda: scatter_rows_reference(fk, fv, cache_k, cache_v, index))}
        scatter_rows(fk, fv, cache_k, cache_v, index)
        got = cache_k.clone()
        scatter_rows_reference(fk, fv, cache_k, cache_v, index)
        res["scatter_equal"] = bool(torch.equal(got, cache_k))
        gb = 3 * q.numel() * 2 * 2 / 1e9
        res["qk_gbps_fused"] = round(gb / (res["qk_ms"]["fused"]["median"] / 1000), 1)
        return res

    s.guarded("kv.kernels", run, 30)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", action="append", required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--budget", type=float, default=560.0, help="seconds before remaining items are skipped")
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--profile", type=int, default=4, help="chunks profiled per pipeline run (0: none)")
    ap.add_argument("--modes", default="unfused,fused", help="pipeline runs: unfused, fused or both (comma-separated)")
    ap.add_argument("--eager-codecs", action="store_true", help="pipe parts: codecs not compiled, as `livestyle run` runs them")
    a = ap.parse_args()
    s = Suite(a.out, a.budget)
    modes = tuple(m.strip() == "fused" for m in a.modes.split(",") if m.strip())
    parts = {
        "check": lambda: part_check(s),
        "sdpa": lambda: part_sdpa(s),
        "dit13": lambda: part_dit(s, "1.3b", (1, 2)),
        "dit14": lambda: part_dit(s, "14b", (1, 4)),
        "pipe13": lambda: part_pipe(s, "1.3b", (1, 2), False, a.seconds, a.profile, modes, not a.eager_codecs),
        "pipe14": lambda: part_pipe(s, "14b", (4,), False, a.seconds, a.profile, modes, not a.eager_codecs),
        "pipe14fp8": lambda: part_pipe(s, "14b", (4, 1), True, a.seconds, a.profile, modes, not a.eager_codecs),
        "spikes": lambda: part_spikes(s, a.seconds),
        "kv": lambda: part_kv(s),
        "attn": lambda: part_attn(s),
    }
    for part in a.part:
        if part not in parts:
            raise SystemExit(f"unknown part {part}; choose from {', '.join(parts)}")
        parts[part]()
    print("done", json.dumps({"elapsed_s": round(time.perf_counter() - s.t0, 1)}))


if __name__ == "__main__":
    main()
