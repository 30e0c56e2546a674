"""``livestyle run --model tiny --gpus 2 --device cpu`` through the real CLI: it streams to a file,
and Ctrl-C, SIGTERM and SIGKILL of the command leave no stage process behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

LIVESTYLE = [sys.executable, "-c", "import sys; from livestyle.cli import main; sys.exit(main())"]
"""The CLI in a fresh interpreter, with a main module the spawned stages can re-import safely."""


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "LIVESTYLE_CACHE_DIR": os.environ.get("LIVESTYLE_CACHE_DIR", str(tmp_path / "cache"))}


def test_run_streams_over_two_stage_processes(tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    done = subprocess.run([*LIVESTYLE, "run", "--model", "tiny", "--gpus", "2", "--device", "cpu", "--source", "pattern",
                           "--sink", str(out), "--max-frames", "16", "--no-keys", "-q"],
                          capture_output=True, text=True, timeout=240, env=_env(tmp_path))
    assert done.returncode == 0, done.stderr
    line = re.search(r"done \(max_frames\): (\d+) frames out.*written: \S+ (\d+)", done.stderr)
    assert line is not None, done.stderr
    assert int(line.group(1)) == 16 and int(line.group(2)) == 16
    assert out.stat().st_size > 1000


def test_more_gpus_than_devices_is_one_line(tmp_path: Path) -> None:
    done = subprocess.run([*LIVESTYLE, "run", "--model", "tiny", "--gpus", "2", "--device", "cuda", "--source", "pattern",
                           "--sink", "null", "--max-frames", "4", "--no-keys", "-q"],
                          capture_output=True, text=True, timeout=120, env=_env(tmp_path))
    assert done.returncode == 2, done.stderr
    lines = [ln for ln in done.stderr.splitlines() if ln.strip() and not ln.startswith(("loading", "note", "warning"))]
    assert len(lines) == 1 and "--gpus 2" in lines[0] and "CUDA" in lines[0], done.stderr


def _stages(parent: psutil.Process) -> list[psutil.Process]:
    return [p for p in parent.children(recursive=True) if "spawn_main" in " ".join(p.cmdline())]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_no_stage_outlives_the_command(signum: int, tmp_path: Path) -> None:
    log = tmp_path / "stderr.txt"
    with log.open("w") as err:
        proc = subprocess.Popen([*LIVESTYLE, "run", "--model", "tiny", "--gpus", "2", "--device", "cpu", "--source",
                                 "pattern", "--sink", "null", "--no-keys", "-q"],
                                stdout=subprocess.DEVNULL, stderr=err, env=_env(tmp_path))
    try:
        parent = psutil.Process(proc.pid)
        deadline = time.monotonic() + 120
        stages: list[psutil.Process] = []
        while time.monotonic() < deadline and ("warming up" not in log.read_text() or len(stages) < 2):
            time.sleep(0.2)
            stages = _stages(parent)
            assert proc.poll() is None, log.read_text()
        assert len(stages) == 2, log.read_text()
        time.sleep(2.0)  # streaming (or still warming up): either way the stages hold the stream
        proc.send_signal(signum)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    _, alive = psutil.wait_procs(stages, timeout=15)
    assert [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE] == [], log.read_text()
    if signum != signal.SIGKILL:
        assert proc.returncode in (0, 128 + signum), log.read_text()
        assert "Traceback" not in log.read_text()
