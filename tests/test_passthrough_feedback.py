"""A stream without a model says so (issue 27, point 10): the status line shows no prompt nobody
set, a look sent live is applied with a notice that it changes nothing, and `r` says what it did."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from livestyle.cli import main
from livestyle.control.controller import Controller, Params
from livestyle.control.hotkeys import TerminalHotkeys
from livestyle.control.presets import load_presets


def test_the_status_line_of_passthrough_names_no_prompt(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--source", "pattern", "--sink", "null", "--size", "64x48", "--model", "passthrough",
                 "--max-frames", "20", "--no-keys"]) == 0
    status = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("in ")]
    assert status, "the last status line is printed when stderr is not a terminal"
    assert "passthrough: no styling" in status[-1] and "prompt" not in status[-1], status[-1]  # it showed 'watercolor ...'


@pytest.mark.parametrize(("styles", "key", "expected"), [
    (False, "2", "preset anime: passthrough has no model, so the picture does not change"),
    (False, "r", "reset: passthrough keeps no memory of earlier frames"),
    (True, "r", "reset: the model's memory of earlier frames is dropped"),
    (True, "2", None),
])
def test_keys_say_what_they_did(styles: bool, key: str, expected: str | None) -> None:
    sent: list[Any] = []
    controller = Controller(load_presets(), sent.append, Params("start", 0.6, 2, 42), styles=styles)
    notices: list[str] = []
    keys = TerminalHotkeys(controller, on_notice=notices.append, on_error=pytest.fail)
    assert keys.press(key)
    assert sent, "the command is applied either way"
    if expected is None:
        assert notices == []
    else:
        assert len(notices) == 1 and notices[0].startswith(expected), notices


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _call(url: str, method: str = "POST", body: bytes | None = None) -> dict[str, Any]:
    req = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def test_the_api_of_a_passthrough_stream_answers_with_a_notice() -> None:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "livestyle", "run", "--source", "pattern", "--sink", "null",
                             "--size", "64x48", "--model", "passthrough", "--api", "--api-port", str(port),
                             "--no-keys", "--quiet"], stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/api"
    try:
        for _ in range(300):  # a bound on the start-up wait, not a timing assertion
            try:
                _call(base + "/params", "GET")
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        preset = _call(base + "/presets/anime")
        prompt = _call(base + "/prompt", body=b'{"prompt": "a stained glass window"}')
        reset = _call(base + "/reset")
        bypass = _call(base + "/params", "PATCH", b'{"bypass": true}')
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    assert preset["preset"] == "anime" and "passthrough has no model" in preset["notice"]
    assert prompt["notice"].startswith("the prompt: passthrough has no model")
    assert reset["notice"].startswith("reset: passthrough keeps no memory")
    assert "notice" not in bypass  # bypass does what it says on passthrough too
