"""The governor in the live loop: the real Runner, a paced camera, a generator whose speed depends
on its settings (SyntheticGenerator: slow at 2 steps, fast at 1), decisions visible in the stats."""

from __future__ import annotations

import threading
from typing import Any

from host_canary import HostCanary, unexplained_losses

from livestyle.ingest.pattern import PatternSource
from livestyle.output.null import NullSink
from livestyle.engine.commands import SetBypass, SetSteps
from livestyle.engine.governor import (
    Decision,
    Governor,
    GovernorConfig,
    Level,
    Observation,
)
from livestyle.engine.runner import Runner
from livestyle.engine.synthetic import SyntheticGenerator

FPS = 30.0
SIZE = (64, 48)
BUDGET = 1000.0 * 4 / FPS  # a 4-frame chunk at 30 fps


def _governor(**kw: float) -> Governor:
    config = GovernorConfig(chunk_budget_ms=BUDGET, latency_budget_ms=1000.0, up_after=int(kw.pop("up_after", 30)),
                            cooldown_s=kw.pop("cooldown_s", 0.5))
    return Governor(config, **kw)


def _run(gen: SyntheticGenerator, gov: Governor | None, seconds: float,
         during: list[tuple[float, object]] | None = None) -> dict[str, Any]:
    """The run's stats, with ``unexplained_lost``: input drops at moments the machine does not
    explain (a shared CI machine freezing every process is not the governor's doing)."""
    source = PatternSource(SIZE, FPS, pace=True, max_frames=int(seconds * FPS))
    runner = Runner(source, gen, [NullSink()], size=SIZE, fps=FPS, governor=gov)
    for at, command in during or []:
        threading.Timer(at, runner.submit, args=(command,)).start()
    with HostCanary() as canary:
        stats = runner.run().stats
    stats["unexplained_lost"] = unexplained_losses(runner.drop_log(), canary, 1.0 / FPS)
    return stats


def test_the_governor_steps_down_before_frames_are_lost_and_says_why() -> None:
    gen = SyntheticGenerator(chunk_frames=4, base_ms=0.0, ms_per_step=75.0, steps=2)  # 150 ms > 133 ms budget
    stats = _run(gen, _governor(), 4.0)
    gov = stats["governor"]
    assert gen.steps == 1 and gov["level"].startswith("1 step")
    first = gov["decisions"][0]
    assert first["from"].startswith("2 steps") and first["to"].startswith("1 step")
    assert "chunk" in first["reason"] and "over the 133 ms budget" in first["reason"]
    assert stats["frames_lost"] == stats["drops"].get("input", 0) and stats["unexplained_lost"] == []


def test_it_steps_back_up_with_hysteresis_and_backs_off_a_level_it_cannot_hold() -> None:
    gen = SyntheticGenerator(chunk_frames=4, base_ms=0.0, ms_per_step=75.0, steps=2)  # 1 step: 75 ms < 60% of 133
    stats = _run(gen, _governor(up_after=4, cooldown_s=0.3), 8.0)
    changes = [(d["from"][:7], d["to"][:7]) for d in stats["governor"]["decisions"]]
    assert changes[:3] == [("2 steps", "1 step,"), ("1 step,", "2 steps"), ("2 steps", "1 step,")]
    # each failed try doubles the headroom it needs before the next one: 4, 8, 16 chunks
    ups = [d["reason"] for d in stats["governor"]["decisions"] if d["to"].startswith("2 steps")]
    assert ups[:3] == ["4 chunks under 60% of the budget", "8 chunks under 60% of the budget",
                       "16 chunks under 60% of the budget"], ups
    assert stats["unexplained_lost"] == []


def test_when_nothing_keeps_up_it_bypasses_then_probes_again_later() -> None:
    gen = SyntheticGenerator(chunk_frames=4, base_ms=400.0, ms_per_step=0.0, steps=1, decoder_ms=0.0)
    stats = _run(gen, _governor(cooldown_s=0.2, probe_s=1.0), 6.0)
    decisions = stats["governor"]["decisions"]
    tos = [d["to"] for d in decisions]
    assert "bypass" in tos
    assert any(d["from"] == "bypass" and "trying again" in d["reason"] for d in decisions)
    assert stats["viewer"]["null"]["written"] > 3 * FPS  # bypass kept the picture moving


def test_the_streamers_own_bypass_and_settings_are_respected() -> None:
    gen = SyntheticGenerator(chunk_frames=4, base_ms=0.0, ms_per_step=75.0, steps=2)
    stats = _run(gen, _governor(), 4.0, during=[(0.2, SetBypass(True)), (2.5, SetBypass(False))])
    decisions = stats["governor"]["decisions"]
    assert all(d["at_s"] > 2.5 for d in decisions), decisions  # hands off during the panic bypass
    assert decisions and decisions[0]["to"].startswith("1 step")
    # a streamer's SetSteps makes that the new ceiling
    gen = SyntheticGenerator(chunk_frames=4, base_ms=0.0, ms_per_step=20.0, steps=1)
    stats = _run(gen, _governor(), 2.0, during=[(0.5, SetSteps(3))])
    assert gen.steps == 3 and stats["governor"]["levels"][0].startswith("3 steps")


def test_without_a_governor_the_settings_stay_pinned() -> None:
    gen = SyntheticGenerator(chunk_frames=4, base_ms=0.0, ms_per_step=75.0, steps=2)
    stats = _run(gen, None, 2.0)
    assert gen.steps == 2 and stats["governor"] == {"enabled": False}


def test_backoff_is_per_level_and_pure() -> None:
    gov = _governor(up_after=2, cooldown_s=0.0)
    gov.retop(Level(2, "tiny", (64, 48)))
    t = 0.0
    got: list[Decision] = []

    def feed(ms: float, n: int) -> None:
        nonlocal t
        for _ in range(n):
            t += 0.1
            d = gov.observe(Observation(ms, 100.0, 0, t))
            if d is not None:
                got.append(d)

    feed(150.0, 2)  # overloaded at 2 steps: down
    feed(40.0, 2)  # headroom: up after 2
    feed(150.0, 2)  # cannot hold it: down, and the next try needs 4
    feed(40.0, 3)
    assert len(got) == 3
    feed(40.0, 1)
    assert len(got) == 4 and got[-1].after.steps == 2


def test_run_wires_the_governor_and_no_governor_pins(tmp_path: object) -> None:
    from livestyle.cli.run import build_config, stream

    for extra, enabled in (([], True), (["governor.enabled=false"], False)):
        cfg = build_config(None, ["stream.size=64x48", *extra], model="passthrough", max_frames=20)
        report = stream(cfg, "pattern", ["null"], status=False)
        assert report.stats["governor"]["enabled"] is enabled
        if enabled:  # passthrough has no steps, decoder or size: nothing to govern
            assert report.stats["governor"]["active"] is False


def test_bad_governor_and_delivery_settings_are_one_line_errors() -> None:
    import pytest

    from livestyle.config import config_from_dict
    from livestyle.errors import ConfigError
    from livestyle.engine.channels import Inbox
    from livestyle.engine.delivery import DeliveryScheduler

    with pytest.raises(ConfigError) as err:
        config_from_dict({"governor": {"latency_ms": 0}})
    assert str(err.value).startswith("governor.latency_ms: expected a number > 0"), str(err.value)
    with pytest.raises(ConfigError, match=r"^fps must be positive, got 0$"):
        DeliveryScheduler(0)
    with pytest.raises(ConfigError, match=r"^delivery: window >= 1, quantile in \[0, 100\], margin >= 0, catchup > 0$"):
        DeliveryScheduler(30, quantile=120)
    with pytest.raises(ConfigError, match=r"^runner.inbox_chunks must be at least 1, got 0$"):
        Inbox(depth=0)
    with pytest.raises(ConfigError, match=r"^synthetic generator: chunks need at least one frame$"):
        SyntheticGenerator(chunk_frames=0)
