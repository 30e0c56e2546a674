"""The page in real headless Chromium: camera in, processed video out, WHEP viewer page, auth.

Chromium's fake camera plays a y4m whose frames carry their number; the page samples fixed points
of its input preview and of the output (``?probe=1``), so the test matches each output frame with
the input frame it came from and checks the pixels are the pipeline's.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
from chromium import Chromium
from fake_camera import QUADRANT_COLOURS, decode_probe
from netns import NetnsRunner
from stack import InvertGenerator, Stack

from livestyle.engine.passthrough import PassthroughGenerator
from livestyle.server.app import ServerSettings

pytestmark = pytest.mark.browser

REPORT = "Promise.resolve(window.livestyle && window.livestyle.report())"


def matched_pairs(report: dict[str, Any], *, inverted: bool) -> list[tuple[float, np.ndarray, np.ndarray]]:
    """(latency ms, input quadrant colours, output quadrant colours) for output frames whose
    number appears in the input preview shortly before."""
    inputs: dict[int, list[tuple[float, np.ndarray]]] = {}
    for t, samples in report["inProbe"]:
        index, colours = decode_probe(samples)
        inputs.setdefault(index, []).append((t, colours))
    pairs = []
    for t, samples in report["outProbe"]:
        index, colours = decode_probe(samples, inverted=inverted)
        candidates = [(ti, ci) for ti, ci in inputs.get(index, []) if 0 <= t - ti < 2000]
        if candidates:
            ti, ci = max(candidates, key=lambda c: c[0])
            pairs.append((t - ti, ci, colours))
    return pairs


def stream_through_page(netns: NetnsRunner, browser: Chromium, generator: Any, codec: str = "vp8"
                        ) -> tuple[dict[str, Any], dict[str, Any], int]:
    """Open the page, let it publish and receive, open /view beside it; then close the page."""

    def scenario() -> tuple[dict[str, Any], dict[str, Any], int]:
        stack = Stack(generator, ServerSettings(port=0, codec=codec, bitrate=1_000_000))
        try:
            page = browser.open(f"{stack.url}/?autostart=1&probe=1")
            browser.wait_for(page, f"({REPORT}).then(r => r && r.outFrames >= 45)", timeout=30)
            viewer = browser.open(f"{stack.url}/view?probe=1")
            browser.wait_for(viewer, f"({REPORT}).then(r => r && r.outFrames >= 30)", timeout=30)
            page_report = browser.evaluate(page, REPORT)
            viewer_report = browser.evaluate(viewer, REPORT)
            browser.close_tab(viewer)
            browser.close_tab(page)
            sessions = stack.server.sessions
            deadline = time.monotonic() + 15  # a closed tab must free its session
            while sessions.count() and time.monotonic() < deadline:
                time.sleep(0.1)
            return page_report, viewer_report, sessions.count()
        finally:
            stack.close()

    return netns.run(scenario)


def test_passthrough_page_round_trip_viewer_page_and_closed_tabs(netns: NetnsRunner, browser: Chromium) -> None:
    page, viewer, open_sessions = stream_through_page(netns, browser, PassthroughGenerator())
    assert page["error"] == "" and page["state"] == "connected", page["error"]
    assert page["inFrames"] >= 45 and page["outFrames"] >= 45
    assert (page["outWidth"], page["outHeight"]) == (320, 240)  # resolution kept
    pairs = matched_pairs(page, inverted=False)
    assert len(pairs) >= 20, f"only {len(pairs)} output frames matched an input frame"
    diffs = [np.abs(out - inp).mean() for _, inp, out in pairs]
    assert np.median(diffs) < 20, np.median(diffs)  # two lossy encodes, same picture
    latencies = [lat for lat, _, _ in pairs]
    assert 0 < np.median(latencies) < 1500, np.median(latencies)
    # the viewer page (WHEP) plays the same stream
    assert viewer["outFrames"] >= 30 and viewer["resource"].startswith("/whep/")
    _, colours = decode_probe(viewer["outProbe"][-1][1])
    assert np.abs(colours - np.array(QUADRANT_COLOURS)).max() < 40, colours
    assert open_sessions == 0


def test_inverting_generator_output_is_the_inverse_of_the_input_over_h264(netns: NetnsRunner, browser: Chromium) -> None:
    page, _, _ = stream_through_page(netns, browser, InvertGenerator(), codec="h264")
    assert page["receive"]["codec"] == "video/H264"
    pairs = matched_pairs(page, inverted=True)
    assert len(pairs) >= 20, f"only {len(pairs)} output frames matched an input frame"
    inverse = [np.abs(out - (255 - inp)).mean() for _, inp, out in pairs]
    same = [np.abs(out - inp).mean() for _, inp, out in pairs]
    assert np.median(inverse) < 20 < np.median(same), (np.median(inverse), np.median(same))


def test_page_without_the_token_is_refused(netns: NetnsRunner, browser: Chromium) -> None:
    def scenario() -> tuple[dict[str, Any], int]:
        stack = Stack(PassthroughGenerator(), ServerSettings(port=0, token="s3cret-token-for-test"))
        try:
            page = browser.open(f"{stack.url}/?autostart=1")
            report = browser.wait_for(page, f"({REPORT}).then(r => r && r.error ? r : null)", timeout=20)
            browser.close_tab(page)
            return report, stack.server.sessions.count()
        finally:
            stack.close()

    report, sessions = netns.run(scenario)
    assert report["error"].startswith("401"), report["error"]
    assert "token" in report["error"]
    assert sessions == 0


def test_page_controls_drive_the_stream(netns: NetnsRunner, browser: Chromium) -> None:
    """Bypass toggled on the page shows the raw camera; the prompt box and presets reach the controller."""

    def scenario() -> tuple[dict[str, Any], dict[str, Any], Any, int]:
        stack = Stack(InvertGenerator(), ServerSettings(port=0), controls=True)
        try:
            page = browser.open(f"{stack.url}/?autostart=1&probe=1")
            browser.wait_for(page, f"({REPORT}).then(r => r && r.outFrames >= 30)", timeout=30)
            before = browser.evaluate(page, REPORT)
            presets = browser.wait_for(page, "document.querySelectorAll('#presets button').length", timeout=10)
            browser.evaluate(page, "document.getElementById('bypass').click()")
            browser.evaluate(page, "document.getElementById('prompt').value = 'a charcoal sketch';"
                                   "document.getElementById('prompt-form').requestSubmit()")
            browser.wait_for(page, "document.querySelector('#history button')?.textContent === 'a charcoal sketch'")
            frames = before["outFrames"]
            browser.wait_for(page, f"({REPORT}).then(r => r.outFrames >= {frames + 45})", timeout=30)
            after = browser.evaluate(page, REPORT)
            browser.close_tab(page)
            return before, after, stack.controller.params, presets  # type: ignore[union-attr]
        finally:
            stack.close()

    before, after, params, presets = netns.run(scenario)
    assert presets >= 1
    assert params.bypass is True and params.prompt == "a charcoal sketch"
    inverted = matched_pairs(before, inverted=True)
    assert inverted and np.median([np.abs(o - (255 - i)).mean() for _, i, o in inverted]) < 20
    # the last frames were produced in bypass: the output equals the input again
    late = matched_pairs({**after, "outProbe": after["outProbe"][-20:]}, inverted=False)
    assert len(late) >= 10, len(late)
    assert np.median([np.abs(o - i).mean() for _, i, o in late]) < 20
