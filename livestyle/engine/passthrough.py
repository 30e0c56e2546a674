"""The ``passthrough`` generator: the input, unchanged, through the same interface as a model.

It is the panic button's path made into a model, the path when no GPU is present, and what the
plumbing (sources, sinks, runner, control layer) is tested and benchmarked with. It remembers the
commands it receives so a control surface can be exercised end to end without a GPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from livestyle.errors import ConfigError
from livestyle.engine.commands import (
    Reset,
    SetEffect,
    SetPrompt,
    SetSeed,
    SetSteps,
    SetStrength,
)
from livestyle.engine.frames import Frame

__all__ = ["PassthroughGenerator"]


class PassthroughGenerator:
    """Returns every input frame as it came (same pixels, pts and capture time).

    Args:
        chunk_frames: frames per chunk (1 by default; larger values exercise chunk assembly
            the way a model does, e.g. 4).
        prompt, strength, steps, seed: the starting values it reports in :meth:`stats`.
    """

    name = "passthrough"

    def __init__(
        self,
        *,
        chunk_frames: int = 1,
        prompt: str = "",
        strength: float = 0.0,
        steps: int = 1,
        seed: int = 0,
        effect: str = "full",
    ) -> None:
        if chunk_frames < 1:
            raise ConfigError(f"passthrough chunk_frames must be at least 1, got {chunk_frames}")
        self._chunk_frames = chunk_frames
        self.prompt = prompt
        self.strength = strength
        self.steps = steps
        self.seed = seed
        self.effect = effect
        self.chunks = 0
        self.frames = 0
        self.resets = 0
        self.commands = 0

    def frames_needed(self) -> int:
        return self._chunk_frames

    def process(self, frames: Sequence[Frame]) -> list[Frame]:
        self.chunks += 1
        self.frames += len(frames)
        return list(frames)

    def apply(self, command: object) -> None:
        """Record the command's value; unknown commands are ignored (they change nothing here)."""
        self.commands += 1
        if isinstance(command, SetPrompt):
            self.prompt = command.text
        elif isinstance(command, SetStrength):
            self.strength = command.value
        elif isinstance(command, SetSteps):
            self.steps = command.value
        elif isinstance(command, SetSeed):
            self.seed = command.value
        elif isinstance(command, SetEffect):
            self.effect = command.value
        elif isinstance(command, Reset):
            self.reset()

    def reset(self) -> None:
        self.resets += 1

    def stats(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "chunks": self.chunks,
            "frames": self.frames,
            "prompt": self.prompt,
            "strength": self.strength,
            "steps": self.steps,
            "seed": self.seed,
            "effect": self.effect,
            "resets": self.resets,
        }
