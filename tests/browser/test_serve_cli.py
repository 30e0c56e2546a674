"""``livestyle serve`` as a real process, inside the namespace so binding 0.0.0.0 exposes nothing."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any

from netns import NetnsRunner


def _get(url: str, token: str | None = None) -> int:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_serve_beyond_loopback_generates_prints_and_enforces_a_token(netns: NetnsRunner) -> None:
    def scenario() -> dict[str, Any]:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "livestyle", "serve", "--host", "0.0.0.0", "--port", "18765", "--size", "320x240", "-q"],
            stderr=subprocess.PIPE, text=True, env=env,
        )
        lines: list[str] = []
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                line = proc.stderr.readline()  # type: ignore[union-attr]
                if not line:
                    break
                lines.append(line)
                if line.startswith("token: "):
                    break
            token = lines[-1].split(": ", 1)[1].strip() if lines and lines[-1].startswith("token: ") else None
            base = "http://127.0.0.1:18765"
            return {
                "lines": lines,
                "token": token,
                "page": _get(base + "/"),
                "params_no_token": _get(base + "/api/params"),
                "params_token": _get(base + "/api/params", token),
                "sessions_no_token": _get(base + "/sessions"),
                "sessions_token": _get(base + "/sessions", token),
            }
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    r = netns.run(scenario)
    assert r["token"] and len(r["token"]) >= 24, r["lines"]
    # an address another machine can open, never http://0.0.0.0 (issue 27, point 3), and why --tls matters
    assert any(re.search(r"open http://[^/]+:18765/\?token=", line) for line in r["lines"]), r["lines"]
    assert not any("0.0.0.0" in line for line in r["lines"] if "open " in line), r["lines"]
    assert any("add --tls for a camera on another machine" in line for line in r["lines"]), r["lines"]
    assert r["page"] == 200
    assert r["params_no_token"] == 401 and r["sessions_no_token"] == 401
    assert r["params_token"] == 200 and r["sessions_token"] == 200


def _serve(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "livestyle", "serve", *args], stdin=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=env)


def _stop(proc: subprocess.Popen[str], sig: int = signal.SIGINT) -> tuple[int, float]:
    t0 = time.monotonic()
    proc.send_signal(sig)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return proc.returncode, time.monotonic() - t0


def _wait_for_url(proc: subprocess.Popen[str], port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if _get(f"http://127.0.0.1:{port}/api/params") == 200:
                return
        except urllib.error.URLError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"serve never answered (exit {proc.poll()})")


def test_serve_keeps_a_4_3_browser_camera_whole_without_a_model(netns: NetnsRunner, tmp_path: Any) -> None:
    """Issue 27, point 9: `serve` cropped a 640x480 browser camera to 832x480 (the Troubleshooting
    row says cameras keep their aspect ratio); now the first frame sets the size, and passthrough
    keeps it: the page's output is 640x480 and a square in the camera stays square."""
    from chromium import Chromium, chromium_path
    from test_browser_aspect import BRIGHT_BOX, REPORT, write_square_y4m

    if chromium_path() is None:
        import pytest

        pytest.skip("Debian chromium is not installed (apt-get install -y chromium)")
    camera = write_square_y4m(tmp_path / "square.y4m")

    def scenario() -> dict[str, Any]:
        proc = _serve("--port", "18766", "--model", "passthrough", "-q", "--no-keys")
        chrome = Chromium(camera)
        try:
            _wait_for_url(proc, 18766)
            page = chrome.open("http://127.0.0.1:18766/?autostart=1")
            chrome.wait_for(page, f"({REPORT}).then(r => r && r.outFrames >= 30)", timeout=40)
            return chrome.evaluate(page, BRIGHT_BOX)
        finally:
            chrome.close()
            _stop(proc)

    result = netns.run(scenario)
    assert (result["w"], result["h"]) == (640, 480), result
    w, h = result["box"]
    assert abs(w - h) <= 8 and abs(h - 200) <= 8, result  # whole and square: nothing cropped or scaled


def test_serve_waiting_for_its_first_publisher_stops_on_a_signal(netns: NetnsRunner) -> None:
    """The browser source now waits in open() for the first frame; SIGINT and SIGTERM still stop it."""

    def scenario() -> list[tuple[int, float]]:
        out = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            proc = _serve("--port", "18767", "--model", "passthrough", "-q", "--no-keys")
            _wait_for_url(proc, 18767)
            time.sleep(1.0)  # past the server start, into the runner's wait for a publisher
            out.append(_stop(proc, sig))
        return out

    (int_code, int_s), (term_code, term_s) = netns.run(scenario)
    assert int_code == 130 and term_code == 143
    assert int_s < 10 and term_s < 10, (int_s, term_s)
