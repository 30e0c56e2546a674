"""The controller: one place every command source goes through.

Terminal hotkeys, system hotkeys, the HTTP/WebSocket API and the OBS bridge all call
:meth:`Controller.apply`. It resolves preset commands (:class:`SelectPreset`, :class:`NextPreset`,
:class:`PreviousPreset`) into concrete ones, validates values (one-line :class:`ControlError`),
forwards the concrete commands to ``submit`` (the runner's thread-safe ``Runner.submit``), keeps a
snapshot of the current parameters and tells listeners (``/api/events``, the OBS text source)
what changed.

Thread-safe: any thread may call :meth:`apply`; commands are validated as a group and submitted
in order under one lock, so two sources never interleave half of a preset each.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, get_args, get_type_hints

from livestyle.control.presets import MAX_PROMPT_CHARS, PresetBook
from livestyle.control.text import normalize_prompt
from livestyle.errors import CommandRefusedError, ControlError
from livestyle.engine.commands import (
    Command,
    LoraRef,
    NextPreset,
    PreviousPreset,
    Reset,
    SelectPreset,
    SetBypass,
    SetDecoder,
    SetEffect,
    SetLora,
    SetPrompt,
    SetSeed,
    SetSize,
    SetSteps,
    SetStrength,
    Stop,
    StreamCommand,
)

__all__ = ["Controller", "Params", "Listener", "LoraCatalog", "Precondition", "EFFECTS", "MAX_LORAS", "MAX_LORA_SCALE", "MAX_SEED",
           "MAX_TRANSITION_CHUNKS"]

log = logging.getLogger(__name__)

EFFECTS: tuple[str, ...] = get_args(get_type_hints(SetEffect)["value"])
DECODERS: tuple[str, ...] = get_args(get_type_hints(SetDecoder)["value"])
MAX_SEED = 2**63 - 1
MAX_TRANSITION_CHUNKS = 1000
MAX_LORAS = 4
"""LoRAs merged at once (each costs a weight rewrite of the layers it touches per switch)."""
MAX_LORA_SCALE = 4.0
"""Largest |scale| of a LoRA; past it the look breaks down anyway."""
MAX_LORA_NAME = 512


@dataclass(frozen=True, slots=True)
class Params:
    """What the stream is doing now, as far as commands are concerned.

    ``preset`` is the name of the last selected preset while its prompt is still the one in use
    (``None`` after a hand-typed prompt). ``stopped`` becomes true after a :class:`Stop`.
    """

    prompt: str
    strength: float
    steps: int
    seed: int
    bypass: bool = False
    effect: Literal["full", "background", "person"] = "full"
    transition_chunks: int = 4
    preset: str | None = None
    stopped: bool = False
    loras: tuple[LoraRef, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


Precondition = Callable[[StreamCommand], None]
"""Asks the stream whether it can apply a validated command now; raises
:class:`~livestyle.errors.CommandRefusedError` (the API answers 409) when it cannot, e.g.
``SetEffect("person")`` without the person-mask model."""

LoraCatalog = Callable[[], dict[str, Any]]
"""The LoRAs a stream can switch to: ``{"folder": str, "loras": [{"name", "file", "bytes"}, ...]}``
(``livestyle.diffusion.loras.LoraLibrary.catalog``)."""

Listener = Callable[[Params, tuple[StreamCommand, ...]], None]
"""Called after every applied group of commands with the new params and what was submitted.
Runs on the caller's thread while the controller's lock is held: enqueue and return, never block
or call back into the controller."""


class Controller:
    """Resolve, validate and forward commands; keep and publish the parameter snapshot."""

    def __init__(
        self,
        presets: PresetBook,
        submit: Callable[[StreamCommand], None],
        initial: Params,
        *,
        max_steps: int = 8,
        precondition: Precondition | None = None,
        lora_catalog: LoraCatalog | None = None,
        takes_loras: bool = True,
        styles: bool = True,
    ) -> None:
        if max_steps < 1:
            raise ControlError(f"max_steps must be >= 1, got {max_steps}")
        self._presets = presets
        self._submit = submit
        self._max_steps = max_steps
        self._precondition = precondition
        self._lora_catalog = lora_catalog
        self._takes_loras = takes_loras
        self._styles = styles
        self._lock = threading.RLock()
        if not takes_loras:  # the params say what the stream does: a generator without LoRAs has none
            initial = dataclasses.replace(initial, loras=())
        self._params = initial
        self._check(initial)
        self._last_index: int | None = None
        if initial.preset is not None:
            self._last_index = presets.index_of(initial.preset)
        self._listeners: list[Listener] = []

    # -- reading -------------------------------------------------------------------------------

    @property
    def presets(self) -> PresetBook:
        return self._presets

    @property
    def params(self) -> Params:
        """A snapshot (immutable) of the current parameters."""
        with self._lock:
            return self._params

    @property
    def max_steps(self) -> int:
        return self._max_steps

    def lora_catalog(self) -> dict[str, Any]:
        """The LoRA folder and its files (empty when the stream gave no catalog), plus the active ones."""
        found = self._lora_catalog() if self._lora_catalog is not None else {"folder": None, "loras": []}
        return {**found, "active": [dataclasses.asdict(r) for r in self.params.loras]}

    # -- listeners -----------------------------------------------------------------------------

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Register ``listener``; returns a function that removes it."""
        with self._lock:
            self._listeners.append(listener)

        def remove() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return remove

    # -- applying ------------------------------------------------------------------------------

    def apply(self, *commands: Command) -> Params:
        """Validate every command, then submit them in order; returns the new params.

        Raises :class:`ControlError` (nothing is submitted) if any command is invalid,
        :class:`~livestyle.errors.UnknownPresetError` for a preset that does not exist and
        :class:`~livestyle.errors.CommandRefusedError` when the stream's precondition refuses one.
        """
        with self._lock:
            params = self._params
            last_index = self._last_index
            concrete: list[StreamCommand] = []
            for command in commands:
                resolved, last_index = self._resolve(command, params, last_index)
                if not self._takes_loras:  # a preset's LoRAs are ignored like its prompt; asking for one is refused
                    if isinstance(command, SetLora) and command.value:
                        raise CommandRefusedError("this stream's model takes no LoRA (passthrough); start it with "
                                                  "--model to use LoRAs")
                    resolved = [item for item in resolved if not isinstance(item, SetLora)]
                for item in resolved:
                    params = self._update(params, item)
                    concrete.append(item)
                if isinstance(command, (SelectPreset, NextPreset, PreviousPreset)) and last_index is not None:
                    params = dataclasses.replace(params, preset=self._presets[last_index].name)
            if self._precondition is not None:
                for item in concrete:
                    self._precondition(item)
            for item in concrete:
                self._submit(item)
            self._params = params
            self._last_index = last_index
            applied = tuple(concrete)
            for listener in list(self._listeners):
                try:
                    listener(params, applied)
                except Exception:  # a broken listener must not stop the stream's controls
                    log.exception("control listener %r failed", listener)
            return params

    def notice(self, *commands: Command) -> str | None:
        """What to tell whoever sent ``commands`` (just applied) beyond the new params: that a look
        changes nothing on a stream without a model (passthrough), and what a reset did."""
        looks = [c for c in commands if isinstance(c, (SelectPreset, NextPreset, PreviousPreset, SetPrompt, SetStrength,
                                                       SetSteps, SetSeed))]
        if looks and not self._styles:
            first = looks[0]
            what = (f"preset {self.params.preset}" if isinstance(first, (SelectPreset, NextPreset, PreviousPreset))
                    else {SetPrompt: "the prompt", SetStrength: "strength", SetSteps: "steps", SetSeed: "the seed"}[type(first)])
            return f"{what}: passthrough has no model, so the picture does not change (start with --model to style)"
        if any(isinstance(c, Reset) for c in commands):
            return ("reset: the model's memory of earlier frames is dropped; the look starts afresh" if self._styles
                    else "reset: passthrough keeps no memory of earlier frames; nothing to drop")
        return None

    def select(self, key: str | int) -> Params:
        """Shorthand for ``apply(SelectPreset(key))`` (name or 0-based index)."""
        return self.apply(SelectPreset(key))

    # -- internals -----------------------------------------------------------------------------

    def _resolve(
        self, command: Command, params: Params, last_index: int | None
    ) -> tuple[list[StreamCommand], int | None]:
        if isinstance(command, SelectPreset):
            index = self._presets.index_of(command.key)
            return self._preset_commands(index), index
        if isinstance(command, (NextPreset, PreviousPreset)):
            count = len(self._presets)
            if count == 0:
                raise ControlError("no presets loaded: pass --presets FILE to switch looks")
            step = 1 if isinstance(command, NextPreset) else -1
            if last_index is None:
                index = 0 if step == 1 else count - 1
            else:
                index = (last_index + step) % count
            return self._preset_commands(index), index
        if isinstance(command, SetBypass) and command.value is None:
            return [SetBypass(not params.bypass)], last_index
        if isinstance(
            command,
            (SetPrompt, SetStrength, SetSteps, SetSeed, SetBypass, SetEffect, SetDecoder, SetSize, SetLora, Reset, Stop),
        ):
            return [self._validated(command)], last_index
        raise ControlError(f"not a livestyle command: {command!r}")

    def _preset_commands(self, index: int) -> list[StreamCommand]:
        preset = self._presets[index]
        out: list[StreamCommand] = [SetPrompt(preset.prompt, preset.transition_chunks)]
        if preset.strength is not None:
            out.append(SetStrength(preset.strength))
        if preset.steps is not None:
            out.append(SetSteps(min(preset.steps, self._max_steps)))
        if preset.seed is not None:
            out.append(SetSeed(preset.seed))
        if preset.loras is not None:
            out.append(SetLora(preset.loras))
        return [self._validated(c) for c in out]

    def _validated(self, command: StreamCommand) -> StreamCommand:
        if isinstance(command, SetPrompt):
            text = normalize_prompt(command.text)
            if not text:
                raise ControlError("the prompt is empty; send some text describing the look")
            if len(text) > MAX_PROMPT_CHARS:
                raise ControlError(f"the prompt is {len(text)} characters; at most {MAX_PROMPT_CHARS}")
            chunks = command.transition_chunks
            if chunks is not None and (
                isinstance(chunks, bool) or not isinstance(chunks, int) or not 0 <= chunks <= MAX_TRANSITION_CHUNKS
            ):
                raise ControlError(f"transition_chunks must be an integer in [0, {MAX_TRANSITION_CHUNKS}], got {chunks!r}")
            return SetPrompt(text, chunks)
        if isinstance(command, SetStrength):
            value = command.value
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not 0 <= value <= 1:
                raise ControlError(f"strength must be a number in [0, 1], got {value!r}")
            return SetStrength(float(value))
        if isinstance(command, SetSteps):
            value = command.value
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= self._max_steps:
                raise ControlError(f"steps must be an integer in [1, {self._max_steps}], got {value!r}")
            return command
        if isinstance(command, SetSeed):
            value = command.value
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEED:
                raise ControlError(f"seed must be an integer in [0, 2**63), got {value!r}")
            return command
        if isinstance(command, SetBypass):
            if not isinstance(command.value, bool):
                raise ControlError(f"bypass must be true or false, got {command.value!r}")
            return command
        if isinstance(command, SetEffect):
            if command.value not in EFFECTS:
                raise ControlError(f"unknown effect {command.value!r}; valid: {', '.join(EFFECTS)}")
            return command
        if isinstance(command, SetDecoder):
            if command.value not in DECODERS:
                raise ControlError(f"unknown decoder {command.value!r}; valid: {', '.join(DECODERS)}")
            return command
        if isinstance(command, SetLora):
            return SetLora(_validated_loras(command.value))
        if isinstance(command, SetSize):
            w, h = command.width, command.height
            if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 16 and v % 16 == 0 for v in (w, h)):
                raise ControlError(f"size must be two multiples of 16 (>= 16), got {w!r}x{h!r}")
            return command
        return command

    @staticmethod
    def _update(params: Params, command: StreamCommand) -> Params:
        if isinstance(command, SetPrompt):
            changes: dict[str, Any] = {"prompt": command.text, "preset": None}
            return dataclasses.replace(params, **changes)
        if isinstance(command, SetStrength):
            return dataclasses.replace(params, strength=command.value)
        if isinstance(command, SetSteps):
            return dataclasses.replace(params, steps=command.value)
        if isinstance(command, SetSeed):
            return dataclasses.replace(params, seed=command.value)
        if isinstance(command, SetBypass):
            return dataclasses.replace(params, bypass=bool(command.value))
        if isinstance(command, SetEffect):
            return dataclasses.replace(params, effect=command.value)
        if isinstance(command, SetLora):
            return dataclasses.replace(params, loras=command.value)
        if isinstance(command, Stop):
            return dataclasses.replace(params, stopped=True)
        return params

    def _check(self, params: Params) -> None:
        for command in (
            SetPrompt(params.prompt, params.transition_chunks),
            SetStrength(params.strength),
            SetSeed(params.seed),
            SetBypass(params.bypass),
            SetEffect(params.effect),
            SetLora(params.loras),
        ):
            self._validated(command)
        if isinstance(params.steps, bool) or not isinstance(params.steps, int) or params.steps < 1:
            raise ControlError(f"steps must be an integer >= 1, got {params.steps!r}")


def _validated_loras(value: object) -> tuple[LoraRef, ...]:
    """``SetLora``'s value checked: at most ``MAX_LORAS`` distinct names, finite scales within ``MAX_LORA_SCALE``."""
    if not isinstance(value, (tuple, list)):
        raise ControlError(f"loras must be a list of {{name, scale}}, got {value!r}")
    if len(value) > MAX_LORAS:
        raise ControlError(f"{len(value)} LoRAs given; at most {MAX_LORAS} at once")
    out: list[LoraRef] = []
    for ref in value:
        if not isinstance(ref, LoraRef):
            raise ControlError(f"not a LoRA reference: {ref!r}")
        name = ref.name.strip() if isinstance(ref.name, str) else ""
        if not name or len(name) > MAX_LORA_NAME or not name.isprintable():
            raise ControlError(f"LoRA name must be printable text of 1..{MAX_LORA_NAME} characters, got {ref.name!r}")
        scale = ref.scale
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) or abs(scale) > MAX_LORA_SCALE:
            raise ControlError(f"LoRA {name!r}: scale must be a number in [-{MAX_LORA_SCALE:g}, {MAX_LORA_SCALE:g}], got {scale!r}")
        if any(r.name == name for r in out):
            raise ControlError(f"LoRA {name!r} is listed twice; give it once with the summed scale")
        out.append(LoraRef(name, float(scale)))
    return tuple(out)
