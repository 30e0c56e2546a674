"""``livestyle bench``: the real StreamPipeline on a synthetic source, random weights at real shapes.

What it measures (one process, after a warm-up that compiles every block shape):

1. first-frame time: ``reset()`` the warm pipeline, feed chunks as fast as they are asked for,
   wall seconds until the first styled frames come back (compute only: a camera adds the time
   to capture the first chunk's frames, 4 frames = 133 ms at 30 fps for SDV2's first 5-frame chunk);
2. throughput: ``process()`` in a loop for ``--seconds``; fps = output frames / wall time; chunk
   latency = wall time of each ``process()`` call (it ends with the decoded pixels on the host);
   per-stage medians from the pipeline's CUDA-event timers (``stats()["stages_ms"]``);
3. what the viewer gets: the real :class:`~livestyle.engine.runner.Runner` (warmed on its own
   worker thread) with a paced 30 fps pattern source and a stamping null sink, for
   ``--glass-seconds`` after warm-up: frames written per second, frames lost, judder (gap
   p95/max), stalls, glass to glass p50/p95/p99 (capture time stamped at the source, compared at
   the sink write), with the governor ``livestyle run`` uses (``--no-governor``: settings pinned)
   and the level it settled on;
4. peak memory (``torch.cuda.max_memory_allocated`` while streaming, weights included).

The last printed line is one JSON object with the device name, torch version, attention backend
and every setting. Random weights only (``livestyle.diffusion.random_models``): the pictures are
noise, the timings are those of the real checkpoints. Runs on CPU with ``--model tiny`` through the
same code. Nothing on this path imports av, aiortc or pydantic.
"""

from __future__ import annotations

import gc
import itertools
import json
import math
import statistics
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import typer

from livestyle.cli.help_text import examples
from livestyle.errors import ConfigError, PipelineError

__all__ = ["BenchOptions", "register", "run_bench", "write_profile"]

EXAMPLES = examples(
    "livestyle bench --model 1.3b --steps 2 --vae tiny-decoder --seconds 10",
    "livestyle bench --model 14b --steps 4 --vae wan",
    "livestyle bench --model 1.3b --steps 2 --vae tiny --no-stream-batch",
    "livestyle bench --model tiny --device cpu --size 64x48 --seconds 2",
    "livestyle bench --model 1.3b --steps 1 --vae tiny --glass-seconds 60 --prompt-change-at 30",
    "livestyle bench --model 1.3b --steps 1 --vae tiny --write-profile configs/gpus/mygpu.yaml   # a new profile of your own",
    "livestyle bench --model 14b --steps 4 --vae tiny --fp8 --profile-chunks 6",
)


@dataclass
class BenchOptions:
    """Settings of one bench run (``model``: ``1.3b``, ``14b``, ``tiny`` or a registry name)."""

    model: str = "1.3b"
    steps: int = 2
    width: int = 832
    height: int = 480
    vae: str = "wan"
    seconds: float = 10.0
    device: str = "auto"
    compile: bool = False
    cuda_graphs: bool = True
    compile_codecs: bool = False  # as `livestyle run`: eager codecs, steady chunks from CUDA graphs
    fp8: bool = False
    dtype: str = "auto"
    warmup_chunks: int = 6
    glass_seconds: float = 10.0
    governor: bool = True
    gpus: int = 1
    prompt_change_at: float | None = None
    live_commands: tuple[tuple[float, Any], ...] = ()
    """``(seconds after warm-up, command)`` pairs submitted during the camera run (e.g. a LoRA
    switch); each gets the largest frame gap in the two seconds after it."""
    cudnn_benchmark: bool = False
    camera_fps: float = 30.0
    strength: float = 0.8
    fuse_qkv: bool = True
    channels_last: bool = True
    seed: int = 0
    family: dict[str, Any] = field(default_factory=dict)
    profile_chunks: int = 0
    """Profile this many steady-state chunks' GPU kernels (``livestyle.cli.bench_kernels``); 0: off."""
    fused: bool = True
    """The fused Triton kernels on CUDA (``livestyle.models.kernels``); off measures the unfused ops."""


def _resolve_model(name: str) -> tuple[str, dict[str, Any], str]:
    """``(dit size, family mapping, label)`` for a size or a registry name."""
    from livestyle.diffusion.random_models import MODEL_SIZES

    if name in MODEL_SIZES:
        return name, {"family": "sdv2"}, f"sdv2-{name}"
    from livestyle.models.weights import get_model

    spec = get_model(name)
    if spec.dit not in MODEL_SIZES:
        raise ConfigError(f"model {name!r} has DiT size {spec.dit!r}; bench builds {', '.join(MODEL_SIZES)}")
    return str(spec.dit), dict(spec.pipeline), spec.name


def _frames(width: int, height: int, start: int, n: int, fps: float) -> list[Any]:
    """``n`` synthetic moving frames (uint8 RGB) starting at index ``start``, stamped now."""
    import numpy as np

    from livestyle.engine.frames import Frame

    ys, xs = np.mgrid[0:height, 0:width]
    out = []
    now = time.monotonic()
    for i in range(start, start + n):
        img = np.empty((height, width, 3), np.uint8)
        img[..., 0] = (xs + 7 * i) % 256
        img[..., 1] = (ys + 3 * i) % 256
        img[..., 2] = (xs + ys + 11 * i) % 256
        out.append(Frame(img, i, Fraction(1, round(fps)), now, i))
    return out


def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    k = min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))
    return s[k]


def _feed(pipe: Any, opts: BenchOptions, state: dict[str, int]) -> list[Any]:
    """One ``process()`` call with as many synthetic frames as the pipeline asks for."""
    n = pipe.frames_needed()
    frames = state["pool"][state["i"] % len(state["pool"]) : state["i"] % len(state["pool"]) + n]  # type: ignore[index]
    if len(frames) < n:
        frames = _frames(opts.width, opts.height, state["i"], n, opts.camera_fps)
    state["i"] += n
    return pipe.process(frames)


def run_bench(opts: BenchOptions, *, log: Any = None, models: Any = None) -> dict[str, Any]:
    """Build the random stack, run the four measurements, return the result dict (JSON-able).

    ``models``: a random :class:`~livestyle.diffusion.stream_state.StreamModels` already built for
    ``opts`` (suites reuse one stack, and its compiled graphs, across configurations).
    """
    import torch

    from livestyle.models.attention import get_backend
    from livestyle.diffusion.family import family_from_mapping
    from livestyle.diffusion.random_models import (
        DECODERS,
        RandomStackOptions,
        random_stream_models,
    )
    from livestyle.diffusion.stream import StreamPipeline
    from livestyle.diffusion.stream_state import Controls
    from livestyle.diffusion.timing import StageTimer

    from livestyle.models.kernels import fused_enabled, set_fused

    say = log or (lambda *_: None)
    set_fused(None if opts.fused else False)
    if opts.vae not in DECODERS:
        raise ConfigError(f"--vae {opts.vae!r} is not one of {', '.join(DECODERS)}")
    for flag, value in (("--seconds", opts.seconds), ("--glass-seconds", opts.glass_seconds)):
        # NaN compares false with everything: "<= 0" let --seconds nan through, and the loop never ended
        if not math.isfinite(value) or value < 0 or (flag == "--seconds" and value == 0):
            raise ConfigError(f"{flag} must be a finite number of seconds{' above 0' if flag == '--seconds' else ', 0 or more'}, got {value}")
    if opts.prompt_change_at is not None and not (math.isfinite(opts.prompt_change_at) and opts.prompt_change_at >= 0):
        raise ConfigError(f"--prompt-change-at must be a finite number of seconds, 0 or more, got {opts.prompt_change_at}")
    dev_name = opts.device
    if dev_name == "auto":
        dev_name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(dev_name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda but no CUDA GPU is visible; use --device cpu --model tiny")
    dtype = {"auto": torch.bfloat16 if device.type == "cuda" else torch.float32,
             "bf16": torch.bfloat16, "fp32": torch.float32, "fp16": torch.float16}.get(opts.dtype)
    if dtype is None:
        raise ConfigError(f"--dtype {opts.dtype!r} is not one of auto, bf16, fp16, fp32")
    size, family_map, label = _resolve_model(opts.model)
    family_map = {**family_map, **opts.family}
    family = family_from_mapping(family_map, source=f"bench model {opts.model}")
    compile_dit = opts.compile and device.type == "cuda"
    if device.type == "cuda":
        # off by default, as in `livestyle run`: autotuning is per thread (a Runner's worker pays it
        # again) and was not faster for the codecs on the H200 (TAEHV 33 vs 35.5 ms)
        torch.backends.cudnn.benchmark = opts.cudnn_benchmark
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    t0 = time.perf_counter()
    stack = RandomStackOptions(fuse_qkv=opts.fuse_qkv, channels_last=opts.channels_last, compile_dit=compile_dit, seed=opts.seed,
                               compile_codecs=opts.compile_codecs, cuda_graphs=opts.cuda_graphs, fp8=opts.fp8)
    parallel = opts.gpus > 1
    pipe: Any
    if parallel:
        if models is not None:
            raise ConfigError("bench --gpus builds its stack in every stage process; it cannot reuse a built one")
        pipe = _parallel_stream(opts, size, family_map, device, dtype, stack)
    else:
        if models is None:
            models = random_stream_models(size, device, dtype, stack)
        controls = Controls(prompt="a watercolor painting", strength=opts.strength, steps=opts.steps, seed=opts.seed,
                            width=opts.width, height=opts.height, decoder=opts.vae)
        pipe = StreamPipeline(models, family, controls, device=device, dtype=dtype, name="bench")
    _sync(device)
    build_s = time.perf_counter() - t0
    say(f"built random {size} stack on {device} in {build_s:.1f} s")
    pool = _frames(opts.width, opts.height, 0, 64, opts.camera_fps)
    feed = {"i": 0, "pool": pool}  # type: ignore[dict-item]

    # no_grad, not inference_mode: the Runner calls the pipeline under no_grad, and compiled codecs
    # guard on the tensor kind (inference tensors would recompile them inside the glass-to-glass run)
    with torch.no_grad():
        # warm-up: compiles the first-chunk and stream-batch shapes, fills the autotuner caches
        t0 = time.perf_counter()
        for _ in range(max(opts.warmup_chunks, opts.steps + 2)):
            _feed(pipe, opts, feed)
        _sync(device)
        warm_s = time.perf_counter() - t0
        say(f"warm-up {warm_s:.1f} s")

        # 1. first output frames after a reset (warm process)
        firsts = []
        for _ in range(3):
            pipe.reset()
            feed["i"] = 0
            _sync(device)
            t0 = time.perf_counter()
            got: list[Any] = []
            while not got:
                got = _feed(pipe, opts, feed)
            firsts.append(time.perf_counter() - t0)
        first_s = statistics.median(firsts)

        # 2. steady-state throughput (after the reset above: refill the cache and let the DiT's
        # CUDA graph be captured before measuring)
        for _ in range(opts.steps + 12):
            _feed(pipe, opts, feed)
        _sync(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        if not parallel:
            pipe.timer = StageTimer(device)
        chunk_s: list[float] = []
        frames_out = 0
        t_start = time.perf_counter()
        while True:
            t0 = time.perf_counter()
            frames_out += len(_feed(pipe, opts, feed))
            chunk_s.append(time.perf_counter() - t0)
            if t0 + chunk_s[-1] - t_start >= opts.seconds and len(chunk_s) >= 10:
                break
        _sync(device)
        elapsed = time.perf_counter() - t_start
        stats = pipe.stats()
        stages = stats.get("stages_ms", {})
        peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else 0
        reserved = torch.cuda.max_memory_reserved(device) if device.type == "cuda" else 0

        kernels: dict[str, Any] = {}
        if opts.profile_chunks > 0 and device.type == "cuda" and not parallel:
            from livestyle.cli.bench_kernels import format_kernel_table, profile_chunks

            kernels = profile_chunks(lambda: _feed(pipe, opts, feed), opts.profile_chunks, lambda: _sync(device))
            say(format_kernel_table(kernels))

        stats = pipe.stats()  # after the profiled chunks too
        if stats.get("oom", 0) or stats.get("bypass", False):
            raise PipelineError(f"the stream ran out of GPU memory during the bench ({stats.get('last_error', '')}); "
                                "use fewer steps, a smaller --size or --vae tiny")

    # 3. what the viewer gets: the real Runner, warmed on its own worker thread, a paced camera
    glass: dict[str, Any] = {}
    if opts.glass_seconds > 0:
        commands = list(opts.live_commands)
        if opts.prompt_change_at is not None:
            from livestyle.engine.commands import SetPrompt

            commands.append((opts.prompt_change_at, SetPrompt(f"a free-text prompt typed live, {time.time():.0f}")))
        glass = _glass_to_glass(pipe, opts, opts.glass_seconds, commands=sorted(commands, key=lambda c: c[0]))

    fps = frames_out / elapsed
    result: dict[str, Any] = {
        "bench": "livestyle-stream",
        "model": label,
        "dit": size,
        "steps": opts.steps,
        "size": f"{opts.width}x{opts.height}",
        "vae": opts.vae,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "dtype": str(dtype).replace("torch.", ""),
        "attention": get_backend(),
        "compiled": compile_dit,
        "cuda_graphs": bool(getattr(getattr(getattr(models, "dit", None), "_graphs", None), "replays", 0)),
        "graph_captures": getattr(getattr(getattr(models, "dit", None), "_graphs", None), "captures", 0),
        "counters": {k: stats[k] for k in ("chunks", "frames_in", "frames_out", "resets", "nonfinite_resets", "oom") if k in stats},
        "gpus": opts.gpus,
        "stages": [str(span) for span in getattr(pipe, "spans", ())],
        "compile_codecs": opts.compile_codecs and device.type == "cuda",
        "fp8": opts.fp8,
        "fused_qkv": opts.fuse_qkv,
        "channels_last": opts.channels_last and device.type == "cuda",
        "kv_mode": family.kv_mode,
        "stream_batch": family.kv_mode == "stream_batch" and family.stream_batch,
        "kv_cache_frames": family.kv_cache_frames,
        "strength": opts.strength,
        "fps": round(fps, 2),
        "frames": frames_out,
        "seconds": round(elapsed, 2),
        "chunk_ms": {"p50": round(1000 * _pct(chunk_s, 50), 2), "p95": round(1000 * _pct(chunk_s, 95), 2),
                     "mean": round(1000 * statistics.fmean(chunk_s), 2)},
        "chunks": len(chunk_s),
        "first_frames_s": round(first_s, 4),
        "stages_ms": {k: round(v["p50"], 2) for k, v in stages.items()},
        "glass_to_glass_ms": glass,
        "peak_gib": round(peak / 2**30, 3),
        "peak_reserved_gib": round(reserved / 2**30, 3),
        "build_s": round(build_s, 1),
        "warmup_s": round(warm_s, 1),
        "fused_kernels": fused_enabled(torch.empty(0, device=device)),
        "kernels": kernels,
    }
    if parallel:
        pipe.close()
    del pipe
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return result


def _parallel_stream(opts: BenchOptions, size: str, family_map: dict[str, Any], device: Any, dtype: Any,
                     stack: Any) -> Any:
    """``--gpus N``: the random stack in N stage processes (``livestyle.parallel``), each building it
    on its own device from a :class:`~livestyle.diffusion.random_models.RandomStreamOpener`."""
    from livestyle.config import Config, apply_overrides
    from livestyle.diffusion.random_models import RandomStreamOpener
    from livestyle.models.dit import DIT_CONFIGS
    from livestyle.parallel.open import open_parallel

    config = apply_overrides(Config(), [f"model.gpus={opts.gpus}", f"model.device={device.type}"])
    opener = RandomStreamOpener(model=size, dtype=str(dtype).replace("torch.", ""), options=stack,
                                family=tuple(sorted(family_map.items())), prompt="a watercolor painting",
                                strength=opts.strength, steps=opts.steps, seed=opts.seed, width=opts.width,
                                height=opts.height, decoder=opts.vae)
    return open_parallel(config, f"random-{size}", opener=opener, layers=DIT_CONFIGS[size].num_layers)


def _glass_to_glass(pipe: Any, opts: BenchOptions, seconds: float, *,
                    commands: Sequence[tuple[float, Any]] = ()) -> dict[str, Any]:
    """A paced camera-rate pattern -> the real Runner -> a stamping null sink, for ``seconds``
    after the Runner's own warm-up (on its worker thread, as a live stream does).

    Returns what the viewer got (:func:`~livestyle.engine.metrics.viewer_summary`, measured from
    the end of warm-up): frames written and their rate, frames lost (input + sink drops),
    judder (gap p95/max), stalls, glass to glass p50/p95/p99; and the delivery offset D.
    ``commands``: ``(seconds in, command)`` pairs, in time order, submitted during the run; each
    is reported with the largest frame gap in the two seconds after it (``live_commands``, and
    ``prompt_change`` for a ``SetPrompt``).
    """
    from livestyle.ingest.pattern import PatternSource
    from livestyle.output.null import NullSink
    from livestyle.engine.commands import SetPrompt
    from livestyle.engine.metrics import viewer_summary
    from livestyle.engine.runner import Runner

    from livestyle.cli.run import governor_for
    from livestyle.config import Config, apply_overrides

    pipe.reset()
    source = PatternSource((opts.width, opts.height), opts.camera_fps, pace=True)
    sink = NullSink(stamp=True)
    # the governor `livestyle run` would use (the default config at the camera's rate), unless
    # --no-governor pins the settings as `run --no-governor` does
    config = apply_overrides(Config(), [f"stream.fps={opts.camera_fps:g}"])
    governor = governor_for(config) if opts.governor else None
    runner = Runner(source, pipe, [sink], size=(opts.width, opts.height), fps=opts.camera_fps, governor=governor)
    warm_end: list[float] = []
    submitted: list[tuple[float, float, Any]] = []  # (seconds in, monotonic time, command)

    def watch() -> None:
        # wait for warm-up to end, then measure `seconds` of live stream
        while runner.stats()["warming"] or runner.stats()["warmup_s"] is None:
            if stop.wait(0.01):
                return
        start = time.monotonic()
        warm_end.append(start)
        for at, command in commands:
            if at >= seconds or stop.wait(max(0.0, start + at - time.monotonic())):
                break
            submitted.append((at, time.monotonic(), command))
            runner.submit(command)
        stop.wait(max(0.0, start + seconds - time.monotonic()))
        runner.stop()

    stop = threading.Event()
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        report = runner.run()
    finally:
        stop.set()
        watcher.join(5)
    since = warm_end[0] if warm_end else None
    view = viewer_summary(sink.stamps, opts.camera_fps, since=since)
    drops = report.drops
    out: dict[str, Any] = {
        **view["g2g_ms"],
        "frames_written": view["written"],
        "fps_written": view["fps_written"],
        "seconds": view["seconds"],
        "frames_lost": report.stats["frames_lost"],
        "input_drops": drops.get("input", 0),
        "sink_drops": drops.get("sink:null", 0),
        "warmup_drops": drops.get("warmup", 0),
        "gap_ms": view["gap_ms"],
        "stalls": view["stalls"],
        "warmup_s": report.stats["warmup_s"],
        "delivery_offset_ms": report.stats["delivery"]["offset_ms"],
        "late_frames": report.stats["delivery"]["late_frames"],
        "delivery": {k: v for k, v in report.stats["delivery"].items() if k in ("delay_ms", "offset_spread_ms")},
        "camera_fps": opts.camera_fps,
        "generate_ms": report.stats["stage_ms"].get("generate", {}),
        "governor": report.stats.get("governor", {"enabled": False}),
    }
    rows = []
    for at, t, command in submitted:
        writes = [w for _, w in sink.stamps if t - 0.5 <= w <= t + 2.0]
        gaps = [b - a for a, b in itertools.pairwise(writes)]
        row = {"at_s": at, "command": type(command).__name__, "max_gap_ms": round(1000 * max(gaps, default=0.0), 1)}
        if isinstance(command, SetPrompt):
            row["applied"] = report.stats["generator"].get("prompt", "") == command.text
            out["prompt_change"] = row
        rows.append(row)
    if rows:
        out["live_commands"] = rows
    return out


def write_profile(path: Path, result: dict[str, Any]) -> None:
    """Merge one bench result into a GPU profile YAML (the schema ``planning/budget.py`` reads).

    The denoise stage goes to ``stages.dit[<size>][<steps>]`` (SDV2 stream batch: one call over
    ``steps`` slots; without stream batch, ``steps`` calls at batch 1: ``denoise / steps`` goes to
    ``[1]``), the encode/decode stages to ``vae_*`` or ``tiny_*`` by ``--vae``; other
    entries of an existing file are kept.
    """
    import yaml

    data: dict[str, Any] = {}
    if path.exists():
        data = yaml.safe_load(path.read_text()) or {}
    stages = data.setdefault("stages", {})
    st = result["stages_ms"]
    sequential_sdv2 = result["kv_mode"] == "stream_batch" and not result.get("stream_batch", True)
    n = result["steps"] if result["kv_mode"] == "stream_batch" and not sequential_sdv2 else 1
    if "denoise" in st:
        per_call = round(st["denoise"] / result["steps"], 2) if sequential_sdv2 else st["denoise"]
        stages.setdefault("dit", {}).setdefault(result["dit"], {})[n] = per_call
    enc, dec = {"wan": ("vae_encode", "vae_decode"), "tiny-decoder": ("vae_encode", "tiny_decode"),
                "tiny": ("tiny_encode", "tiny_decode")}[result["vae"]]
    if "encode" in st:
        stages[enc] = st["encode"]
    if "decode" in st:
        stages[dec] = st["decode"]
    data["measured"] = True
    data["source"] = f"livestyle bench on {result['device']}, torch {result['torch']}, {result['dtype']}, compiled={result['compiled']}"
    data.setdefault("name", path.stem)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def bench(
    model: str = typer.Option("1.3b", "--model", help="DiT size (1.3b, 14b, tiny) or a registry name (sdv2-1.3b ...)."),
    steps: int = typer.Option(2, "--steps", help="Denoising steps (stream-batch slots)."),
    stream_batch: bool = typer.Option(True, "--stream-batch/--no-stream-batch", help="SDV2: batch the steps across chunks (throughput, output steps-1 chunks late) or run them in turn per chunk (latency)."),
    size: str = typer.Option("832x480", "--size", help="Working size WxH (multiples of 16)."),
    vae: str = typer.Option("wan", "--vae", help="wan | tiny-decoder | tiny."),
    seconds: float = typer.Option(10.0, "--seconds", help="Steady-state seconds measured."),
    device: str = typer.Option("auto", "--device", help="cuda, cuda:N, cpu (auto: cuda if present)."),
    compile: bool = typer.Option(False, "--compile/--no-compile", help="torch.compile the DiT (CUDA only; off: CUDA graphs are faster)."),
    cuda_graphs: bool = typer.Option(True, "--cuda-graphs/--no-cuda-graphs", help="Replay the DiT's steady-state step from CUDA graphs (CUDA only)."),
    compile_codecs: bool = typer.Option(False, "--compile-codecs/--no-compile-codecs", help="torch.compile the VAE/TAEHV chunk steps (CUDA only; ~35 s of compile per codec in the warm-up). Off by default, as in `run`, which never compiles them (the tiny codec's steady chunks replay from CUDA graphs either way)."),
    fp8: bool = typer.Option(False, "--fp8", help="e4m3 linears in the DiT blocks (torch._scaled_mm, per-token x per-channel scales; Hopper)."),
    fused: bool = typer.Option(True, "--fused/--no-fused", help="The fused Triton kernels for the blocks' norms, modulation, RoPE and fp8 casts (CUDA; --no-fused: the plain PyTorch ops)."),
    profile_chunks: int = typer.Option(0, "--profile-chunks", help="Profile this many steady-state chunks and print GPU kernel time by category (gemm, attention, elementwise, conv)."),
    dtype: str = typer.Option("auto", "--dtype", help="auto (bf16 on CUDA, fp32 on CPU), bf16, fp16, fp32."),
    glass_seconds: float = typer.Option(10.0, "--glass-seconds", help="Seconds of paced 30 fps camera through the real Runner, measured at the sink after warm-up (60: the one-minute real-time test; 0: skip)."),
    gpus: int = typer.Option(1, "--gpus", min=1, max=64, help="Pipeline stages, one process per GPU (the DiT's blocks split over them; with --device cpu, CPU processes)."),
    governor: bool = typer.Option(True, "--governor/--no-governor", help="The camera run steps quality down when the generator falls behind the camera, as `run` does (--no-governor: settings pinned, frames lost instead)."),
    prompt_change_at: float | None = typer.Option(None, "--prompt-change-at", help="Seconds into the camera run to type a new free-text prompt; reports the largest frame gap after it."),
    cudnn_benchmark: bool = typer.Option(False, "--cudnn-benchmark/--no-cudnn-benchmark", help="cuDNN autotuning (off, as in `run`)."),
    warmup: int = typer.Option(6, "--warmup", help="Warm-up chunks before measuring."),
    write_profile_to: Path | None = typer.Option(None, "--write-profile", help="Merge the measured stage times into this GPU profile YAML."),
) -> None:
    """Benchmark the streaming pipeline with random weights at real shapes (sink: null)."""
    from livestyle.config import parse_size

    width, height = parse_size(size, key="--size")
    opts = BenchOptions(model=model, steps=steps, width=width, height=height, vae=vae, seconds=seconds,
                        device=device, compile=compile, cuda_graphs=cuda_graphs, compile_codecs=compile_codecs, fp8=fp8, dtype=dtype, glass_seconds=glass_seconds, warmup_chunks=warmup,
                        prompt_change_at=prompt_change_at, cudnn_benchmark=cudnn_benchmark, governor=governor, gpus=gpus,
                        fused=fused, profile_chunks=max(0, profile_chunks),
                        family={} if stream_batch else {"stream_batch": False})
    result = run_bench(opts, log=lambda msg: typer.echo(msg, err=True))
    st = result["stages_ms"]
    typer.echo(f"{result['model']} steps={result['steps']} stream_batch={result['stream_batch']} {result['size']} vae={result['vae']} on {result['device']} "
               f"(torch {result['torch']}, {result['dtype']}, attention {result['attention']}, compiled={result['compiled']})")
    typer.echo("stage medians ms: " + ", ".join(f"{k} {v:.2f}" for k, v in st.items()))
    typer.echo(f"fps {result['fps']:.2f}   chunk ms p50 {result['chunk_ms']['p50']:.1f} p95 {result['chunk_ms']['p95']:.1f}   "
               f"first frames {result['first_frames_s']:.3f} s   peak {result['peak_gib']:.2f} GiB")
    g = result["glass_to_glass_ms"]
    if g:
        typer.echo(f"viewer ({g['camera_fps']:g} fps camera, {g['seconds']:.0f} s after warm-up): written {g['fps_written']:.2f} fps, "
                   f"lost {g['frames_lost']}, gap p95/max {g['gap_ms']['p95']:.0f}/{g['gap_ms']['max']:.0f} ms, stalls {g['stalls']}, "
                   f"glass-to-glass p50/p95/p99 {g['p50']:.0f}/{g['p95']:.0f}/{g['p99']:.0f} ms")
        gov = g.get("governor", {})
        if not gov.get("enabled"):
            typer.echo("governor: off (settings pinned)")
        else:
            moves = gov.get("decisions", [])
            typer.echo(f"governor: on, as in `livestyle run`; settled on {gov.get('level') or 'the start settings'}"
                       + (f" after {len(moves)} change{'s' if len(moves) != 1 else ''}" if moves else ""))
        if "prompt_change" in g:
            pc = g["prompt_change"]
            typer.echo(f"free-text prompt change at {pc['at_s']:g} s: largest gap {pc['max_gap_ms']:.0f} ms, applied {pc['applied']}")
    if write_profile_to is not None:
        write_profile(write_profile_to, result)
        typer.echo(f"profile updated: {write_profile_to}")
    typer.echo(json.dumps(result))


def register(app: typer.Typer) -> None:
    app.command("bench", help=(bench.__doc__ or "") + "\n\n" + EXAMPLES)(bench)

