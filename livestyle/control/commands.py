"""Typed commands that change a running stream.

Every command source (terminal hotkeys, the HTTP/WebSocket API, OBS, the web page) produces these;
the runner applies them between chunks. Preset commands are resolved into concrete ones
(:class:`SetPrompt`, :class:`SetStrength`, ...) by the controller before they reach the runner.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Union

__all__ = [
    "SetPrompt",
    "SetStrength",
    "SetSteps",
    "SetSeed",
    "SetBypass",
    "SetEffect",
    "SetDecoder",
    "SetSize",
    "Reset",
    "SelectPreset",
    "NextPreset",
    "PreviousPreset",
    "Stop",
    "Command",
    "StreamCommand",
]


@dataclass(frozen=True, slots=True)
class SetPrompt:
    """Switch to ``text``, blending over ``transition_chunks`` chunks (None: the configured default)."""

    text: str
    transition_chunks: int | None = None


@dataclass(frozen=True, slots=True)
class SetStrength:
    """Noise strength in ``[0, 1]``: 0 keeps the input, 1 ignores it."""

    value: float


@dataclass(frozen=True, slots=True)
class SetSteps:
    """Number of denoising steps (1..the family's maximum)."""

    value: int


@dataclass(frozen=True, slots=True)
class SetSeed:
    value: int


@dataclass(frozen=True, slots=True)
class SetBypass:
    """``True``: show the raw input; ``False``: style it; ``None``: toggle."""

    value: bool | None = None


@dataclass(frozen=True, slots=True)
class SetEffect:
    """Which region gets the styled pixels."""

    value: Literal["full", "background", "person"]


@dataclass(frozen=True, slots=True)
class SetDecoder:
    """Which decoder turns latents into pixels: the full Wan VAE, the tiny decoder, or tiny both ways."""

    value: Literal["wan", "tiny-decoder", "tiny"]


@dataclass(frozen=True, slots=True)
class SetSize:
    """The generator's working size in pixels (multiples of 16); frames are resized to it."""

    width: int
    height: int


@dataclass(frozen=True, slots=True)
class Reset:
    """Drop the generator's temporal state (caches, buffers) and start afresh."""


@dataclass(frozen=True, slots=True)
class SelectPreset:
    """A preset by name (str) or by 0-based index (int)."""

    key: str | int


@dataclass(frozen=True, slots=True)
class NextPreset:
    pass


@dataclass(frozen=True, slots=True)
class PreviousPreset:
    pass


@dataclass(frozen=True, slots=True)
class Stop:
    """End the stream cleanly (sinks are finalized)."""


StreamCommand = Union[
    SetPrompt, SetStrength, SetSteps, SetSeed, SetBypass, SetEffect, SetDecoder, SetSize, Reset, Stop
]
"""Concrete commands the runner and generator understand."""

Command = Union[StreamCommand, SelectPreset, NextPreset, PreviousPreset]
"""Everything a command source may produce."""
