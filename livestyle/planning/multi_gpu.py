"""The planner for ``--gpus N``: one-GPU predictions (:mod:`livestyle.planning.budget`) split over stages.

For every candidate setting, :func:`predict_gpus` takes the one-GPU stage times of the profile
(encoder, decoder, one transformer pass per micro-step divided evenly over the blocks: the Wan
blocks all have one shape), adds a transfer per hop (the tokens of one micro-step, ``[F*T, dim]``
in bf16, over ``link_gbs``; 100 GB/s is NVLink-class peer-to-peer, ~25 for PCIe 4), and lets
:func:`~livestyle.planning.stage_split.predict_stages` pick the split and the pace (slowest stage,
or the ring when a step waits for the one before it). Glass-to-glass p95 grows by one chunk
period per extra stage. :func:`plan_gpus` returns the best-quality candidate that meets the target,
as :func:`~livestyle.planning.budget.plan` does for one GPU. Every stage holds the whole model
today (``livestyle.parallel`` opens it in each process), so memory per GPU is the one-GPU figure.
Not modelled yet (the measurement issue's): stage-to-stage transfer measured on real links.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from livestyle.errors import ConfigError, PipelineError
from livestyle.planning.budget import (
    MODEL_SHAPES,
    REFERENCE_TOKENS,
    GpuProfile,
    Prediction,
    Target,
    _quality,
    candidates,
    predict,
)
from livestyle.planning.stage_split import StagePlan, predict_stages

__all__ = ["DIT_SHAPES", "LINK_GBS", "NOT_SPLIT", "GpuPlan", "plan_gpus", "predict_gpus"]

DIT_SHAPES: dict[str, tuple[int, int]] = {"1.3b": (30, 1536), "14b": (40, 5120)}
"""Transformer size -> (blocks, width) (``models.dit.DIT_CONFIGS``)."""
LINK_GBS = 100.0
"""Default GPU-to-GPU bandwidth in GB/s (NVLink-class peer-to-peer; an estimate until measured)."""
NOT_SPLIT = ("krea-14b", "longlive-1.3b")
"""Models whose families the stages do not run (Krea's recompute, LongLive's re-cache)."""


@dataclass(frozen=True)
class GpuPlan:
    """A candidate on ``gpus`` GPUs: its prediction (fps, latency, memory per GPU) and its split."""

    prediction: Prediction
    stages: StagePlan
    gpus: int


def predict_gpus(profile: GpuProfile, candidate, gpus: int, *, input_fps: float = 30.0,  # type: ignore[no-untyped-def]
                 link_gbs: float = LINK_GBS) -> GpuPlan:
    """``candidate`` (a ``budget.Candidate``) on ``gpus`` GPUs of ``profile``'s kind."""
    base = predict(profile, candidate, input_fps=input_fps)
    shape = MODEL_SHAPES[candidate.model]
    blocks, width = DIT_SHAPES[shape.dit]
    w, h = candidate.size
    tokens = (w // 16) * (h // 16)
    latents = shape.latent_frames_per_chunk
    pass_ms = profile.dit_ms(shape.dit, latents) * tokens / REFERENCE_TOKENS  # one micro-step, batch 1
    stream_batch = shape.kv_mode == "stream_batch" and candidate.stream_batch
    passes = candidate.steps + (1 if shape.kv_mode == "rerun" else 0)
    stages = predict_stages(
        num_blocks=blocks, block_ms=pass_ms / blocks, encode_ms=base.stages_ms["encode"],
        decode_ms=base.stages_ms["decode"], steps=passes, stream_batch=stream_batch,
        chunk_frames=base.chunk_frames, stages=gpus, activation_bytes=latents * tokens * width * 2, link_gbs=link_gbs,
    )
    extra = (gpus - 1) * stages.chunk_ms
    stage_ms = {f"stage {r}": ms for r, ms in enumerate(stages.stage_ms)}
    pred = replace(base, stages_ms={**base.stages_ms, **stage_ms, "transfer/hop": stages.transfer_ms},
                   chunk_ms=stages.chunk_ms, fps=stages.fps, latency_ms=base.latency_ms + extra,
                   latency_p95_ms=base.latency_p95_ms + extra)
    return GpuPlan(pred, stages, gpus)


def plan_gpus(profile: GpuProfile, target: Target, gpus: int, *, link_gbs: float = LINK_GBS) -> GpuPlan:
    """The best-quality candidate meeting ``target`` on ``gpus`` GPUs (``budget.plan``'s order and
    errors); PipelineError names the constraint no candidate meets."""
    if gpus < 2:
        raise ConfigError(f"plan_gpus is for 2 or more GPUs, got {gpus}; use budget.plan for one")
    models = tuple(m for m in target.models if m not in NOT_SPLIT)
    if not models:
        raise PipelineError(f"none of {', '.join(target.models)} runs on several GPUs yet (not {', '.join(NOT_SPLIT)})")
    plans = [predict_gpus(profile, c, gpus, input_fps=target.input_fps, link_gbs=link_gbs)
             for c in candidates(replace(target, models=models))]
    fits = [p for p in plans if p.prediction.memory_gib <= profile.memory_gib * 0.95]
    if not fits:
        raise PipelineError(f"no setting fits in {profile.memory_gib:g} GiB per GPU on {profile.title}")
    fast = [p for p in fits if p.prediction.fps >= target.fps]
    if not fast:
        best = max(fits, key=lambda p: p.prediction.fps)
        raise PipelineError(f"{target.fps:g} fps cannot be met on {gpus} x {profile.title}: the fastest setting "
                            f"({best.prediction.candidate.model}, {best.prediction.candidate.steps} steps) "
                            f"reaches {best.prediction.fps:.1f} fps")
    ok = [p for p in fast if p.prediction.latency_p95_ms <= target.latency_ms]
    if not ok:
        best = min(fast, key=lambda p: p.prediction.latency_p95_ms)
        raise PipelineError(f"{target.latency_ms:g} ms latency cannot be met at {target.fps:g} fps on {gpus} x "
                            f"{profile.title}: the lowest p95 is {best.prediction.latency_p95_ms:.0f} ms")
    return max(ok, key=lambda p: _quality(p.prediction))
