"""Issue 28, point 12: which bind address needs a token, said the same way by the code, the
``--help`` of ``serve`` and ``run`` and the README: a loopback address (127.0.0.0/8, ::1,
localhost) needs none, any other gets one. A real ``run --api`` on 127.0.0.2 answers without one."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from host_helpers import free_tcp_port
from test_cli_controls import Proc

from livestyle.server.app import ServerSettings

README = Path(__file__).resolve().parents[1] / "README.md"
RULE = "loopback address (127.x.x.x, ::1, localhost) needs no token; any other needs one"


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_a_loopback_bind_address_needs_no_token(host: str) -> None:
    assert ServerSettings(host=host).resolved().token is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.7", "example.test"])
def test_any_other_bind_address_gets_a_token(host: str) -> None:
    assert ServerSettings(host=host).resolved().token


@pytest.mark.parametrize("verb", ["serve", "run"])
def test_the_help_says_the_rule_the_code_follows(verb: str) -> None:
    env = {**os.environ, "COLUMNS": "200", "TERM": "dumb", "NO_COLOR": "1"}
    out = subprocess.run([sys.executable, "-m", "livestyle", verb, "--help"], capture_output=True, text=True, env=env,
                         timeout=60, check=True).stdout
    text = " ".join(re.sub(r"[│|]", " ", out).split())
    assert RULE in text, text
    assert "anything else needs a token" not in text


def test_the_readme_says_beyond_loopback_not_any_other_host() -> None:
    text = " ".join(README.read_text().split())
    assert "with another `--host` every route" not in text
    assert "a `--host` beyond loopback (anything but 127.x.x.x, `::1` and `localhost`)" in text


def test_run_api_on_another_loopback_address_answers_without_a_token() -> None:
    port = free_tcp_port()
    proc = Proc(["-i", "pattern", "-o", "null", "--size", "64x48", "-q", "--no-keys", "--api", "--api-host", "127.0.0.2",
                 "--api-port", str(port)])
    try:
        line = proc.read_until("livestyle: control API on")
        assert "127.0.0.2" in line
        with urllib.request.urlopen(f"http://127.0.0.2:{port}/api/params", timeout=10) as answer:
            assert answer.status == 200
    finally:
        code, err = proc.finish()
    assert "token:" not in err and code == 130, err
