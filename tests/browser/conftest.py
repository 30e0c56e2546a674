"""Fixtures of the WebRTC tests: a private network namespace and (for browser tests) Chromium."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from chromium import Chromium, chromium_path
from fake_camera import write_fake_camera
from netns import NetnsRunner, netns_unavailable_reason


@pytest.fixture(scope="module")
def netns() -> Iterator[NetnsRunner]:
    """A worker thread in a fresh network namespace (lo with 127.0.0.1 and 127.0.0.2)."""
    reason = netns_unavailable_reason()
    if reason:
        pytest.skip(f"no network namespace: {reason}")
    runner = NetnsRunner()
    yield runner
    runner.close()


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
