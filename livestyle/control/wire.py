"""The JSON form of commands, shared by every remote command source.

The OBS Lua script, Stream Deck / Touch Portal (through obs-websocket's ``BroadcastCustomEvent``),
chat bots and the ``/api/events`` WebSocket all send the same small objects::

    {"command": "preset", "number": 3}            # 1-based, as hotkeys count
    {"command": "preset", "name": "anime"}
    {"command": "next"}    {"command": "previous"}
    {"command": "prompt", "text": "a pencil sketch", "transition_chunks": 2}
    {"command": "strength", "value": 0.5}   {"command": "steps", "value": 2}
    {"command": "seed", "value": 7}         {"command": "effect", "value": "background"}
    {"command": "bypass"}                    # toggle; or "value": true / false
    {"command": "reset"}
    {"command": "lora", "name": "ink-wash", "scale": 0.8}   # exactly this LoRA from the next chunk
    {"command": "lora", "loras": [{"name": "ink-wash", "scale": 0.8}, "film-grain:0.5"]}
    {"command": "lora", "loras": []}         # no LoRA

Over OBS the object sits under a ``"livestyle"`` key of the custom event's data, so other tools'
events pass by untouched. ``PATCH /api/params`` takes the flat form in :func:`commands_from_fields`.
Stopping the stream is deliberately not available remotely.

Values are type-checked here; ranges are checked by the :class:`~livestyle.control.controller.Controller`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from livestyle.errors import ControlError
from livestyle.engine.commands import (
    Command,
    LoraRef,
    NextPreset,
    PreviousPreset,
    Reset,
    SelectPreset,
    SetBypass,
    SetEffect,
    SetLora,
    SetPrompt,
    SetSeed,
    SetSteps,
    SetStrength,
)

__all__ = [
    "command_from_message",
    "command_from_custom_event",
    "commands_from_fields",
    "custom_event_payload",
    "EVENT_KEY",
    "COMMAND_NAMES",
    "PARAM_FIELDS",
]

EVENT_KEY = "livestyle"
"""Key under which our command travels in an OBS CustomEvent's data."""

COMMAND_NAMES = ("preset", "next", "previous", "prompt", "strength", "steps", "seed", "effect", "bypass", "reset", "lora")

PARAM_FIELDS = ("prompt", "transition_chunks", "strength", "steps", "seed", "bypass", "effect", "preset", "loras")
"""Keys ``PATCH /api/params`` accepts."""


def _number(value: Any, what: str) -> float:
    """``value`` as sent (an int stays an int, so a range error quotes it as typed: ``got 2``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ControlError(f"{what} must be a number, got {value!r}")
    return value


def _integer(value: Any, what: str) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ControlError(f"{what} must be an integer, got {value!r}")
    return value


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ControlError(f"{what} must be text, got {value!r}")
    return value


def _optional_int(value: Any, what: str) -> int | None:
    return None if value is None else _integer(value, what)


def _lora(item: Any, what: str) -> LoraRef:
    """``"NAME"``, ``"NAME:SCALE"`` or ``{"name": NAME, "scale": SCALE}``."""
    from livestyle.engine.commands import parse_lora_ref

    if isinstance(item, str):
        return parse_lora_ref(item)
    if isinstance(item, Mapping):
        _check_keys(item, ("name", "scale"), what)
        if "name" not in item:
            raise ControlError(f"{what} needs 'name'")
        return LoraRef(_text(item["name"], f"{what}: 'name'"), _number(item.get("scale", 1.0), f"{what}: 'scale'"))
    raise ControlError(f"{what}: a LoRA is \"NAME[:SCALE]\" or {{\"name\": ..., \"scale\": ...}}, got {item!r}")


def _loras(value: Any, what: str) -> SetLora:
    if value is None:
        return SetLora(())
    if not isinstance(value, list):
        raise ControlError(f"{what} must be a list of LoRAs (or null for none), got {value!r}")
    return SetLora(tuple(_lora(item, what) for item in value))


def _check_keys(message: Mapping[str, Any], allowed: tuple[str, ...], what: str) -> None:
    extra = sorted(set(message) - set(allowed))
    if extra:
        raise ControlError(f"{what}: unknown field(s) {', '.join(map(repr, extra))}; valid: {', '.join(allowed)}")


def command_from_message(message: Any) -> Command:
    """One command from its JSON object (see the module docstring); :class:`ControlError` if malformed."""
    if not isinstance(message, Mapping):
        raise ControlError(f"a command must be a JSON object like {{\"command\": \"next\"}}, got {message!r}")
    name = message.get("command")
    if name not in COMMAND_NAMES:
        raise ControlError(f"unknown command {name!r}; valid: {', '.join(COMMAND_NAMES)}")
    what = f"command {name!r}"
    if name == "preset":
        _check_keys(message, ("command", "name", "number"), what)
        if ("name" in message) == ("number" in message):
            raise ControlError(f"{what} needs exactly one of 'name' or 'number' (1-based)")
        if "name" in message:
            return SelectPreset(_text(message["name"], f"{what}: 'name'"))
        return SelectPreset(_integer(message["number"], f"{what}: 'number'") - 1)
    if name in ("next", "previous", "reset"):
        _check_keys(message, ("command",), what)
        return {"next": NextPreset, "previous": PreviousPreset, "reset": Reset}[name]()
    if name == "prompt":
        _check_keys(message, ("command", "text", "transition_chunks"), what)
        if "text" not in message:
            raise ControlError(f"{what} needs 'text'")
        return SetPrompt(
            _text(message["text"], f"{what}: 'text'"),
            _optional_int(message.get("transition_chunks"), f"{what}: 'transition_chunks'"),
        )
    if name == "lora":
        _check_keys(message, ("command", "name", "scale", "loras"), what)
        if ("name" in message) == ("loras" in message):
            raise ControlError(f"{what} needs exactly one of 'name' (with an optional 'scale') or 'loras' (a list; [] for none)")
        if "loras" in message:
            if "scale" in message:
                raise ControlError(f"{what}: 'scale' goes inside each entry of 'loras'")
            return _loras(message["loras"], f"{what}: 'loras'")
        return SetLora((_lora({k: message[k] for k in ("name", "scale") if k in message}, what),))
    if name == "bypass":
        _check_keys(message, ("command", "value"), what)
        value = message.get("value")
        if value is not None and not isinstance(value, bool):
            raise ControlError(f"{what}: 'value' must be true, false or absent (toggle), got {value!r}")
        return SetBypass(value)
    _check_keys(message, ("command", "value"), what)
    if "value" not in message:
        raise ControlError(f"{what} needs 'value'")
    value = message["value"]
    if name == "strength":
        return SetStrength(_number(value, f"{what}: 'value'"))
    if name == "steps":
        return SetSteps(_integer(value, f"{what}: 'value'"))
    if name == "seed":
        return SetSeed(_integer(value, f"{what}: 'value'"))
    return SetEffect(_text(value, f"{what}: 'value'"))  # type: ignore[arg-type]


def command_from_custom_event(event_data: Any) -> Command | None:
    """Our command inside an OBS CustomEvent's data; ``None`` when the event is someone else's.

    Raises :class:`ControlError` when the event is addressed to us (has the ``"livestyle"`` key)
    but malformed.
    """
    if not isinstance(event_data, Mapping) or EVENT_KEY not in event_data:
        return None
    return command_from_message(event_data[EVENT_KEY])


def custom_event_payload(message: Mapping[str, Any]) -> dict[str, Any]:
    """The ``eventData`` for ``BroadcastCustomEvent`` carrying ``message`` (validated first)."""
    command_from_message(message)
    return {EVENT_KEY: dict(message)}


def commands_from_fields(fields: Any) -> list[Command]:
    """Commands for a flat ``PATCH /api/params`` body, e.g. ``{"prompt": "...", "strength": 0.5}``.

    ``preset`` (a name, or a 1-based number) applies first so explicit fields in the same body win;
    ``transition_chunks`` only qualifies ``prompt``.
    """
    if not isinstance(fields, Mapping) or not fields:
        raise ControlError(f"expected a non-empty JSON object with any of: {', '.join(PARAM_FIELDS)}")
    _check_keys(fields, PARAM_FIELDS, "params")
    out: list[Command] = []
    if "preset" in fields:
        key = fields["preset"]
        if isinstance(key, str):
            out.append(SelectPreset(key))
        else:
            out.append(SelectPreset(_integer(key, "'preset' (a name or 1-based number)") - 1))
    if "transition_chunks" in fields and "prompt" not in fields:
        raise ControlError("'transition_chunks' only applies together with 'prompt'")
    if "prompt" in fields:
        out.append(
            SetPrompt(
                _text(fields["prompt"], "'prompt'"),
                _optional_int(fields.get("transition_chunks"), "'transition_chunks'"),
            )
        )
    if "strength" in fields:
        out.append(SetStrength(_number(fields["strength"], "'strength'")))
    if "steps" in fields:
        out.append(SetSteps(_integer(fields["steps"], "'steps'")))
    if "seed" in fields:
        out.append(SetSeed(_integer(fields["seed"], "'seed'")))
    if "bypass" in fields:
        value = fields["bypass"]
        if value is not None and not isinstance(value, bool):
            raise ControlError(f"'bypass' must be true, false or null (toggle), got {value!r}")
        out.append(SetBypass(value))
    if "effect" in fields:
        out.append(SetEffect(_text(fields["effect"], "'effect'")))  # type: ignore[arg-type]
    if "loras" in fields:
        out.append(_loras(fields["loras"], "'loras'"))
    return out
