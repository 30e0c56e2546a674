"""The governor on scripted timings: pure function of state, observation and injected time."""

from __future__ import annotations

from livestyle.engine.commands import SetBypass, SetDecoder, SetSize, SetSteps
from livestyle.engine.governor import GovernorConfig, GovernorState, Level, Observation, ladder_from, step

TOP = Level(steps=2, decoder="wan", size=(832, 480))
CONFIG = GovernorConfig(chunk_budget_ms=133.0, latency_budget_ms=250.0, down_after=2, up_after=5, cooldown_s=1.0)


def run(state: GovernorState, timings: list[float], *, latency: float = 100.0, t0: float = 0.0, dt: float = 0.133):
    decisions = []
    for i, ms in enumerate(timings):
        state, d = step(state, Observation(chunk_ms=ms, latency_ms=latency, backlog=0, now=t0 + i * dt), CONFIG)
        decisions.append(d)
    return state, decisions


def test_ladder_order() -> None:
    ladder = ladder_from(TOP)
    assert [r.describe() for r in ladder] == [
        "2 steps, wan decoder, 832x480",
        "1 step, wan decoder, 832x480",
        "1 step, tiny-decoder decoder, 832x480",
        "1 step, tiny-decoder decoder, 640x368",
        "1 step, tiny-decoder decoder, 448x256",
        "bypass",
    ]


def test_steps_down_within_down_after_chunks_of_a_slowdown() -> None:
    state = GovernorState(ladder_from(TOP))
    state, decisions = run(state, [100, 100, 200, 200])
    assert decisions[:3] == [None, None, None]
    d = decisions[3]
    assert d is not None and d.commands == (SetSteps(1),)
    assert "chunk 200 ms over the 133 ms budget" in d.reason
    assert state.index == 1


def test_cooldown_then_next_rung_and_commands() -> None:
    state = GovernorState(ladder_from(TOP))
    state, decisions = run(state, [200] * 12)  # 12 chunks of 0.133 s = 1.6 s
    changes = [d for d in decisions if d is not None]
    assert len(changes) == 2  # the second waits out the 1 s cooldown
    assert changes[1].commands == (SetDecoder("tiny-decoder"),)
    assert state.index == 2


def test_backlog_steps_down_at_once() -> None:
    state = GovernorState(ladder_from(TOP))
    state, d = step(state, Observation(chunk_ms=90, latency_ms=None, backlog=20, now=0.0), CONFIG)
    assert d is not None and "20 frames waiting" in d.reason


def test_latency_over_budget_steps_down_even_when_chunks_are_fast() -> None:
    state = GovernorState(ladder_from(TOP))
    state, decisions = run(state, [50, 50], latency=400.0)
    assert decisions[1] is not None and "latency 400 ms" in decisions[1].reason


def test_steps_back_up_after_sustained_headroom_and_never_flaps() -> None:
    ladder = ladder_from(TOP)
    state = GovernorState(ladder, index=3, last_change=-10.0)
    state, decisions = run(state, [60] * 4)
    assert all(d is None for d in decisions)  # 4 < up_after
    state, decisions = run(state, [60], t0=1.0)
    d = decisions[0]
    assert d is not None and d.commands == (SetSize(832, 480),) and state.index == 2
    # one slow chunk right after does not bounce it back down
    state, decisions = run(state, [150], t0=1.2)
    assert decisions == [None]


def test_bypass_is_the_last_rung_and_recovers() -> None:
    ladder = ladder_from(Level(steps=1, decoder="tiny", size=(448, 256)))
    assert [r.describe() for r in ladder] == ["1 step, tiny decoder, 448x256", "bypass"]
    state = GovernorState(ladder)
    state, decisions = run(state, [500, 500, 500, 500])
    assert [d.commands for d in decisions if d] == [(SetBypass(True),)]
    state, decisions = run(state, [10] * 5, t0=5.0)
    assert [d.commands for d in decisions if d] == [(SetBypass(False),)]
