"""The planner on the shipped GPU profiles, and the governor on scripted timings."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from livestyle.errors import ConfigError, PipelineError
from livestyle.planning.budget import Candidate, Target, list_profiles, load_profile, plan, predict


def test_shipped_profiles_load() -> None:
    names = list_profiles()
    assert {"h100", "h200", "b200", "rtx4090"} <= set(names)
    for name in names:
        profile = load_profile(name)
        assert profile.vae_decode > 0 and profile.dit_ms("1.3b", 1) > 0


def test_b200_is_derived_from_the_krea_anchor() -> None:
    """The reference profile reproduces its anchor: Krea 14B at 4 steps streams 11 fps on a B200."""
    b200 = load_profile("b200")
    krea = predict(b200, Candidate("krea-14b", (832, 480), 4, "wan", False))
    assert krea.fps == pytest.approx(11.0, rel=1e-6)
    h100 = load_profile("h100")
    ratio = h100.dit_ms("14b", 3) / b200.dit_ms("14b", 3)
    assert 1.0 < ratio <= 2250 / 989 + 1e-9  # never faster than the datasheet allows
    assert any("anchor" in n for n in b200.notes)


def test_interpolation_between_measured_points() -> None:
    h100 = load_profile("h100")
    assert h100.dit_ms("1.3b", 2) == pytest.approx(35.6)
    assert h100.dit_ms("1.3b", 3) == pytest.approx((35.6 + 80.0) / 2)
    assert h100.dit_ms("14b", 2) == pytest.approx(89.0 + (373.5 - 89.0) / 3)


def test_stream_batch_trades_latency_for_throughput() -> None:
    h100 = load_profile("h100")
    batch = predict(h100, Candidate("sdv2-1.3b", (832, 480), 2, "tiny", True))
    seq = predict(h100, Candidate("sdv2-1.3b", (832, 480), 2, "tiny", False))
    assert batch.fps > seq.fps
    assert batch.stages_ms["dit"] == pytest.approx(35.6)
    assert seq.stages_ms["dit"] == pytest.approx(2 * 22.3)


@pytest.mark.parametrize(
    ("gpu", "fps", "latency", "models", "expected"),
    [
        # documented plans (README "Latency budgets")
        ("h100", 60, 250, ("sdv2-1.3b",), ("sdv2-1.3b", "832x480", 2, "tiny", False)),
        ("h100", 30, 250, ("sdv2-1.3b",), ("sdv2-1.3b", "832x480", 4, "tiny", False)),
        ("b200", 11, 2500, ("krea-14b",), ("krea-14b", "832x480", 4, "wan", False)),
        # the fused kernels (issue 24) leave room for the Wan VAE encoder at 30 fps
        ("h100", 30, 300, ("sdv2-14b",), ("sdv2-14b", "832x480", 1, "tiny-decoder", False)),
    ],
)
def test_documented_plans(gpu: str, fps: float, latency: float, models: tuple[str, ...], expected: tuple) -> None:
    best = plan(load_profile(gpu), Target(fps=fps, latency_ms=latency, models=models))
    c = best.candidate
    assert (c.model, c.size_text, c.steps, c.decoder, c.stream_batch) == expected
    assert best.fps >= fps and best.latency_ms <= latency


def test_unmeetable_fps_names_the_constraint() -> None:
    with pytest.raises(PipelineError, match=r"500 fps cannot be met on NVIDIA GeForce RTX 4090 24GB: the fastest setting"):
        plan(load_profile("rtx4090"), Target(fps=500, latency_ms=1000))


def test_unmeetable_latency_names_the_constraint() -> None:
    with pytest.raises(PipelineError, match=r"^10 ms latency cannot be met at 30 fps"):
        plan(load_profile("h100"), Target(fps=30, latency_ms=10))
    with pytest.raises(PipelineError) as err:  # the whole line a user reads: the p95 the target is held to
        plan(load_profile("h100"), Target(fps=30, latency_ms=10))
    assert str(err.value) == ("10 ms latency cannot be met at 30 fps on NVIDIA H100 80GB HBM3: the lowest p95 is "
                              "131 ms (sdv2-1.3b 448x256 1 step, tiny decoder)")


def test_unknown_profile_lists_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown GPU profile 'a100'; known: a10g, b200, h100"):
        load_profile("a100")


def test_cli_budget_json_line() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "livestyle", "budget", "--gpu", "h100", "--fps", "60", "--latency-ms", "250",
         "--model", "sdv2-1.3b", "--json"],
        capture_output=True, text=True, check=True,
    )
    line = json.loads(out.stdout.strip().splitlines()[-1])
    assert line["model"] == "sdv2-1.3b" and line["fps"] >= 60


def test_cli_budget_unmeetable_is_one_line() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "livestyle", "budget", "--gpu", "rtx4090", "--fps", "500"],
        capture_output=True, text=True,
    )
    assert out.returncode == 1
    assert out.stderr.strip().startswith("error: 500 fps cannot be met on NVIDIA GeForce RTX 4090 24GB")
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
