"""Typed commands that change a running stream: the live command vocabulary.

Every command source (terminal hotkeys, the HTTP/WebSocket API, OBS, the web page; all in
``livestyle.control``) produces these; the runner applies them between chunks. They live here, in
the layer that consumes them, so control imports the pipeline and never the other way round.
Preset commands (:class:`SelectPreset`, :class:`NextPreset`, :class:`PreviousPreset`) are resolved
into concrete ones (:class:`SetPrompt`, :class:`SetStrength`, ...) by the controller before they
reach the runner.
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
    "SetLora",
    "LoraRef",
    "parse_lora_ref",
    "parse_lora_list",
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
class LoraRef:
    """One LoRA to merge: ``name`` (a file in the LoRA folder, without its ending, or a path) at ``scale``."""

    name: str
    scale: float = 1.0

    def __str__(self) -> str:
        return self.name if self.scale == 1.0 else f"{self.name}:{self.scale:g}"


def parse_lora_ref(text: str) -> LoraRef:
    """``NAME`` or ``NAME:SCALE`` (``--lora ink.safetensors:0.8``); a ``:`` not followed by a number
    belongs to the name (``C:\\loras\\ink``)."""
    name, sep, tail = text.rpartition(":")
    if sep:
        try:
            return LoraRef(name, float(tail))
        except ValueError:
            pass
    return LoraRef(text)


def parse_lora_list(text: str) -> tuple[LoraRef, ...]:
    """``model.loras``: comma-separated ``NAME[:SCALE]`` entries (empty: none)."""
    return tuple(parse_lora_ref(item.strip()) for item in text.split(",") if item.strip())


@dataclass(frozen=True, slots=True)
class SetLora:
    """Merge exactly these LoRAs (each at its scale) from the next chunk on; ``()`` removes every LoRA."""

    value: tuple[LoraRef, ...] = ()


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
    SetPrompt, SetStrength, SetSteps, SetSeed, SetBypass, SetEffect, SetDecoder, SetSize, SetLora, Reset, Stop
]
"""Concrete commands the runner and generator understand."""

Command = Union[StreamCommand, SelectPreset, NextPreset, PreviousPreset]
"""Everything a command source may produce."""
