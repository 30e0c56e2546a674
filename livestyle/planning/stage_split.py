"""Splitting the DiT's blocks over pipeline stages (``--gpus N``), and what such a split streams at.

:func:`split_blocks` cuts ``L`` blocks into ``N`` contiguous stages that minimise the slowest
stage's time: per-block costs (ms per denoising micro-step), plus the encoder on the first stage and
the decoder on the last. :func:`equal_split` is the default of a stream opened without costs.

:func:`predict_stages` turns a one-GPU chunk profile into a split and its throughput: each chunk's
``steps`` micro-steps (one per stream-batch slot, or the steps in turn) travel stage to stage, a
transfer per hop; the stream runs at the pace of its slowest stage, or of the ring when a step has
to wait for the step before it to come round (steps in turn; a short stream batch on many stages).
Pure Python: the planner (``livestyle budget --gpus N``) and the stages (``livestyle.parallel``) use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from livestyle.errors import ConfigError

__all__ = ["StagePlan", "StageSpan", "equal_split", "predict_stages", "split_blocks", "stage_costs"]


@dataclass(frozen=True)
class StageSpan:
    """Stage ``rank`` of ``stages`` runs blocks ``start .. stop - 1`` (the first stage also the
    encoder and patch embedding, the last the head and decoder)."""

    rank: int
    stages: int
    start: int
    stop: int

    @property
    def first(self) -> bool:
        return self.rank == 0

    @property
    def last(self) -> bool:
        return self.rank == self.stages - 1

    @property
    def blocks(self) -> int:
        return self.stop - self.start

    def __str__(self) -> str:
        return f"stage {self.rank}: blocks {self.start}-{self.stop - 1}"


def _check(num_blocks: int, stages: int) -> None:
    if stages < 1:
        raise ConfigError(f"--gpus must be at least 1, got {stages}")
    if stages > num_blocks:
        raise ConfigError(f"--gpus {stages} is more stages than the model's {num_blocks} transformer blocks")


def equal_split(num_blocks: int, stages: int) -> tuple[StageSpan, ...]:
    """``num_blocks`` in ``stages`` contiguous runs as equal as can be (the first ones one longer)."""
    _check(num_blocks, stages)
    base, extra = divmod(num_blocks, stages)
    spans, start = [], 0
    for rank in range(stages):
        stop = start + base + (1 if rank < extra else 0)
        spans.append(StageSpan(rank, stages, start, stop))
        start = stop
    return tuple(spans)


def stage_costs(spans: Sequence[StageSpan], block_costs: Sequence[float], *, first_extra: float = 0.0,
                last_extra: float = 0.0) -> list[float]:
    """Each stage's time: its blocks' costs, plus ``first_extra`` on the first, ``last_extra`` on the last."""
    out = []
    for s in spans:
        cost = float(sum(block_costs[s.start:s.stop]))
        cost += first_extra if s.first else 0.0
        cost += last_extra if s.last else 0.0
        out.append(cost)
    return out


def split_blocks(block_costs: Sequence[float], stages: int, *, first_extra: float = 0.0,
                 last_extra: float = 0.0) -> tuple[StageSpan, ...]:
    """The contiguous split of the blocks (costs in any unit) over ``stages`` that minimises the
    slowest stage, the first stage carrying ``first_extra`` and the last ``last_extra`` on top;
    among equal maxima the most even one. Exact (dynamic programming, ``O(stages * L^2)``)."""
    n = len(block_costs)
    _check(n, stages)
    prefix = [0.0]
    for c in block_costs:
        prefix.append(prefix[-1] + float(c))

    def cost(rank: int, i: int, j: int) -> float:
        c = prefix[j] - prefix[i]
        if rank == 0:
            c += first_extra
        if rank == stages - 1:
            c += last_extra
        return c

    inf = float("inf")
    # best[r][j]: (slowest stage, sum of squares) splitting blocks [0, j) into stages 0..r
    best = [[(inf, inf)] * (n + 1) for _ in range(stages)]
    cut = [[0] * (n + 1) for _ in range(stages)]
    for j in range(1, n + 1):
        c = cost(0, 0, j)
        best[0][j] = (c, c * c)
    for r in range(1, stages):
        for j in range(r + 1, n + 1):
            for i in range(r, j):
                prev = best[r - 1][i]
                c = cost(r, i, j)
                cand = (max(prev[0], c), prev[1] + c * c)
                if cand < best[r][j]:
                    best[r][j], cut[r][j] = cand, i
    bounds, j = [n], n
    for r in range(stages - 1, 0, -1):
        j = cut[r][j]
        bounds.append(j)
    bounds.append(0)
    bounds.reverse()
    return tuple(StageSpan(r, stages, bounds[r], bounds[r + 1]) for r in range(stages))


@dataclass(frozen=True)
class StagePlan:
    """A split and the stream it gives: ``stage_ms`` per chunk (compute plus sends), the ring time
    of one micro-step, the chunk period and fps, the activation size per hop."""

    spans: tuple[StageSpan, ...]
    stage_ms: tuple[float, ...]
    transfer_ms: float
    ring_ms: float
    chunk_ms: float
    fps: float
    activation_bytes: int
    bound: str  # "stage <r>" (the slowest stage) or "ring" (steps waiting on each other)

    @property
    def imbalance(self) -> float:
        """Slowest stage over the mean stage (1.0: perfectly even)."""
        mean = sum(self.stage_ms) / len(self.stage_ms)
        return max(self.stage_ms) / mean if mean > 0 else 1.0


def predict_stages(*, num_blocks: int, block_ms: float, encode_ms: float, decode_ms: float, steps: int,
                   stream_batch: bool, chunk_frames: int, stages: int, activation_bytes: int,
                   link_gbs: float, hop_latency_ms: float = 0.05) -> StagePlan:
    """Split and throughput for ``stages`` GPUs from one-GPU numbers: ``block_ms`` is one block's
    time for one micro-step (one stream-batch slot, batch 1), ``encode_ms``/``decode_ms`` the
    codec's time per chunk, ``activation_bytes`` the tokens one micro-step hands to the next stage
    and ``link_gbs`` the GPU-to-GPU bandwidth (GB/s) with ``hop_latency_ms`` per send.

    Micro-steps per chunk: ``steps`` (a stream-batch call's slots, or the steps in turn). With
    stream batch, the slot that enters stage 0 waits for the slot ``steps + 1`` micro-steps before
    it to come round the ring; in turn, every step waits for the one before it.
    """
    per_hop = hop_latency_ms + activation_bytes / (link_gbs * 1e9) * 1e3
    spans = split_blocks([block_ms] * num_blocks, stages, first_extra=encode_ms / max(steps, 1),
                         last_extra=decode_ms / max(steps, 1))
    compute = stage_costs(spans, [block_ms * steps] * num_blocks, first_extra=encode_ms, last_extra=decode_ms)
    stage_ms = tuple(c + steps * per_hop for c in compute)
    ring_ms = block_ms * num_blocks + stages * per_hop  # one micro-step once round (the back hop included)
    slowest = max(range(stages), key=lambda r: stage_ms[r])
    if stream_batch:
        ring_bound = steps * ring_ms / (steps + 1)
    else:
        ring_bound = steps * ring_ms + encode_ms  # the decode overlaps the next chunk's first steps
    chunk_ms = max(stage_ms[slowest], ring_bound)
    bound = f"stage {slowest}" if stage_ms[slowest] >= ring_bound else "ring"
    fps = 1000.0 * chunk_frames / chunk_ms if chunk_ms > 0 else float("inf")
    return StagePlan(spans, stage_ms, per_hop, ring_ms, chunk_ms, fps, activation_bytes, bound)
