"""Start-up estimates (issue 13, "long silent waits"): the model load and the warm-up say how long
they took last time on this machine, from a history kept in the user cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from livestyle.cli.status import format_status
from livestyle.planning.startup_history import KEEP, StartupHistory, default_history_path, startup_key


def test_the_estimate_is_the_median_of_the_last_few_starts(tmp_path: Path) -> None:
    history = StartupHistory(tmp_path / "startup.json")
    key = startup_key("warmup", "sdv2-1.3b", (832, 480), 2, "NVIDIA H200")
    assert key == "warmup|sdv2-1.3b|832x480|2|NVIDIA H200"
    assert history.estimate(key) is None  # the first start has none
    for seconds in (9.0, 1.0, 2.0, 3.0, 40.0, 2.5):
        history.record(key, seconds)
    assert json.loads((tmp_path / "startup.json").read_text())[key] == [1.0, 2.0, 3.0, 40.0, 2.5][-KEEP:]
    assert history.estimate(key) == 2.5  # one slow start (40 s) does not move it
    assert history.estimate(startup_key("warmup", "sdv2-1.3b", (832, 480), 1, "NVIDIA H200")) is None


def test_a_corrupt_or_unwritable_history_never_stops_a_stream(tmp_path: Path) -> None:
    path = tmp_path / "startup.json"
    path.write_text("{not json")
    history = StartupHistory(path)
    assert history.estimate("k") is None
    history.record("k", 3.0)  # rewritten whole
    assert history.estimate("k") == 3.0
    blocked = StartupHistory(tmp_path / "a-file" / "startup.json")
    (tmp_path / "a-file").write_text("")  # its folder cannot be made
    blocked.record("k", 1.0)
    assert blocked.estimate("k") is None
    history.record("k", float("nan"))
    assert history.estimate("k") == 3.0


def test_where_it_is_kept(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("LIVESTYLE_STARTUP_HISTORY", raising=False)
    monkeypatch.setenv("LIVESTYLE_CACHE_DIR", str(tmp_path))
    assert default_history_path() == tmp_path / "startup.json"
    monkeypatch.setenv("LIVESTYLE_STARTUP_HISTORY", "off")
    assert default_history_path() is None and StartupHistory().estimate("k") is None


def test_the_status_line_counts_the_warm_up_against_the_estimate() -> None:
    base = {"fps_in": 30.0, "fps_out": 0.0, "frames_out": 0, "warming": True, "elapsed_s": 3.2}
    assert format_status({**base, "model": {"warmup_estimate_s": 8.4}}).endswith("warming up 3 s of about 8 s")
    assert format_status({**base, "model": {"warmup_estimate_s": None}}).endswith(
        "warming up the model 3 s (first frames follow)")
    assert "warming up 3 s of about 8 s" in format_status({**base, "model": {"warmup_estimate_s": 8.4}}, width=60)


def test_the_second_run_of_a_model_says_how_long_the_first_took(tmp_path: Path) -> None:
    env = {**os.environ, "LIVESTYLE_STARTUP_HISTORY": str(tmp_path / "startup.json"), "COLUMNS": "200"}
    cmd = [sys.executable, "-m", "livestyle", "run", "--source", "pattern", "--sink", "null", "--model", "tiny",
           "--size", "64x48", "--max-frames", "12", "--set", "model.device=cpu", "--set", "model.dtype=float32"]
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=True)
    assert "last time" not in first.stderr and "loading tiny (weights, text encoder, codecs)..." in first.stderr
    kept = json.loads((tmp_path / "startup.json").read_text())
    assert {k.split("|")[0] for k in kept} == {"load", "warmup"}
    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=True)
    assert "codecs; about " in second.stderr and " s last time)..." in second.stderr, second.stderr
    assert "warming up before the first frame (about " in second.stderr
