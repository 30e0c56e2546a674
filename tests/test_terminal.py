"""Terminal papercuts (issue 13): status line width, quiet logs, foreground-only keys, CLI conventions."""

from __future__ import annotations

import io
import logging
import os
import pty
import subprocess
import sys
import time

import pytest

from livestyle.cli.status import StatusLine, format_status

STATS = {"fps_in": 30.0, "fps_out": 29.5, "frames_out": 90, "drops": {"input": 2, "sink:a.mp4": 1},
         "stage_ms": {"generate": {"p50": 41.0}, "sink:a.mp4": {"p50": 3.2}},
         "latency_ms": {"p50": 120.0, "p95": 180.0}, "bypass": False,
         "sinks": {"a.mp4": {"state": "running"}},
         "controls": {"params": {"prompt": "a very long prompt about a castle on a hill"}}}


@pytest.mark.parametrize("width", [40, 60, 80, 100])
def test_status_line_fits_the_terminal(width: int) -> None:
    line = format_status(STATS, width)
    assert len(line) <= width, line
    assert line.startswith("out 29.5 fps | lost 2"), line
    assert len(format_status(STATS)) > 100  # the full form is what a wide terminal shows


def test_narrow_status_prefers_the_viewer_side_metrics_when_reported() -> None:
    stats = {**STATS, "fps_written": 27.0, "frames_lost": 5, "g2g_p95_ms": 210.0, "warming": True, "bypass": True}
    line = format_status(stats, 60)
    assert line.startswith("warming up | BYPASS | out 27.0 fps | lost 5 | p95 210 ms"), line


def test_a_log_file_gets_a_status_line_every_10_s_and_the_last_one() -> None:
    now = [0.0]
    out = io.StringIO()
    line = StatusLine(out, clock=lambda: now[0])
    for t in range(26):  # the runner reports every second
        now[0] = float(t)
        line({**STATS, "frames_out": t})
    line.finish()
    frames = [int(ln.split("frames ")[1].split(" ")[0]) for ln in out.getvalue().splitlines()]
    assert frames == [0, 10, 20, 25]


def test_status_on_a_terminal_is_cut_to_its_width(monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setenv("COLUMNS", "50")
    tty = Tty()
    StatusLine(tty)(STATS)
    drawn = tty.getvalue().removeprefix("\r").removesuffix("\x1b[K")
    assert 0 < len(drawn) < 50, drawn


BACKGROUND_CHECK = r"""
import os, sys
from livestyle.control.hotkeys import TerminalHotkeys
result = sys.argv[1]
tty = open(os.ttyname(0), "rb", buffering=0)
def check(tag):
    ok = TerminalHotkeys(controller=None, stream=tty).available()
    with open(result, "a") as f:
        f.write(f"{tag}={ok}\n")
check("foreground")
pid = os.fork()
if pid == 0:
    os.setpgid(0, 0)  # a job of its own, like `livestyle run ... &`: not the terminal's foreground
    check("background")
    os._exit(0)
os.waitpid(pid, 0)
"""


def test_no_terminal_keys_when_not_the_foreground_job(tmp_path) -> None:
    result = tmp_path / "result.txt"
    pid, fd = pty.fork()  # the child gets the pty as its controlling terminal
    if pid == 0:
        os.execv(sys.executable, [sys.executable, "-c", BACKGROUND_CHECK, str(result)])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.read(fd, 1024)
        except OSError:
            break
    os.waitpid(pid, 0)
    os.close(fd)
    assert result.read_text().split() == ["foreground=True", "background=False"]


def test_log_messages_have_no_logger_prefix(capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from livestyle.cli import _setup_logging

    monkeypatch.delenv("LIVESTYLE_LOG", raising=False)
    _setup_logging()
    logging.getLogger("livestyle.diffusion.open").warning("model tiny supports at most %d steps", 4)
    assert capfd.readouterr().err == "warning: model tiny supports at most 4 steps\n"
    monkeypatch.setenv("LIVESTYLE_LOG", "DEBUG")
    _setup_logging()
    logging.getLogger("livestyle.x").info("hello")
    assert capfd.readouterr().err == "info livestyle.x: hello\n"
    logging.getLogger().setLevel(logging.WARNING)


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version(flag: str) -> None:
    from livestyle import __version__

    out = subprocess.run([sys.executable, "-m", "livestyle", flag], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"livestyle {__version__}"


def test_dash_h_is_help_and_help_lists_the_valid_values() -> None:
    out = subprocess.run([sys.executable, "-m", "livestyle", "run", "-h"], capture_output=True, text=True,
                         check=True, env={**os.environ, "COLUMNS": "200"})
    for name in ("auto", "passthrough", "sdv2-1.3b", "krea-14b", "crop", "pad", "stretch"):
        assert name in out.stdout, name
    budget = subprocess.run([sys.executable, "-m", "livestyle", "budget", "-h"], capture_output=True, text=True,
                            check=True, env={**os.environ, "COLUMNS": "200"}).stdout
    assert "rtx3060" in budget and "l4" in budget
