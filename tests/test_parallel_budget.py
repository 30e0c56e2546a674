"""The stage split and the ``--gpus N`` planner: contiguous stages, the slowest one as short as can
be, fps from the slowest stage or the ring, and ``livestyle budget --gpus 4`` printing a split."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from livestyle.errors import ConfigError
from livestyle.planning.budget import Candidate, Target, load_profile, predict
from livestyle.planning.multi_gpu import plan_gpus, predict_gpus
from livestyle.planning.stage_split import equal_split, split_blocks, stage_costs


def test_equal_split_is_contiguous_and_even() -> None:
    spans = equal_split(40, 3)
    assert [(s.start, s.stop) for s in spans] == [(0, 14), (14, 27), (27, 40)]
    assert spans[0].first and spans[-1].last and not spans[1].first
    with pytest.raises(ConfigError, match="more stages than"):
        equal_split(2, 3)


def test_split_blocks_minimises_the_slowest_stage() -> None:
    costs = [1.0] * 12
    spans = split_blocks(costs, 3, first_extra=0.0, last_extra=3.0)  # the decoder weighs 3 blocks
    loads = stage_costs(spans, costs, last_extra=3.0)
    assert max(loads) == 5.0 and [s.blocks for s in spans] == [5, 5, 2]
    uneven = [5.0, 1.0, 1.0, 1.0, 1.0, 5.0]
    assert max(stage_costs(split_blocks(uneven, 2), uneven)) == 7.0


def test_four_gpus_stream_faster_than_one() -> None:
    h100 = load_profile("h100")
    c = Candidate("sdv2-14b", (832, 480), 4, "wan", True)
    one = predict(h100, c)
    four = predict_gpus(h100, c, 4)
    assert four.prediction.fps > 2.5 * one.fps
    assert len(four.stages.spans) == 4 and four.stages.spans[-1].stop == 40
    assert four.prediction.latency_p95_ms > one.latency_p95_ms  # one chunk period per extra stage
    steps_in_turn = predict_gpus(h100, Candidate("sdv2-14b", (832, 480), 4, "wan", False), 4)
    assert steps_in_turn.stages.bound == "ring" and steps_in_turn.prediction.fps < four.prediction.fps


def test_plan_gpus_skips_families_the_stages_do_not_run() -> None:
    best = plan_gpus(load_profile("h100"), Target(fps=30, latency_ms=3000), 4)
    assert best.prediction.candidate.model not in ("krea-14b", "longlive-1.3b")


def test_budget_cli_plans_a_split() -> None:
    done = subprocess.run([sys.executable, "-c", "import sys; from livestyle.cli import main; sys.exit(main())", "budget", "--gpus", "4", "--gpu", "h100",
                           "--all-models", "--latency-ms", "3000", "--json"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout.strip().splitlines()[-1])
    assert plan["gpus"] == 4 and len(plan["split"]) == 4 and plan["split"][-1][1] == 39
    assert plan["split"][0][0] == 0 and all(a[1] + 1 == b[0] for a, b in zip(plan["split"], plan["split"][1:]))


def test_stage_split_benchmark_runs_on_the_cpu() -> None:
    """benchmarks/stage_split.py (for a lent GPU) runs its code path on the tiny model."""
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "stage_split.py"
    done = subprocess.run([sys.executable, str(script), "--model", "tiny", "--device", "cpu", "--size", "32x32",
                           "--iters", "1"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(result["block_ms"]) == 2 and all(ms > 0 for ms in result["block_ms"])
    assert result["activation_bytes_per_step"] == 4 * 64 * 4 + 16 * 4 * 4 * 4 + 4  # tokens + latents + t
