"""Wiring helpers: the controller from the config and the command sources around a stream."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from livestyle.config import config_from_dict
from livestyle.control.setup import Controls, build_controller, obs_settings
from livestyle.errors import ConfigError
from livestyle.engine.commands import SetPrompt


def test_controller_from_config_selects_the_start_preset() -> None:
    sent: list[object] = []
    cfg = config_from_dict({"model": {"prompt": "p", "strength": 0.3}, "presets": {"start": "anime"}})
    controller = build_controller(cfg, sent.append)
    assert controller.params.preset == "anime"
    assert isinstance(sent[0], SetPrompt) and sent[0].text.startswith("anime style")
    plain = build_controller(config_from_dict({"model": {"prompt": "p", "strength": 0.3}}), sent.append, bypass=True)
    assert (plain.params.prompt, plain.params.strength, plain.params.bypass) == ("p", 0.3, True)


def test_preset_paths_and_unknown_start(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("presets:\n  - name: one\n    prompt: first look\n")
    cfg = config_from_dict({"presets": {"file": str(path)}})
    assert build_controller(cfg, lambda c: None).presets.names == ("one",)
    with pytest.raises(ConfigError, match="unknown preset 'two'; valid: 1:one"):  # a bad option at start: exit 2
        build_controller(config_from_dict({"presets": {"file": str(path), "start": "two"}}), lambda c: None)


def test_controls_start_the_obs_bridge_when_enabled() -> None:
    pytest.importorskip("obswebsocket")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = config_from_dict({"obs": {"enabled": True, "port": port, "scene_presets": {"Gaming": "cyberpunk"}}})
    assert obs_settings(cfg.obs).scene_presets == {"Gaming": "cyberpunk"}
    controller = build_controller(cfg, lambda c: None)
    with Controls(controller, cfg, terminal=False) as controls:
        stats = controls.stats()
        assert stats["obs"]["state"] == "connecting" and stats["terminal_hotkeys"] is False
    assert controls.bridge is not None and controls.bridge.state == "stopped"
    off = Controls(controller, config_from_dict({}), terminal=False)
    assert off.start().stats()["obs"] is None
    off.stop()
