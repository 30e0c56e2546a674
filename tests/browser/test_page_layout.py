"""The streamer's page in real Chromium at 1280x720 and 1920x1080 (issue 13).

Each viewport is emulated over the DevTools protocol; the test reads the element boxes of every
control and checks they are inside the viewport with nothing to scroll, then takes a screenshot
and checks the big Bypass button is where its box says. With ``LIVESTYLE_SCREENSHOTS=DIR`` the
screenshots are kept there (docs/images/ holds the ones the README shows).
"""

from __future__ import annotations

import asyncio
import time
import base64
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from chromium import Chromium
from netns import NetnsRunner
from stack import InvertGenerator, Stack

from livestyle.control.api import control_routes
from livestyle.control.controller import Controller, Params
from livestyle.control.presets import load_presets
from livestyle.server.app import ServerSettings, ServerThread

pytestmark = pytest.mark.browser

REPORT = "Promise.resolve(window.livestyle && window.livestyle.report())"
CONTROLS = ["#bypass", "#prompt", "#prompt-form button[type=submit]", "#presets button", "#strength", "#steps",
            "#seed", "#seed-random", "#output", "#model-badge", "#notice", "#overlay"]
BOXES = f"""(() => {{
  const out = {{}};
  for (const sel of {CONTROLS!r}) {{
    const el = document.querySelector(sel);
    const r = el ? el.getBoundingClientRect() : null;
    out[sel] = r && r.width > 0 ? [r.left, r.top, r.right, r.bottom] : null;
  }}
  out.scroll = [document.scrollingElement.scrollWidth, document.scrollingElement.scrollHeight];
  return out;
}})()"""


async def cdp_session(target: dict[str, Any], width: int, height: int) -> tuple[dict[str, Any], bytes]:
    """In one DevTools session: emulate the viewport, read the boxes, take a screenshot."""
    import aiohttp

    async with aiohttp.ClientSession() as s, s.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
        ids = iter(range(1, 100))

        async def call(method: str, **params: Any) -> dict[str, Any]:
            i = next(ids)
            await ws.send_json({"id": i, "method": method, "params": params})
            while True:
                msg = await asyncio.wait_for(ws.receive_json(), 20)
                if msg.get("id") == i:
                    return msg.get("result", {})

        await call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
        await asyncio.sleep(1.0)  # layout and a few video frames at the new size
        boxes = (await call("Runtime.evaluate", expression=BOXES, returnByValue=True))["result"]["value"]
        shot = await call("Page.captureScreenshot", format="png")
        return boxes, base64.b64decode(shot["data"])


def press(target: dict[str, Any], key: str) -> None:
    async def go() -> None:
        import aiohttp

        async with aiohttp.ClientSession() as s, s.ws_connect(target["webSocketDebuggerUrl"]) as ws:
            for i, kind in enumerate(("keyDown", "keyUp"), 1):
                await ws.send_json({"id": i, "method": "Input.dispatchKeyEvent",
                                    "params": {"type": kind, "key": key, "text": key if kind == "keyDown" else "",
                                               "code": f"Key{key.upper()}" if key.isalpha() else f"Digit{key}"}})
                while (await asyncio.wait_for(ws.receive_json(), 10)).get("id") != i:
                    pass

    asyncio.run(go())


class ModelStack(Stack):
    """The test stack with the model block ``livestyle serve`` adds to /api/stats (a passthrough
    run given a prompt: the page must say so)."""

    def __init__(self) -> None:
        settings = ServerSettings(port=0)
        super().__init__(InvertGenerator(), settings, controls=False)
        self.server.stop()
        self.controller = Controller(load_presets(), self.runner.submit, Params("start", 0.6, 2, 42))
        model = {"name": "passthrough", "styles": False, "max_steps": 8,
                 "warnings": ["the prompt will do nothing: passthrough has no model."]}
        routes = control_routes(self.controller, stats=lambda: {**self.runner.stats(), "model": model})
        self.server = ServerThread(settings, self.server.hub, control_routes=routes).start()
        self.url = self.server.url


def test_controls_fit_both_viewports_with_keys_badges_and_an_editable_prompt(
    netns: NetnsRunner, browser: Chromium
) -> None:
    def scenario() -> dict[str, Any]:
        stack = ModelStack()
        try:
            viewer = browser.open(f"{stack.url}/view")
            waiting_before = browser.wait_for(viewer, "document.getElementById('waiting')?.hidden === false ? "
                                                      "document.getElementById('waiting').textContent : null", timeout=10)
            page = browser.open(f"{stack.url}/?autostart=1")
            browser.wait_for(page, f"({REPORT}).then(r => r && r.outFrames >= 20)", timeout=30)
            browser.wait_for(page, "document.querySelectorAll('#presets button').length >= 2", timeout=10)
            browser.wait_for(page, "document.getElementById('model-badge').textContent.includes('passthrough')")
            viewer_playing = browser.wait_for(viewer, "document.getElementById('waiting').hidden", timeout=20)
            shots = {size: asyncio.run(cdp_session(page, *size)) for size in ((1280, 720), (1920, 1080))}
            texts = browser.evaluate(page, "({seed: document.getElementById('seed-random').textContent,"
                                           " notice: document.getElementById('notice').textContent,"
                                           " bypassBadge: document.getElementById('bypass-badge').hidden})")
            press(page, "b")
            browser.wait_for(page, "document.getElementById('bypass-badge').hidden === false", timeout=10)
            deadline = time.monotonic() + 5.0  # the page may show the badge before the server's reply lands
            while not stack.controller.params.bypass and time.monotonic() < deadline:
                time.sleep(0.05)
            bypass_after_key = stack.controller.params.bypass
            press(page, "2")
            browser.wait_for(page, "document.querySelector('#presets button.active')?.dataset.name !== undefined")
            preset_after_key = stack.controller.params.preset
            browser.evaluate(page, "document.getElementById('prompt').value = 'a charcoal sketch';"
                                   "document.getElementById('prompt-form').requestSubmit()")
            browser.wait_for(page, "document.querySelector('#history button')?.textContent === 'a charcoal sketch'")
            prompt_box = browser.evaluate(page, "document.getElementById('prompt').value")
            browser.close_tab(page)
            browser.close_tab(viewer)
            return {"shots": shots, "texts": texts, "bypass": bypass_after_key, "preset": preset_after_key,
                    "prompt_box": prompt_box, "waiting": waiting_before, "viewer_playing": viewer_playing,
                    "presets": list(load_presets().names)}
        finally:
            stack.close()

    r = netns.run(scenario)
    keep = os.environ.get("LIVESTYLE_SCREENSHOTS")
    import cv2

    for (w, h), (boxes, png) in r["shots"].items():
        assert boxes["scroll"][0] <= w and boxes["scroll"][1] <= h, f"{w}x{h}: the page scrolls {boxes['scroll']}"
        for sel in CONTROLS:
            box = boxes[sel]
            assert box is not None, f"{w}x{h}: {sel} is not shown"
            left, top, right, bottom = box
            assert left >= 0 and top >= 0 and right <= w and bottom <= h, f"{w}x{h}: {sel} at {box} is outside"
        image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
        assert image.shape[:2] == (h, w)
        left, top, right, bottom = (round(v) for v in boxes["#bypass"])
        assert right - left >= 200 and bottom - top >= 40, boxes["#bypass"]  # a big button
        button = image[top + 3:bottom - 3, left + 3:right - 3].reshape(-1, 3).mean(0)  # BGR
        assert button[2] > button[0] + 20, f"the bypass button is not where its box says: {button}"
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            (Path(keep) / f"page-{w}x{h}.png").write_bytes(png)
    assert r["texts"]["seed"] == "Random"  # no emoji font needed
    assert "passthrough has no model" in r["texts"]["notice"]
    assert r["bypass"] is True  # key B
    assert r["preset"] == r["presets"][1]  # key 2
    assert r["prompt_box"] == "a charcoal sketch"  # the sent prompt stays, editable
    assert r["waiting"].startswith("waiting for livestyle") and r["viewer_playing"] is True
