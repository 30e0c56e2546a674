"""Latency budgets: GPU throughput profiles and the planner that picks settings to meet a target.

A profile (``configs/gpus/<name>.yaml``) gives milliseconds per call for each pipeline stage at the
reference size (480x832, 1560 tokens per latent frame): the transformer over ``n`` latent-frame
equivalents (stream-batch slots x frames per slot), the Wan VAE and the tiny autoencoder. Derived
profiles (``derived_from``) scale a measured one by the datasheet bf16 ratio, or by the ratio an
``anchor`` figure implies where that is smaller.

The planner is a pure function: given a profile and a target (output fps, glass-to-glass latency,
input fps) it enumerates model, size, steps, decoder and stream batch, predicts each candidate's
throughput, latency and memory, and returns the best-quality candidate that meets the target, or
raises :class:`~livestyle.errors.PipelineError` naming the constraint that cannot be met.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from livestyle.errors import ConfigError, PipelineError

__all__ = [
    "MODEL_SHAPES",
    "REFERENCE_SIZE",
    "Candidate",
    "GpuProfile",
    "ModelShape",
    "Prediction",
    "Target",
    "candidates",
    "glass_to_glass_ms",
    "list_profiles",
    "load_profile",
    "plan",
    "predict",
    "profile_dir",
]

REFERENCE_SIZE: tuple[int, int] = (832, 480)
"""(width, height) at which profile stage times are given."""

REFERENCE_TOKENS = (REFERENCE_SIZE[0] // 16) * (REFERENCE_SIZE[1] // 16)

SINK_MS = 5.0
"""Sink encode and local transport per frame, added to every latency prediction."""

HIGH_OVER_MEDIAN = 1.1
"""A chunk's high-percentile wall time over the profile's stage medians (the delivery offset covers
the p90 chunk delay; host work between the stages adds to the medians: 47 vs 43 ms per chunk for
the 1.3B at 1 step on an H200, benchmarks/results/h200_delivery_run12.json)."""

DELIVERY_MARGIN_FRAMES = 0.5
"""The delivery scheduler's margin over the p90 chunk delay, in frame periods (engine/delivery.py)."""

CHUNK_P95_OVER_MEDIAN = 1.25
"""A live chunk's p95 wall time over the profile's stage medians, where a profile does not give
its own (``spread.chunk_p95_over_median``). The 1.3B at 1 step on an H200, inside a live stream:
stage medians 43 ms, chunk p50 47.8 / p95 50.9 / p99 66.4 ms (benchmarks/results/h200_delivery_run12.json)."""

KvMode = Literal["stream_batch", "rerun", "recompute"]
Decoder = Literal["wan", "tiny-decoder", "tiny"]


def profile_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "configs" / "gpus"


@dataclass(frozen=True)
class GpuProfile:
    """Per-stage milliseconds per call at the reference size, plus datasheet rates and memory.

    ``dit[size][n]``: one transformer call over ``n`` latent-frame equivalents; other ``n`` are
    interpolated linearly (extrapolated from the last two points).
    """

    name: str
    title: str
    memory_gib: float
    bf16_tflops: float
    bandwidth_tbs: float
    dit: Mapping[str, Mapping[int, float]]
    vae_encode: float
    vae_decode: float
    tiny_encode: float
    tiny_decode: float
    memory_gib_model: Mapping[str, float]
    memory_gib_per_slot: Mapping[str, float]
    measured: bool
    source: str
    notes: tuple[str, ...] = ()
    chunk_p95_over_median: float = CHUNK_P95_OVER_MEDIAN

    def dit_ms(self, size: str, n: float) -> float:
        """Milliseconds for one transformer call over ``n`` latent-frame equivalents at the reference size."""
        if size not in self.dit:
            raise PipelineError(f"profile {self.name} has no transformer timings for {size} (has {', '.join(self.dit)})")
        points = sorted(self.dit[size].items())
        xs = [float(x) for x, _ in points]
        ys = [float(y) for _, y in points]
        if len(xs) == 1:
            return ys[0] * n / xs[0]
        i = bisect.bisect_left(xs, n)
        if i < len(xs) and xs[i] == n:
            return ys[i]
        lo = min(max(i - 1, 0), len(xs) - 2)
        x0, x1, y0, y1 = xs[lo], xs[lo + 1], ys[lo], ys[lo + 1]
        return max(y0 + (y1 - y0) * (n - x0) / (x1 - x0), 0.0)

    def scaled(self, factor: float, *, name: str, title: str, memory_gib: float, bf16_tflops: float,
               bandwidth_tbs: float, source: str, notes: Sequence[str]) -> GpuProfile:
        """This profile on a GPU ``factor`` times faster."""
        return replace(
            self,
            name=name,
            title=title,
            memory_gib=memory_gib,
            bf16_tflops=bf16_tflops,
            bandwidth_tbs=bandwidth_tbs,
            dit={size: {n: ms / factor for n, ms in table.items()} for size, table in self.dit.items()},
            vae_encode=self.vae_encode / factor,
            vae_decode=self.vae_decode / factor,
            tiny_encode=self.tiny_encode / factor,
            tiny_decode=self.tiny_decode / factor,
            measured=False,
            source=source,
            notes=tuple(notes),
        )


@dataclass(frozen=True)
class ModelShape:
    """What the planner needs to know of a model: transformer size, KV semantics, chunking."""

    name: str
    dit: str
    kv_mode: KvMode
    latent_frames_per_chunk: int
    max_steps: int


MODEL_SHAPES: dict[str, ModelShape] = {
    "sdv2-1.3b": ModelShape("sdv2-1.3b", "1.3b", "stream_batch", 1, 4),
    "sdv2-14b": ModelShape("sdv2-14b", "14b", "stream_batch", 1, 4),
    "self-forcing-1.3b": ModelShape("self-forcing-1.3b", "1.3b", "rerun", 3, 4),
    "longlive-1.3b": ModelShape("longlive-1.3b", "1.3b", "rerun", 3, 4),
    "krea-14b": ModelShape("krea-14b", "14b", "recompute", 3, 5),
}
"""Planner view of the registry's models (configs/models/*.yaml ``dit`` and ``pipeline.kv_mode``)."""

SIZES: tuple[tuple[int, int], ...] = ((832, 480), (736, 416), (640, 368), (576, 320), (448, 256))
"""Candidate output sizes (width, height), all multiples of 16, largest first."""

DECODERS: tuple[Decoder, ...] = ("wan", "tiny-decoder", "tiny")
"""Full Wan VAE; Wan encoder + tiny decoder; tiny encoder and decoder (best quality first)."""


@dataclass(frozen=True)
class Candidate:
    """One setting the planner can choose."""

    model: str
    size: tuple[int, int]
    steps: int
    decoder: Decoder
    stream_batch: bool

    @property
    def size_text(self) -> str:
        return f"{self.size[0]}x{self.size[1]}"


@dataclass(frozen=True)
class Prediction:
    """A candidate's predicted behaviour on a profile."""

    candidate: Candidate
    chunk_frames: int
    stages_ms: dict[str, float]
    chunk_ms: float
    fps: float
    latency_ms: float
    memory_gib: float
    latency_p95_ms: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        c = self.candidate
        return {
            "model": c.model,
            "size": c.size_text,
            "steps": c.steps,
            "decoder": c.decoder,
            "stream_batch": c.stream_batch,
            "chunk_frames": self.chunk_frames,
            "stages_ms": {k: round(v, 2) for k, v in self.stages_ms.items()},
            "chunk_ms": round(self.chunk_ms, 2),
            "fps": round(self.fps, 2),
            "latency_ms": round(self.latency_ms, 1),
            "latency_p95_ms": round(self.latency_p95_ms, 1),
            "memory_gib": round(self.memory_gib, 2),
        }


@dataclass(frozen=True)
class Target:
    """What the streamer asks for."""

    fps: float
    latency_ms: float
    input_fps: float = 30.0
    models: tuple[str, ...] = field(default_factory=lambda: tuple(MODEL_SHAPES))
    max_steps: int | None = None
    min_steps: int = 1


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read GPU profile {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"GPU profile {path} is not a mapping")
    return data


def list_profiles(directory: Path | None = None) -> list[str]:
    """Names of the shipped GPU profiles."""
    return sorted(p.stem for p in (directory or profile_dir()).glob("*.yaml"))


def _measured_profile(data: Mapping[str, Any], path: Path) -> GpuProfile:
    try:
        stages = data["stages"]
        sheet = data.get("datasheet", {})
        return GpuProfile(
            name=str(data["name"]),
            title=str(data.get("title", data["name"])),
            memory_gib=float(data["memory_gib"]),
            bf16_tflops=float(sheet.get("bf16_tflops", 0.0)),
            bandwidth_tbs=float(sheet.get("bandwidth_tbs", 0.0)),
            dit={str(k): {int(n): float(ms) for n, ms in v.items()} for k, v in stages["dit"].items()},
            vae_encode=float(stages["vae_encode"]),
            vae_decode=float(stages["vae_decode"]),
            tiny_encode=float(stages["tiny_encode"]),
            tiny_decode=float(stages["tiny_decode"]),
            memory_gib_model={str(k): float(v) for k, v in data["memory_gib_model"].items()},
            memory_gib_per_slot={str(k): float(v) for k, v in data["memory_gib_per_slot"].items()},
            measured=bool(data.get("measured", True)),
            source=str(data.get("source", path.name)),
            chunk_p95_over_median=float(data.get("spread", {}).get("chunk_p95_over_median", CHUNK_P95_OVER_MEDIAN)),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ConfigError(f"GPU profile {path} is missing or has a bad field ({exc!r}); see configs/gpus/h100.yaml") from None


def load_profile(name: str, directory: Path | None = None) -> GpuProfile:
    """Load ``configs/gpus/<name>.yaml``, deriving it from its reference profile where it says so."""
    directory = directory or profile_dir()
    path = directory / f"{name.lower()}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown GPU profile {name!r}; known: {', '.join(list_profiles(directory))}")
    data = _read_yaml(path)
    base_name = data.get("derived_from")
    if base_name is None:
        return _measured_profile(data, path)
    base = load_profile(str(base_name), directory)
    sheet = data.get("datasheet", {})
    try:
        bf16 = float(sheet["bf16_tflops"])
        bandwidth = float(sheet.get("bandwidth_tbs", base.bandwidth_tbs))
        memory = float(data["memory_gib"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"GPU profile {path} needs datasheet.bf16_tflops and memory_gib ({exc!r})") from None
    sheet_ratio = bf16 / base.bf16_tflops
    factor = sheet_ratio
    notes = [f"datasheet bf16 ratio to {base.name}: {sheet_ratio:.3f}"]
    if base.bandwidth_tbs > 0 and bandwidth / base.bandwidth_tbs < factor:
        factor = bandwidth / base.bandwidth_tbs  # a memory-bound card: the conservative of the two
        notes.append(f"memory bandwidth ratio to {base.name}: {factor:.3f} (smaller, used)")
    anchor = data.get("anchor")
    if anchor is not None:
        cand = Candidate(
            model=str(anchor["model"]),
            size=_parse_size(str(anchor.get("size", "832x480"))),
            steps=int(anchor["steps"]),
            decoder=anchor.get("decoder", "wan"),
            stream_batch=False,
        )
        base_fps = predict(base, cand).fps
        anchor_ratio = float(anchor["fps"]) / base_fps
        notes.append(
            f"anchor {cand.model} {cand.steps} steps at {anchor['fps']} fps vs {base_fps:.2f} predicted on "
            f"{base.name}: ratio {anchor_ratio:.3f}"
        )
        factor = min(sheet_ratio, anchor_ratio)
    notes.append(f"stage times = {base.name} / {factor:.3f}")
    return base.scaled(
        factor,
        name=str(data["name"]),
        title=str(data.get("title", data["name"])),
        memory_gib=memory,
        bf16_tflops=bf16,
        bandwidth_tbs=bandwidth,
        source=str(data.get("source", f"derived from {base.name}")),
        notes=notes,
    )


def _parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"size {text!r} is not WIDTHxHEIGHT, e.g. 832x480") from None
    return w, h


def predict(profile: GpuProfile, candidate: Candidate, *, input_fps: float = 30.0) -> Prediction:
    """Predict per-stage milliseconds per chunk, fps, glass-to-glass latency and memory."""
    shape = MODEL_SHAPES.get(candidate.model)
    if shape is None:
        raise PipelineError(f"the planner does not know model {candidate.model!r}; known: {', '.join(MODEL_SHAPES)}")
    w, h = candidate.size
    token_scale = ((w // 16) * (h // 16)) / REFERENCE_TOKENS
    latents = shape.latent_frames_per_chunk
    chunk_frames = 4 * latents
    encoder_ms = profile.tiny_encode if candidate.decoder == "tiny" else profile.vae_encode
    decoder_ms = profile.vae_decode if candidate.decoder == "wan" else profile.tiny_decode
    stages = {"encode": encoder_ms * latents * token_scale, "decode": decoder_ms * latents * token_scale}
    steps = candidate.steps
    if shape.kv_mode == "stream_batch" and candidate.stream_batch:
        stages["dit"] = profile.dit_ms(shape.dit, steps * latents) * token_scale
        in_flight = steps
        slots = steps
    else:
        passes = steps + (1 if shape.kv_mode in ("rerun", "recompute") else 0)
        stages["dit"] = passes * profile.dit_ms(shape.dit, latents) * token_scale
        in_flight = 1
        slots = 1
    chunk_ms = sum(stages.values())
    fps = 1000.0 * chunk_frames / chunk_ms
    p50, p95 = glass_to_glass_ms(chunk_ms * HIGH_OVER_MEDIAN, chunk_ms * profile.chunk_p95_over_median,
                                 chunk_frames=chunk_frames, input_fps=input_fps, in_flight=in_flight, chunk_ms=chunk_ms)
    memory = profile.memory_gib_model[shape.dit] + profile.memory_gib_per_slot[shape.dit] * (slots - 1)
    memory *= max(token_scale, 0.35) ** 0.5 if token_scale < 1 else 1.0
    return Prediction(candidate, chunk_frames, stages, chunk_ms, fps, p50, memory, p95)


def glass_to_glass_ms(chunk_high_ms: float, chunk_p95_ms: float, *, chunk_frames: int, input_fps: float,
                      in_flight: int = 1, chunk_ms: float | None = None) -> tuple[float, float]:
    """Predicted glass-to-glass ``(p50, p95)`` in ms of a chunked stream (engine/delivery.py).

    Every frame is shown at capture + D: D covers the p90 chunk delay of a chunk's first frame (the
    rest of the chunk's gather, the wait for the GPU when it is slower than the camera, the chunk's
    own pass ``chunk_high_ms`` and, in a stream batch, the ``in_flight - 1`` earlier iterations,
    each a chunk period or a chunk time), plus the scheduler's margin and the sink: most frames
    are shown exactly at D, so D is the p50. A frame whose chunk took longer than D allows is shown
    as soon as it is ready, so the p95 is the same sum with the chunk's p95 pass ``chunk_p95_ms``
    (from the measured spread, not the median), or D where that is larger. ``chunk_ms``: the
    median pass (the GPU's pace; default ``chunk_high_ms``)."""
    median = chunk_high_ms if chunk_ms is None else chunk_ms
    period_ms = 1000.0 / input_fps
    accumulate_ms = period_ms * chunk_frames
    gather_ms = period_ms * (chunk_frames - 1)
    wait_ms = max(0.0, median - accumulate_ms)
    lag_ms = (in_flight - 1) * max(accumulate_ms, median)
    base = gather_ms + wait_ms + lag_ms + SINK_MS
    p50 = base + chunk_high_ms + DELIVERY_MARGIN_FRAMES * period_ms
    return p50, max(p50, base + chunk_p95_ms)


def candidates(target: Target) -> Iterable[Candidate]:
    """Every setting worth considering, in no particular order."""
    for model in target.models:
        shape = MODEL_SHAPES.get(model)
        if shape is None:
            raise PipelineError(f"the planner does not know model {model!r}; known: {', '.join(MODEL_SHAPES)}")
        top = min(shape.max_steps, target.max_steps or shape.max_steps)
        for steps in range(target.min_steps, top + 1):
            for size in SIZES:
                for decoder in DECODERS:
                    batches = (True, False) if shape.kv_mode == "stream_batch" and steps > 1 else (False,)
                    for stream_batch in batches:
                        yield Candidate(model, size, steps, decoder, stream_batch)


def _quality(p: Prediction) -> tuple:
    c = p.candidate
    shape = MODEL_SHAPES[c.model]
    model_rank = 1 if shape.dit == "14b" else 0
    return (model_rank, c.size[0] * c.size[1], c.steps, -DECODERS.index(c.decoder), -p.latency_p95_ms)


def plan(profile: GpuProfile, target: Target) -> Prediction:
    """The best-quality candidate meeting ``target`` on ``profile``.

    Quality order: larger model, larger size, more steps, fuller decoder, then lower latency.
    The latency target is met at the p95 (``Prediction.latency_p95_ms``).
    Raises PipelineError naming the constraint (fps, latency or memory) that no candidate meets.
    """
    if target.fps <= 0 or target.latency_ms <= 0:
        raise PipelineError("the target fps and latency must be positive")
    preds = [predict(profile, c, input_fps=target.input_fps) for c in candidates(target)]
    if not preds:
        raise PipelineError("no candidate settings: check --model and --max-steps")
    fits_memory = [p for p in preds if p.memory_gib <= profile.memory_gib * 0.95]
    if not fits_memory:
        least = min(preds, key=lambda p: p.memory_gib)
        raise PipelineError(
            f"no setting fits in {profile.memory_gib:g} GiB on {profile.title}; the smallest needs {least.memory_gib:.1f} GiB"
        )
    fast = [p for p in fits_memory if p.fps >= target.fps]
    if not fast:
        best = max(fits_memory, key=lambda p: p.fps)
        raise PipelineError(
            f"{target.fps:g} fps cannot be met on {profile.title}: the fastest setting "
            f"({_describe(best)}) reaches {best.fps:.1f} fps"
        )
    ok = [p for p in fast if p.latency_p95_ms <= target.latency_ms]  # the budget holds for 95% of frames
    if not ok:
        best = min(fast, key=lambda p: p.latency_p95_ms)
        raise PipelineError(
            f"{target.latency_ms:g} ms latency cannot be met at {target.fps:g} fps on {profile.title}: the lowest "
            f"p95 is {best.latency_p95_ms:.0f} ms ({_describe(best)})"
        )
    return max(ok, key=_quality)


def _describe(p: Prediction) -> str:
    c = p.candidate
    batch = ", stream batch" if c.stream_batch else ""
    return f"{c.model} {c.size_text} {c.steps} step{'s' if c.steps > 1 else ''}, {c.decoder} decoder{batch}"
