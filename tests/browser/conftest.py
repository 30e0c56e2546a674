"""Fixtures of the browser tests: Chromium and its fake camera (the ``netns`` fixture they run in is
in tests/conftest.py, shared with tests/test_audio_webrtc.py)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from chromium import Chromium, chromium_path
from fake_camera import write_fake_camera
from netns import NetnsRunner


@pytest.fixture(scope="module")
def fake_camera(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """90 numbered 320x240 frames (3 s loop) for Chromium's fake camera."""
    return write_fake_camera(tmp_path_factory.mktemp("camera") / "fake.y4m", width=320, height=240, frames=90)


@pytest.fixture(scope="module")
def browser(netns: NetnsRunner, fake_camera: Path) -> Iterator[Chromium]:
    """Headless Chromium started inside the namespace."""
    if chromium_path() is None:
        pytest.skip("Debian chromium is not installed (apt-get install -y chromium)")
    chrome = netns.run(Chromium, fake_camera)
    yield chrome
    netns.run(chrome.close)
