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
    assert any(re.search(r"open http://0\.0\.0\.0:18765/\?token=", line) for line in r["lines"]), r["lines"]
    assert r["page"] == 200
    assert r["params_no_token"] == 401 and r["sessions_no_token"] == 401
    assert r["params_token"] == 200 and r["sessions_token"] == 200
