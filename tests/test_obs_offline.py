"""The OBS bridge without OBS: it keeps trying quietly, reports its state and never blocks."""

from __future__ import annotations

import logging
import sys
import time

import pytest
from host_helpers import free_tcp_port

from livestyle.control.controller import Controller, Params
from livestyle.control.obs_bridge import ObsBridge, ObsSettings
from livestyle.control.presets import Preset, PresetBook
from livestyle.errors import ConfigError, ControlError

BOOK = PresetBook([Preset("ink", "an ink drawing"), Preset("neon", "neon city")])


def make_controller() -> Controller:
    return Controller(BOOK, lambda command: None, Params("start", 0.5, 2, 1))


def test_obs_not_running_keeps_trying_quietly(caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("obswebsocket")
    settings = ObsSettings(port=free_tcp_port(), password="pw", backoff_min=0.05, backoff_max=0.2)
    bridge = ObsBridge(make_controller(), settings)
    with caplog.at_level(logging.DEBUG, logger="livestyle.control.obs_bridge"):
        bridge.start()  # returns at once
        assert bridge.state == "connecting"
        time.sleep(1.2)
        stats = bridge.stats()
        bridge.stop()
    assert stats["state"] == "connecting" and stats["connects"] == 0
    assert 3 <= stats["attempts"] <= 30  # backing off, not a storm
    assert stats["last_error"].startswith(f"OBS not reachable at ws://127.0.0.1:{settings.port}")
    infos = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert len(infos) == 1 and "retrying quietly" in infos[0].getMessage()  # one line, then quiet
    assert bridge.state == "stopped"
    with pytest.raises(ControlError, match="OBS did not answer at ws://127.0.0.1"):
        fresh = ObsBridge(make_controller(), settings)
        fresh.start()
        try:
            fresh.wait_connected(0.3)
        finally:
            fresh.stop()


def test_mappings_are_checked_against_the_presets() -> None:
    with pytest.raises(ControlError) as info:
        ObsBridge(make_controller(), ObsSettings(scene_presets={"Gaming": "ink", "Chat": "pixel"}))
    assert str(info.value) == "obs.scene_presets['Chat']: unknown preset 'pixel'; valid: 1:ink, 2:neon"
    with pytest.raises(ControlError, match=r"^obs.item_presets\['x'\]: unknown preset"):
        ObsBridge(make_controller(), ObsSettings(item_presets={"x": "y"}))


def test_missing_client_library_gives_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "obswebsocket", None)
    bridge = ObsBridge(make_controller(), ObsSettings())
    with pytest.raises(ConfigError, match=r"^the OBS bridge needs obs-websocket-py: pip install 'livestyle\[obs\]'"):
        bridge.start()
    assert bridge.state == "stopped"
