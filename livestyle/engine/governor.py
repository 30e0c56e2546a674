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

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from livestyle.engine.commands import (
    SetBypass,
    SetDecoder,
    SetSize,
    SetSteps,
    StreamCommand,
)

__all__ = [
    "Decision",
    "Governor",
    "GovernorConfig",
    "GovernorState",
    "Level",
    "Observation",
    "ladder_from",
    "level_from_stats",
    "step",
]


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


def level_from_stats(stats: Mapping[str, Any]) -> Level | None:
    """The level a generator runs at, from its ``stats()`` (``steps``, ``decoder``, ``size`` "WxH");
    None for a generator without those (passthrough: nothing to govern)."""
    try:
        steps = int(stats["steps"])
        decoder = str(stats["decoder"])
        width, height = (int(v) for v in str(stats["size"]).lower().split("x"))
    except (KeyError, TypeError, ValueError):
        return None
    return Level(steps, decoder, (width, height))


class Governor:
    """The governor in a live loop: :func:`step` plus the ladder, the bypass probe and a history.

    The runner calls :meth:`observe` after every chunk (on its worker thread) and applies the
    commands of the decision it returns. The top of the ladder is the generator's level when the
    governor first sees it, and again after a user changes steps, decoder or size
    (:meth:`retop`): the user's choice is the ceiling.

    Hysteresis: a level the governor stepped up to and then had to leave again for overload
    needs twice as many chunks of headroom before the next try (per level, up to 64x).

    At the bypass rung the generator does not run, so there is nothing to measure: after
    ``probe_s`` seconds the governor steps up once to try again; each probe that falls back to
    bypass within ``probe_s`` doubles the wait (up to ``max_probe_s``).
    """

    def __init__(self, config: GovernorConfig, *, probe_s: float = 10.0, max_probe_s: float = 120.0,
                 history: int = 20) -> None:
        self.config = config
        self.state: GovernorState | None = None
        self.probe_s = probe_s
        self._base_probe_s = probe_s
        self._max_probe_s = max_probe_s
        self.decisions: deque[tuple[float, Decision]] = deque(maxlen=history)
        self._up_after: dict[int, int] = {}  # per level index: chunks of headroom before stepping up to it

    def retop(self, top: Level | None) -> None:
        """Rebuild the ladder below ``top`` (None: nothing to govern)."""
        self.state = None if top is None else GovernorState(ladder_from(top))
        self.probe_s = self._base_probe_s
        self._up_after.clear()

    @property
    def level(self) -> Level | None:
        return None if self.state is None else self.state.level

    def observe(self, obs: Observation, *, chunk_budget_ms: float | None = None) -> Decision | None:
        """Fold in one chunk (or, at the bypass rung, one bypassed frame); the decision, if any."""
        if self.state is None:
            return None
        config = self.config if chunk_budget_ms is None else replace(self.config, chunk_budget_ms=chunk_budget_ms)
        up_to = self.state.index - 1
        config = replace(config, up_after=self._up_after.get(up_to, config.up_after))
        if self.state.level.bypass:
            if obs.now - self.state.last_change < self.probe_s:
                return None
            before = self.state.level
            self.state = replace(self.state, index=self.state.index - 1, over=0, under=0, last_change=obs.now)
            decision = Decision(before, self.state.level, f"trying again after {self.probe_s:.0f} s in bypass",
                                _commands(before, self.state.level))
        else:
            previous = self.state
            self.state, decision = step(self.state, obs, config)
            if decision is not None and self.state.index > previous.index and self.decisions:
                _, last = self.decisions[-1]
                if last.after == previous.level and last.before == self.state.level:
                    # it went up to this level and could not hold it: be slower to try again
                    base = self._up_after.get(previous.index, self.config.up_after)
                    self._up_after[previous.index] = min(64 * self.config.up_after, 2 * base)
            if decision is not None and decision.after.bypass:
                # back in bypass soon after a probe: wait longer before the next one
                recent = previous.index == len(previous.ladder) - 2 and obs.now - previous.last_change < self.probe_s
                self.probe_s = min(self._max_probe_s, 2 * self.probe_s) if recent else self._base_probe_s
        if decision is not None:
            self.decisions.append((obs.now, decision))
        return decision

    def stats(self, since: float = 0.0) -> dict[str, Any]:
        """A JSON-able summary: the current level, the ladder and the recent decisions with reasons."""
        if self.state is None:
            return {"enabled": True, "active": False, "level": None}
        return {
            "enabled": True,
            "active": True,
            "level": self.state.level.describe(),
            "index": self.state.index,
            "levels": [lvl.describe() for lvl in self.state.ladder],
            "decisions": [
                {"at_s": round(t - since, 2), "from": d.before.describe(), "to": d.after.describe(), "reason": d.reason}
                for t, d in self.decisions
            ],
        }
