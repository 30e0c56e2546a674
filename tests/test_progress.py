"""Waits say what is happening (issue 13): model load, warm-up; bare `livestyle` is help."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from livestyle.cli import main
from livestyle.cli.status import format_status
from livestyle.config import Config
from livestyle import generators
from livestyle.engine.passthrough import PassthroughGenerator


def test_loading_a_model_says_what_and_how_long(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    def slow_model(config: Config) -> Any:
        return PassthroughGenerator()

    monkeypatch.setitem(generators.GENERATORS, "slow-model", slow_model)
    assert main(["run", "--source", "pattern", "--sink", "null", "--max-frames", "2", "--quiet", "--model", "slow-model"]) == 0
    err = capsys.readouterr().err
    assert "loading slow-model (weights, text encoder, codecs)..." in err
    assert "loaded slow-model in " in err and "warming up before the first frame" in err


def test_the_status_line_says_warming_up() -> None:
    line = format_status({"fps_in": 30.0, "fps_out": 0.0, "frames_out": 0, "warming": True})
    assert line.endswith("warming up the model (first frames follow)"), line


def test_bare_livestyle_prints_help_and_succeeds() -> None:
    out = subprocess.run([sys.executable, "-m", "livestyle"], capture_output=True, text=True, check=False)
    assert out.returncode == 0 and "Usage" in out.stdout
