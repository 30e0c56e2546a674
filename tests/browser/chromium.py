"""Headless Debian Chromium driven over the DevTools protocol (HTTP + one WebSocket per call).

Launch flags (Chromium's own test switches): fake camera from a y4m file, fake permission UI,
loopback peer connections allowed, autoplay without a gesture, mDNS host candidates off (so a
receive-only page still offers a loopback candidate).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

__all__ = ["Chromium", "chromium_path"]


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Chromium:
    """One browser process; pages are DevTools targets opened with :meth:`open`."""

    def __init__(self, fake_camera: Path, *, extra_flags: tuple[str, ...] = ()) -> None:
        exe = chromium_path()
        if exe is None:
            raise FileNotFoundError("chromium is not installed (apt-get install -y chromium)")
        self.profile = Path(tempfile.mkdtemp(prefix="livestyle-chromium-"))
        cmd = [
            exe, "--headless=new", "--no-sandbox", "--disable-gpu",
            "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={fake_camera}",
            "--allow-loopback-in-peer-connection", "--autoplay-policy=no-user-gesture-required",
            "--disable-features=WebRtcHideLocalIpsWithMdns",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-default-apps", "--no-first-run", "--no-default-browser-check",
            "--disable-dev-shm-usage", "--disable-background-timer-throttling",
            "--disable-renderer-backgrounding", "--disable-backgrounding-occluded-windows",
            f"--user-data-dir={self.profile}", "--remote-debugging-port=0", *extra_flags, "about:blank",
        ]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError("chromium did not start (no DevToolsActivePort)")
            time.sleep(0.05)
        self.port = int(port_file.read_text().split()[0])
        self.base = f"http://127.0.0.1:{self.port}"

    def _http(self, method: str, path: str) -> Any:
        async def go() -> Any:
            async with aiohttp.ClientSession() as s, s.request(method, self.base + path) as r:
                text = await r.text()
                return json.loads(text) if text.startswith(("{", "[")) else text

        return asyncio.run(go())

    def open(self, url: str) -> dict[str, Any]:
        """Open ``url`` in a new tab; returns the DevTools target (``id``, ``webSocketDebuggerUrl``)."""
        return self._http("PUT", "/json/new?" + quote(url, safe=":/?="))

    def close_tab(self, target: dict[str, Any]) -> None:
        self._http("GET", f"/json/close/{target['id']}")

    def evaluate(self, target: dict[str, Any], expression: str, timeout: float = 15.0) -> Any:
        """Evaluate ``expression`` (promises awaited) in the tab; returns its JSON value."""

        async def go() -> Any:
            async with aiohttp.ClientSession() as s, s.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                await ws.send_json({"id": 1, "method": "Runtime.evaluate", "params": {
                    "expression": expression, "awaitPromise": True, "returnByValue": True}})
                while True:
                    msg = await asyncio.wait_for(ws.receive_json(), timeout)
                    if msg.get("id") == 1:
                        break
            result = msg.get("result", {})
            if "exceptionDetails" in result:
                raise RuntimeError(f"page error: {result['exceptionDetails']}")
            return result.get("result", {}).get("value")

        return asyncio.run(go())

    def wait_for(self, target: dict[str, Any], expression: str, timeout: float = 20.0) -> Any:
        """Re-evaluate ``expression`` until it is truthy (a test wait, not product code)."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(target, expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"page never satisfied {expression!r} within {timeout:.0f} s")
            time.sleep(0.25)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)
