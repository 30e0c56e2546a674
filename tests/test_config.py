"""The typed config: defaults, YAML files, --set overrides and one-line errors."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from livestyle.config import (
    Config,
    ModelConfig,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    load_config,
    parse_size,
    round_size,
)
from livestyle.errors import ConfigError
from livestyle.generators import GENERATORS, open_generator
from livestyle.engine.passthrough import PassthroughGenerator

REPO = Path(__file__).resolve().parents[1]


def test_default_yaml_is_exactly_the_built_in_defaults() -> None:
    import yaml

    assert load_config(REPO / "configs" / "default.yaml") == Config()
    # every key in the file exists (no stale keys) and every section is documented there
    data = yaml.safe_load((REPO / "configs" / "default.yaml").read_text())
    assert set(data) == set(config_to_dict(Config()))


def test_file_then_overrides_win(tmp_path: Path) -> None:
    path = tmp_path / "my.yaml"
    path.write_text("model:\n  steps: 3\n  prompt: ink sketch\nstream:\n  size: [640, 480]\n")
    cfg = load_config(path, ["model.steps=4", "stream.fps=25", "server.token=null", "obs.enabled=true"])
    assert cfg.model.steps == 4 and cfg.model.prompt == "ink sketch"
    assert cfg.stream.size == (640, 480) and cfg.stream.fps == 25.0
    assert cfg.server.token is None and cfg.obs.enabled is True
    assert isinstance(cfg.stream.fps, float)


def test_override_values_are_yaml_scalars() -> None:
    cfg = load_config(None, ["model.prompt=a cat: in space", "server.token='123'", "stream.max_frames=10"])
    assert cfg.model.prompt == "a cat: in space"
    assert cfg.server.token == "123"
    assert cfg.stream.max_frames == 10


def test_apply_overrides_on_a_built_config() -> None:
    cfg = apply_overrides(Config(), ["model.name=tiny", "effects.mode=background"])
    assert cfg.model.name == "tiny" and cfg.effects.mode == "background"
    assert dataclasses.replace(cfg.model, steps=1).steps == 1


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.stepz=1", "unknown config key 'model.stepz'; keys in model: name, prompt, strength, steps,"),
        ("modle.steps=1", "unknown config key 'modle.steps'; sections: stream, model, runner, governor, recording, server, obs, effects, presets"),
        ("model.steps=0", "model.steps: expected an integer >= 1 and <= 8, got 0"),
        ("model.steps=two", "model.steps: expected an integer >= 1 and <= 8, got 'two'"),
        ("model.strength=1.5", "model.strength: expected a number >= 0.0 and <= 1.0, got 1.5"),
        ("model.vae=huge", "model.vae: expected one of wan, tiny-decoder, tiny, full, got 'huge'"),
        ("model.dtype=int8", "model.dtype: expected one of bfloat16, float16, float32, got 'int8'"),
        ("model.device=gpu", "model.device: expected auto, cpu, cuda, cuda:N or mps, got 'gpu'"),
        ("stream.pace=maybe", "stream.pace: expected true or false, got 'maybe'"),
        ("stream.max_frames=0", "stream.max_frames: expected an integer >= 1 or null, got 0"),
        ("stream.fps=0", "stream.fps: expected a number >= 1 and <= 240, got 0"),
        ("stream.fps=0.0001", "stream.fps: expected a number >= 1 and <= 240, got 0.0001"),
        ("stream.size=big", "stream.size: expected WIDTHxHEIGHT such as 832x480, got 'big'"),
        ("stream.size=0x480", "stream.size: width and height must be between 1 and 8192, got 0x480"),
        ("server.port=70000", "server.port: expected an integer >= 1 and <= 65535, got 70000"),
        ("stream=1", "config key 'stream' is a section; set one of: size, aspect, fps, max_frames, pace, loop"),
        ("model.steps.x=1", "unknown config key 'model.steps.x'; model.steps has no sub-keys"),
        ("model.steps", "--set expects key.path=value (e.g. model.steps=2), got 'model.steps'"),
    ],
)
def test_bad_values_are_one_line_errors(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, [override])
    text = str(info.value)
    assert text.startswith(message), text
    assert "\n" not in text


def test_bad_files_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config file '.*nope.yaml' not found"):
        load_config(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("model:\n  steps: [1,\n")
    with pytest.raises(ConfigError, match=r"is not valid YAML at line \d+"):
        load_config(broken)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping of sections at the top"):
        load_config(listy)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("model:\n  prompts: x\n")
    with pytest.raises(ConfigError, match="unknown config key 'model.prompts'"):
        load_config(unknown)


def test_odd_sizes_round_to_multiples_of_16_with_a_note() -> None:
    notes: list[str] = []
    cfg = load_config(None, ["stream.size=650x490"], on_note=notes.append)
    assert cfg.stream.size == (656, 496)
    assert notes == ["stream.size 650x490 rounded to 656x496 (the model takes multiples of 16)"]
    notes.clear()
    assert load_config(None, ["stream.size=640x480"], on_note=notes.append).stream.size == (640, 480)
    assert notes == []


def test_size_helpers() -> None:
    assert parse_size("1280X720") == (1280, 720)
    assert parse_size([64, 32]) == (64, 32)
    assert round_size((7, 1000)) == (16, 1008)
    assert round_size((24, 8)) == (32, 16)


def test_round_trip_through_plain_dicts() -> None:
    cfg = load_config(None, ["stream.size=320x240", "model.seed=7"])
    assert config_from_dict(config_to_dict(cfg)) == cfg


def test_every_field_has_a_doc_line() -> None:
    def walk(obj: object, prefix: str) -> None:
        for f in dataclasses.fields(obj):  # type: ignore[arg-type]
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value):
                walk(value, f"{prefix}{f.name}.")
            else:
                assert f.metadata.get("doc"), f"{prefix}{f.name} has no doc"

    walk(Config(), "")


def test_open_generator_registry() -> None:
    gen = open_generator("passthrough", load_config(None, ["model.prompt=oil paint"]))
    assert isinstance(gen, PassthroughGenerator) and gen.stats()["prompt"] == "oil paint"
    with pytest.raises(ConfigError, match=r"unknown model 'sdv9'; valid models: .*passthrough"):
        open_generator("sdv9", Config())


def test_the_registry_imports_the_diffusion_pipeline_only_when_a_model_needs_it() -> None:
    code = ("import sys, livestyle.generators as g; from livestyle.config import Config; "
            "g.open_generator('passthrough', Config()); "
            "print(sorted(m for m in sys.modules if m.startswith(('livestyle.diffusion', 'torch'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    assert set(GENERATORS) >= {"passthrough", "tiny", "sdv2-1.3b", "sdv2-14b", "krea-14b"}
    assert ModelConfig().name == "auto"  # resolved by livestyle.planning.auto before open_generator


def test_mapping_fields_take_yaml_mappings_and_text_stays_text() -> None:
    cfg = load_config(None, ["obs.scene_presets={Live: neon, BRB: calm}", "model.prompt=style: ink, mood: calm"])
    assert cfg.obs.scene_presets == {"Live": "neon", "BRB": "calm"}
    assert cfg.model.prompt == "style: ink, mood: calm"
    with pytest.raises(ConfigError, match=r"^obs.scene_presets: expected a mapping of a string to a string, got 3$"):
        load_config(None, ["obs.scene_presets=3"])
