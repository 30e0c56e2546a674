"""Presets, the JSON command form and the controller: resolution, validation, snapshots, listeners."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from livestyle.control.controller import Controller, Params
from livestyle.control.presets import (
    DEFAULT_PRESETS_FILE,
    Preset,
    PresetBook,
    UnknownPresetError,
    load_presets,
    parse_presets,
)
from livestyle.control.wire import (
    command_from_custom_event,
    command_from_message,
    commands_from_fields,
    custom_event_payload,
)
from livestyle.errors import ConfigError, ControlError
from livestyle.engine.commands import (
    NextPreset,
    PreviousPreset,
    Reset,
    SelectPreset,
    SetBypass,
    SetDecoder,
    SetEffect,
    SetPrompt,
    SetSeed,
    SetSize,
    SetSteps,
    SetStrength,
    Stop,
)

BOOK = PresetBook(
    [
        Preset("ink", "an ink drawing", strength=0.5, steps=2, seed=1, transition_chunks=3),
        Preset("neon", "neon city at night", strength=0.7),
        Preset("clay", "claymation figures", steps=9),
    ]
)


def make(book: PresetBook = BOOK, **kw: object) -> tuple[Controller, list[object]]:
    sent: list[object] = []
    initial = Params(prompt="start", strength=0.6, steps=2, seed=42)
    return Controller(book, sent.append, initial, **kw), sent  # type: ignore[arg-type]


# -- presets ---------------------------------------------------------------------------------


def test_bundled_presets_load_and_have_unique_prompts() -> None:
    book = load_presets()
    assert 6 <= len(book) <= 9
    assert len(book.prompts) == len(book)
    assert all(0 < p.strength <= 1 for p in book if p.strength is not None)
    assert book.get("ANIME").name == "anime"  # case-insensitive
    assert load_presets(DEFAULT_PRESETS_FILE.parent).names == book.names  # a folder works too


def test_defaults_apply_and_fields_may_be_left_out() -> None:
    text = "defaults:\n  transition_chunks: 5\n  strength: 0.4\npresets:\n  - name: a\n    prompt: x\n  - name: b\n    prompt: y\n    strength: 0.9\n"
    a, b = parse_presets(text, "t.yaml")
    assert a == Preset("a", "x", strength=0.4, transition_chunks=5)
    assert b.strength == 0.9 and b.steps is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("presets:\n  - name: a\n    prompt: x\n    strenght: 0.5\n", "t.yaml:4: preset 'a': unknown key 'strenght'"),
        ("presets:\n  - name: a\n    prompt: x\n    strength: high\n", "t.yaml:4: preset 'a': 'strength' must be a number in [0, 1], got 'high'"),
        ("presets:\n  - name: a\n    prompt: x\n    strength: 1.5\n", "t.yaml:4: preset 'a': 'strength' must be a number in [0, 1]"),
        ("presets:\n  - name: a\n    prompt: x\n    steps: 0\n", "t.yaml:4: preset 'a': 'steps' must be an integer >= 1, got 0"),
        ("presets:\n  - name: a\n    prompt: x\n    seed: -1\n", "t.yaml:4: preset 'a': 'seed' must be an integer"),
        ("presets:\n  - name: a\n", "t.yaml:2: preset 'a': missing 'prompt'"),
        ("presets:\n  - prompt: x\n", "t.yaml:2: preset #1: missing 'name'"),
        ("presets:\n  - name: a\n    prompt: ''\n", "t.yaml:3: preset 'a': 'prompt' must be non-empty text"),
        ("presets:\n  - {name: a, prompt: x}\n  - {name: A, prompt: y}\n", "t.yaml:3: preset 'A': name 'A' already used by preset #1"),
        ("prests:\n  - name: a\n", "t.yaml:1: unknown key 'prests'; valid: defaults, presets"),
        ("presets: []\n", "t.yaml:1: 'presets' must be a non-empty list"),
        ("defaults:\n  name: x\npresets:\n  - {name: a, prompt: x}\n", "t.yaml:2: 'defaults': unknown key 'name'"),
        ("presets:\n  - name: a\n   prompt: x\n", "t.yaml:3: not valid YAML"),
        ("", "t.yaml: empty preset file"),
    ],
)
def test_preset_file_errors_name_file_line_and_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_presets(text, "t.yaml")
    assert str(info.value).startswith(message), str(info.value)
    assert "\n" not in str(info.value)


def test_load_presets_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: preset file not found"):
        load_presets(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match=r"no \*\.yaml preset files"):
        load_presets(tmp_path)


def test_book_lookup_errors_list_valid_presets() -> None:
    assert BOOK.get(1).name == "neon"
    assert BOOK.index_of(" Clay ") == 2
    with pytest.raises(UnknownPresetError, match=r"^unknown preset 'pixel'; valid: 1:ink, 2:neon, 3:clay$"):
        BOOK.get("pixel")
    with pytest.raises(UnknownPresetError, match=r"^no preset number 4 \(3 loaded\); valid: 1:ink"):
        BOOK.get(3)
    with pytest.raises(UnknownPresetError):
        BOOK.get(-1)


# -- wire format -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "command"),
    [
        ({"command": "preset", "number": 2}, SelectPreset(1)),
        ({"command": "preset", "name": "neon"}, SelectPreset("neon")),
        ({"command": "next"}, NextPreset()),
        ({"command": "previous"}, PreviousPreset()),
        ({"command": "reset"}, Reset()),
        ({"command": "bypass"}, SetBypass(None)),
        ({"command": "bypass", "value": True}, SetBypass(True)),
        ({"command": "prompt", "text": "x", "transition_chunks": 2}, SetPrompt("x", 2)),
        ({"command": "strength", "value": 0.25}, SetStrength(0.25)),
        ({"command": "steps", "value": 3}, SetSteps(3)),
        ({"command": "seed", "value": 9}, SetSeed(9)),
        ({"command": "effect", "value": "background"}, SetEffect("background")),
    ],
)
def test_wire_messages(message: dict[str, object], command: object) -> None:
    assert command_from_message(message) == command
    assert command_from_custom_event(custom_event_payload(message)) == command


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ("next", "a command must be a JSON object"),
        ({"command": "stop"}, "unknown command 'stop'; valid: preset, next"),
        ({"command": "preset"}, "command 'preset' needs exactly one of 'name' or 'number'"),
        ({"command": "preset", "number": "two"}, "command 'preset': 'number' must be an integer, got 'two'"),
        ({"command": "strength"}, "command 'strength' needs 'value'"),
        ({"command": "strength", "value": "x"}, "command 'strength': 'value' must be a number"),
        ({"command": "bypass", "value": 1}, "command 'bypass': 'value' must be true, false or absent"),
        ({"command": "next", "x": 1}, "command 'next': unknown field(s) 'x'"),
    ],
)
def test_wire_rejects_malformed(message: object, error: str) -> None:
    with pytest.raises(ControlError) as info:
        command_from_message(message)
    assert str(info.value).startswith(error), str(info.value)


def test_custom_events_of_other_tools_are_not_ours() -> None:
    assert command_from_custom_event({"streamdeck": {"button": 3}}) is None
    assert command_from_custom_event(["not", "a", "dict"]) is None
    with pytest.raises(ControlError):
        command_from_custom_event({"livestyle": {"command": "explode"}})


def test_fields_to_commands() -> None:
    cmds = commands_from_fields({"strength": 0.3, "preset": "ink", "prompt": "p", "transition_chunks": 1})
    assert cmds == [SelectPreset("ink"), SetPrompt("p", 1), SetStrength(0.3)]
    assert commands_from_fields({"preset": 2}) == [SelectPreset(1)]
    with pytest.raises(ControlError, match="unknown field\\(s\\) 'strenght'"):
        commands_from_fields({"strenght": 1})
    with pytest.raises(ControlError, match="only applies together with 'prompt'"):
        commands_from_fields({"transition_chunks": 2})
    with pytest.raises(ControlError, match="non-empty JSON object"):
        commands_from_fields([])


# -- controller ------------------------------------------------------------------------------


def test_select_preset_resolves_into_concrete_commands() -> None:
    controller, sent = make()
    params = controller.apply(SelectPreset("ink"))
    assert sent == [SetPrompt("an ink drawing", 3), SetStrength(0.5), SetSteps(2), SetSeed(1)]
    assert (params.prompt, params.strength, params.steps, params.seed, params.preset) == ("an ink drawing", 0.5, 2, 1, "ink")
    sent.clear()
    controller.apply(SelectPreset(1))  # only the fields the preset sets
    assert sent == [SetPrompt("neon city at night", None), SetStrength(0.7)]
    assert controller.params.steps == 2 and controller.params.preset == "neon"


def test_steps_of_a_preset_are_capped_at_the_family_maximum() -> None:
    controller, sent = make(max_steps=4)
    controller.apply(SelectPreset("clay"))
    assert SetSteps(4) in sent


def test_next_and_previous_wrap_and_follow_the_last_selection() -> None:
    controller, _ = make()
    assert controller.apply(NextPreset()).preset == "ink"
    assert controller.apply(NextPreset()).preset == "neon"
    controller.apply(SetPrompt("typed by hand"))
    assert controller.params.preset is None
    assert controller.apply(NextPreset()).preset == "clay"
    assert controller.apply(NextPreset()).preset == "ink"
    assert controller.apply(PreviousPreset()).preset == "clay"
    fresh, _ = make()
    assert fresh.apply(PreviousPreset()).preset == "clay"


def test_runtime_commands_pass_through_validated() -> None:
    controller, sent = make()
    controller.apply(SetDecoder("tiny"), SetSize(640, 480))
    assert sent == [SetDecoder("tiny"), SetSize(640, 480)]


def test_bypass_toggle_becomes_explicit() -> None:
    controller, sent = make()
    controller.apply(SetBypass(None))
    controller.apply(SetBypass(None))
    assert sent == [SetBypass(True), SetBypass(False)]


@pytest.mark.parametrize(
    ("command", "error"),
    [
        (SetStrength(1.5), "strength must be a number in [0, 1], got 1.5"),
        (SetStrength(float("nan")), "strength must be a number in [0, 1]"),
        (SetSteps(0), "steps must be an integer in [1, 8], got 0"),
        (SetSteps(9), "steps must be an integer in [1, 8], got 9"),
        (SetSeed(-3), "seed must be an integer in [0, 2**63), got -3"),
        (SetPrompt("   "), "the prompt is empty"),
        (SetPrompt("x" * 3000), "the prompt is 3000 characters; at most 2000"),
        (SetPrompt("x", -1), "transition_chunks must be an integer in [0, 1000], got -1"),
        (SetEffect("sepia"), "unknown effect 'sepia'; valid: full, background, person"),  # type: ignore[arg-type]
        (SelectPreset("nope"), "unknown preset 'nope'; valid: 1:ink, 2:neon, 3:clay"),
        (SetDecoder("huge"), "unknown decoder 'huge'; valid: wan, tiny-decoder, tiny"),  # type: ignore[arg-type]
        (SetSize(640, 479), "size must be two multiples of 16 (>= 16), got 640x479"),
    ],
)
def test_invalid_values_raise_one_line_errors_and_submit_nothing(command: object, error: str) -> None:
    controller, sent = make()
    before = controller.params
    with pytest.raises(ControlError) as info:
        controller.apply(SetStrength(0.1), command)  # type: ignore[arg-type]
    assert str(info.value) == error or str(info.value).startswith(error)
    assert sent == [] and controller.params == before


def test_listeners_see_every_change_and_can_be_removed() -> None:
    controller, _ = make()
    seen: list[tuple[Params, tuple[object, ...]]] = []
    remove = controller.add_listener(lambda p, applied: seen.append((p, applied)))
    controller.apply(SetStrength(0.2), Reset())
    assert seen[-1][0].strength == 0.2 and seen[-1][1] == (SetStrength(0.2), Reset())
    controller.apply(Stop())
    assert seen[-1][0].stopped
    remove()
    controller.apply(SetSeed(5))
    assert len(seen) == 2


def test_a_failing_listener_does_not_break_control() -> None:
    controller, sent = make()

    def broken(_p: Params, _a: tuple[object, ...]) -> None:
        raise RuntimeError("boom")

    controller.add_listener(broken)
    assert controller.apply(SetSeed(3)).seed == 3
    assert sent == [SetSeed(3)]


def test_concurrent_sources_never_interleave_a_preset() -> None:
    sent: list[object] = []
    controller = Controller(BOOK, sent.append, Params("s", 0.5, 2, 1))  # type: ignore[arg-type]

    def hammer(key: str) -> None:
        for _ in range(200):
            controller.apply(SelectPreset(key))

    threads = [threading.Thread(target=hammer, args=(k,)) for k in ("ink", "neon")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # every SetPrompt of "ink" is followed by exactly its three companions
    for i, command in enumerate(sent):
        if command == SetPrompt("an ink drawing", 3):
            assert sent[i + 1 : i + 4] == [SetStrength(0.5), SetSteps(2), SetSeed(1)]
    assert len(sent) == 200 * 4 + 200 * 2


def test_initial_params_are_validated() -> None:
    with pytest.raises(ControlError, match="strength must be a number in \\[0, 1\\]"):
        Controller(BOOK, lambda c: None, Params("x", 2.0, 2, 1))
    with pytest.raises(UnknownPresetError):
        Controller(BOOK, lambda c: None, Params("x", 0.5, 2, 1, preset="zzz"))
