"""A page from another origin tries to drive the tokenless loopback API in real Chromium.

The attacker's page (served on another port) sends ``no-cors`` form-like POSTs, CORS JSON POSTs,
a WebSocket to ``/api/events``, and the same from a sandboxed iframe (``Origin: null``); then a
DNS-rebinding page (``evil.test`` mapped to 127.0.0.1 by ``--host-resolver-rules``) tries from
what the browser thinks is the API's own origin. Nothing may reach the controller; the real page,
same origin, still can (so the test can tell a closed door from a broken one).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from chromium import Chromium, chromium_path

from livestyle.control.api import control_routes
from livestyle.control.controller import Controller, Params
from livestyle.control.presets import load_presets
from livestyle.server.app import ServerSettings, ServerThread

pytestmark = pytest.mark.browser

ATTACK = """<!doctype html><meta charset="utf-8"><body><script>
const API = "%(api)s";
const results = {};
async function attempt(name, fn) {
  try { results[name] = await fn(); } catch (e) { results[name] = "blocked: " + e.name; }
}
function socket(url, message) {
  return new Promise(resolve => {
    const ws = new WebSocket(url);
    ws.onopen = () => { ws.send(message); setTimeout(() => resolve("opened"), 300); };
    ws.onerror = () => resolve("refused");
  });
}
window.attack = async function () {
  await attempt("no-cors text/plain", () => fetch(API + "/api/prompt", {method: "POST", mode: "no-cors",
    headers: {"Content-Type": "text/plain"}, body: JSON.stringify({prompt: "hijacked"})}).then(r => r.type));
  await attempt("cors json", () => fetch(API + "/api/params", {method: "PATCH",
    headers: {"Content-Type": "application/json"}, body: JSON.stringify({bypass: true})}).then(r => r.status));
  await attempt("websocket", () => socket(API.replace("http", "ws") + "/api/events",
    JSON.stringify({command: "bypass", value: true})));
  const frame = document.createElement("iframe");
  frame.sandbox = "allow-scripts";
  frame.srcdoc = `<script>
    fetch("${API}/api/prompt", {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"},
      body: JSON.stringify({prompt: "from null"})}).finally(() => {
      const ws = new WebSocket("${API.replace("http", "ws")}/api/events");
      ws.onopen = () => ws.send(JSON.stringify({command: "prompt", text: "null socket"}));
      setTimeout(() => parent.postMessage("done", "*"), 500);
    });
  <\\/script>`;
  const frameDone = new Promise(resolve => addEventListener("message", () => resolve("ran")));
  document.body.appendChild(frame);
  results["sandboxed iframe"] = await Promise.race([frameDone, new Promise(r => setTimeout(() => r("timeout"), 5000))]);
  return results;
};
</script>"""


class _AttackerPage(BaseHTTPRequestHandler):
    html = b""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.end_headers()
        self.wfile.write(self.html)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        return


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[ServerThread, list[Any], Controller]]:
    sent: list[Any] = []
    controller = Controller(load_presets(), sent.append, Params("start", 0.6, 2, 42))
    settings = ServerSettings(port=0)
    server = ServerThread(settings, settings.make_hub(), control_routes=control_routes(controller, stats=lambda: {"fps": 1.0})).start()
    yield server, sent, controller
    server.stop()


@pytest.fixture(scope="module")
def chrome(fake_camera: Path) -> Iterator[Chromium]:
    if chromium_path() is None:
        pytest.skip("Debian chromium is not installed (apt-get install -y chromium)")
    browser = Chromium(fake_camera, extra_flags=("--host-resolver-rules=MAP evil.test 127.0.0.1",))
    yield browser
    browser.close()


def test_a_page_of_another_origin_cannot_drive_the_api(stack: tuple[ServerThread, list[Any], Controller],
                                                       chrome: Chromium) -> None:
    server, sent, controller = stack
    _AttackerPage.html = (ATTACK % {"api": server.url}).encode()
    attacker = ThreadingHTTPServer(("127.0.0.1", 0), _AttackerPage)
    threading.Thread(target=attacker.serve_forever, daemon=True).start()
    try:
        page = chrome.open(f"http://127.0.0.1:{attacker.server_address[1]}/")
        chrome.wait_for(page, "typeof window.attack === 'function'")
        results = chrome.evaluate(page, "window.attack()", timeout=30)
    finally:
        attacker.shutdown()
    # sent either way; the server's 403 carries CORP same-origin, so Chromium also hides the answer
    assert results["no-cors text/plain"] in ("opaque", "blocked: TypeError")
    assert str(results["cors json"]).startswith("blocked")  # preflight refused
    assert results["websocket"] == "refused"
    assert results["sandboxed iframe"] == "ran"
    assert sent == [], sent
    assert controller.params.prompt == "start" and controller.params.bypass is False


def test_a_rebound_dns_name_gets_nothing(stack: tuple[ServerThread, list[Any], Controller], chrome: Chromium) -> None:
    server, sent, controller = stack
    page = chrome.open(f"http://evil.test:{server.port}/")
    text = chrome.wait_for(page, "document.body && document.body.innerText")
    assert "unknown Host" in text
    status = chrome.evaluate(page, """fetch('/api/prompt', {method: 'POST', headers: {'Content-Type': 'application/json'},
        body: JSON.stringify({prompt: 'rebound'})}).then(r => r.status)""")
    assert status == 403
    assert sent == [] and controller.params.prompt == "start"


def test_the_real_page_same_origin_still_drives_it(stack: tuple[ServerThread, list[Any], Controller],
                                                   chrome: Chromium) -> None:
    server, sent, controller = stack
    page = chrome.open(f"{server.url}/view")
    chrome.wait_for(page, "document.readyState === 'complete'")
    status = chrome.evaluate(page, """fetch('/api/prompt', {method: 'POST', headers: {'Content-Type': 'application/json'},
        body: JSON.stringify({prompt: 'from the page'})}).then(r => r.status)""")
    assert status == 200
    assert controller.params.prompt == "from the page"
    sent.clear()
