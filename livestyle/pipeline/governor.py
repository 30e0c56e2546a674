"""The runtime governor: keeps latency bounded by stepping quality down before it grows.

It watches each chunk's real GPU time, the frames waiting for the GPU and the glass-to-glass
latency, and walks a ladder of quality levels: fewer steps, then the tiny decoder, then a smaller
size, then bypass; it steps back up after a sustained stretch of headroom. Every decision is a
pure function of the state, the observation and the time passed in (no clock is read here), so
its tests are exact.

Rules (``GovernorConfig`` holds the numbers):
- overloaded: chunk time above ``budget x overload`` or latency above the latency budget, for
  ``down_after`` consecutive chunks -> one level down (immediately if frames pile up past
  ``max_backlog``);
- headroom: chunk time below ``budget x headroom`` and latency within budget, for ``up_after``
  consecutive chunks -> one level up;
- after any change, ``cooldown_s`` seconds pass before the next one (the pipeline needs a few
  chunks to settle after a change).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from livestyle.control.commands import SetBypass, SetDecoder, SetSize, SetSteps, StreamCommand

__all__ = ["Level", "GovernorConfig", "GovernorState", "Observation", "Decision", "ladder_from", "step"]


@dataclass(frozen=True)
class Level:
    """One rung of the quality ladder."""

    steps: int
    decoder: str
    size: tuple[int, int]
    bypass: bool = False

    def describe(self) -> str:
        if self.bypass:
            return "bypass"
        return f"{self.steps} step{'s' if self.steps > 1 else ''}, {self.decoder} decoder, {self.size[0]}x{self.size[1]}"


@dataclass(frozen=True)
class GovernorConfig:
    chunk_budget_ms: float
    """GPU time per chunk that keeps up with the input: frames per chunk / input fps."""
    latency_budget_ms: float
    overload: float = 1.05
    headroom: float = 0.6
    down_after: int = 2
    up_after: int = 30
    max_backlog: int = 8
    cooldown_s: float = 2.0


@dataclass(frozen=True)
class GovernorState:
    ladder: tuple[Level, ...]
    index: int = 0
    over: int = 0
    under: int = 0
    last_change: float = float("-inf")

    @property
    def level(self) -> Level:
        return self.ladder[self.index]


@dataclass(frozen=True)
class Observation:
    """One chunk's measurements: its GPU time, the latest glass-to-glass latency, the backlog."""

    chunk_ms: float
    latency_ms: float | None
    backlog: int
    now: float


@dataclass(frozen=True)
class Decision:
    """A change of level and the commands that carry it out."""

    before: Level
    after: Level
    reason: str
    commands: tuple[StreamCommand, ...]


def ladder_from(top: Level, *, smaller_sizes: Sequence[tuple[int, int]] = ((640, 368), (448, 256))) -> tuple[Level, ...]:
    """The ladder below ``top``: each step count down to 1, then the tiny decoder, then each
    smaller size, then bypass."""
    rungs = [top]
    cur = top
    while cur.steps > 1:
        cur = replace(cur, steps=cur.steps - 1)
        rungs.append(cur)
    if cur.decoder == "wan":
        cur = replace(cur, decoder="tiny-decoder")
        rungs.append(cur)
    for size in smaller_sizes:
        if size[0] * size[1] < cur.size[0] * cur.size[1]:
            cur = replace(cur, size=size)
            rungs.append(cur)
    rungs.append(replace(cur, bypass=True))
    return tuple(rungs)


def _commands(before: Level, after: Level) -> tuple[StreamCommand, ...]:
    out: list[StreamCommand] = []
    if after.bypass != before.bypass:
        out.append(SetBypass(after.bypass))
    if after.steps != before.steps:
        out.append(SetSteps(after.steps))
    if after.decoder != before.decoder:
        out.append(SetDecoder(after.decoder))  # type: ignore[arg-type]
    if after.size != before.size:
        out.append(SetSize(*after.size))
    return tuple(out)


def step(state: GovernorState, obs: Observation, config: GovernorConfig) -> tuple[GovernorState, Decision | None]:
    """Fold one observation into the state; return the new state and a decision if the level changes."""
    latency_high = obs.latency_ms is not None and obs.latency_ms > config.latency_budget_ms
    overloaded = obs.chunk_ms > config.chunk_budget_ms * config.overload or latency_high
    relaxed = obs.chunk_ms < config.chunk_budget_ms * config.headroom and not latency_high
    over = state.over + 1 if overloaded else 0
    under = state.under + 1 if relaxed else 0
    state = replace(state, over=over, under=under)
    if obs.now - state.last_change < config.cooldown_s:
        return state, None
    target = state.index
    reason = ""
    if (over >= config.down_after or obs.backlog > config.max_backlog) and state.index < len(state.ladder) - 1:
        target = state.index + 1
        if obs.backlog > config.max_backlog:
            reason = f"{obs.backlog} frames waiting for the GPU"
        elif latency_high:
            reason = f"latency {obs.latency_ms:.0f} ms over the {config.latency_budget_ms:.0f} ms budget"
        else:
            reason = f"chunk {obs.chunk_ms:.0f} ms over the {config.chunk_budget_ms:.0f} ms budget"
    elif under >= config.up_after and state.index > 0:
        target = state.index - 1
        reason = f"{under} chunks under {config.headroom:.0%} of the budget"
    if target == state.index:
        return state, None
    before, after = state.level, state.ladder[target]
    new_state = replace(state, index=target, over=0, under=0, last_change=obs.now)
    return new_state, Decision(before, after, reason, _commands(before, after))
