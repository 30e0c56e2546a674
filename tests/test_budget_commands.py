"""`livestyle budget` prints a command that runs as printed, in the same vocabulary (issue 13)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest

from livestyle.cli import main
from livestyle.config import Config
from livestyle import generators
from livestyle.engine.passthrough import PassthroughGenerator

PLANS = [
    ["--gpu", "h100", "--fps", "30", "--latency-ms", "250"],
    ["--gpu", "b200", "--fps", "11", "--latency-ms", "2500", "--model", "krea-14b"],
    ["--gpu", "rtx4090", "--fps", "24", "--latency-ms", "400"],
    ["--gpu", "rtx3060", "--fps", "8", "--latency-ms", "1500"],
    ["--gpu", "h100", "--fps", "20", "--latency-ms", "3000", "--model", "sdv2-1.3b"],
]


@pytest.fixture(autouse=True)
def _no_weights_here(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plans do not depend on what this machine has pulled (tests below set what is present)."""
    from livestyle.planning import auto

    monkeypatch.setattr(auto, "present_models", lambda weights_dir=None, names=None: [])


def printed_command(capsys: pytest.CaptureFixture[str], args: list[str]) -> list[str]:
    assert main(["budget", *args]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("livestyle run ")]
    assert len(lines) == 1, lines
    return shlex.split(lines[0])


@pytest.mark.parametrize("args", PLANS)
def test_each_printed_command_runs_and_configures_the_plan(
    args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = printed_command(capsys, args)
    assert argv[:2] == ["livestyle", "run"]
    assert "--source" in argv and "--sink" in argv
    model = argv[argv.index("--model") + 1]
    seen: list[Config] = []

    def fake_model(config: Config) -> Any:  # the real CLI path with the model swapped for passthrough
        seen.append(config)
        return PassthroughGenerator()

    monkeypatch.setitem(generators.GENERATORS, model, fake_model)
    argv[argv.index("--source") + 1] = "pattern"
    argv[argv.index("--sink") + 1] = "null"
    assert main([*argv[1:], "--max-frames", "2", "--quiet"]) == 0, capsys.readouterr().err
    (cfg,) = seen
    capsys.readouterr()
    assert main(["budget", *args, "--json"]) == 0
    plan = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert cfg.model.name == plan["model"] and cfg.model.steps == plan["steps"]
    assert cfg.model.vae == plan["decoder"]  # one decoder vocabulary: wan | tiny-decoder | tiny
    assert "x".join(map(str, cfg.stream.size)) == plan["size"]
    if model.startswith("sdv2"):
        assert cfg.model.stream_batch == plan["stream_batch"]


@pytest.mark.parametrize("vae", ["wan", "tiny-decoder", "tiny"])
def test_config_bench_and_budget_share_decoder_names(vae: str) -> None:
    from livestyle.config import load_config
    from livestyle.planning.budget import DECODERS

    assert vae in DECODERS
    assert load_config(None, [f"model.vae={vae}"]).model.vae == vae


QUICK_START = ["--gpu", "h100", "--fps", "30", "--latency-ms", "400"]  # README Quick start, step 3


def _present(monkeypatch: pytest.MonkeyPatch, models: list[str]) -> None:
    from livestyle.planning import auto

    monkeypatch.setattr(auto, "present_models", lambda weights_dir=None, names=None: [
        m for m in models if names is None or m in names])


def test_budget_plans_only_for_the_models_whose_weights_are_here(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 27, point 4: after the Quick start pulls sdv2-1.3b, its `budget` line runs sdv2-1.3b
    (it printed --model sdv2-14b, whose weights were not there)."""
    _present(monkeypatch, ["sdv2-1.3b"])
    assert main(["budget", *QUICK_START]) == 0
    out, err = capsys.readouterr()
    (line,) = [ln for ln in out.splitlines() if ln.startswith("livestyle run ")]
    assert "--model sdv2-1.3b" in line and "weights pull" not in out
    assert "note: planning for the models whose weights are here: sdv2-1.3b (--all-models for every model)" in err
    assert main(["budget", *QUICK_START, "--all-models"]) == 0
    out = capsys.readouterr().out
    assert "--model sdv2-14b" in out and "livestyle weights pull sdv2-14b" in out.splitlines()


def test_budget_without_weights_plans_for_every_model_and_says_what_to_pull(
    capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["budget", *QUICK_START]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    run_line = next(i for i, ln in enumerate(lines) if ln.startswith("livestyle run "))
    model = shlex.split(lines[run_line])[shlex.split(lines[run_line]).index("--model") + 1]
    assert f"livestyle weights pull {model}" in lines[:run_line]  # before the run line, as a line of its own
    assert "no model weights found here; planning for every model" in err
    assert main(["budget", *QUICK_START, "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["weights_present"] is False


def test_budget_unmeetable_among_present_models_points_at_all_models(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _present(monkeypatch, ["sdv2-1.3b"])
    assert main(["budget", "--gpu", "rtx3060", "--fps", "500"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: 500 fps cannot be met") and err.endswith("--all-models for every model)")
    assert len(err.splitlines()) == 1


def test_budget_finds_weights_in_a_weights_dir_and_passes_it_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from livestyle.models.weights import get_model
    from livestyle.planning import auto

    monkeypatch.undo()  # the real present_models, looking in tmp_path
    monkeypatch.delenv("LIVESTYLE_WEIGHTS_DIR", raising=False)
    for spec in get_model("sdv2-1.3b").files.values():
        target = tmp_path / "sdv2-1.3b" / spec.path
        if spec.is_folder:
            (target / "x.json").parent.mkdir(parents=True, exist_ok=True)
            (target / "x.json").write_text("{}")
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(b"")
    assert "sdv2-1.3b" in auto.present_models(str(tmp_path))
    assert main(["budget", *QUICK_START, "--weights-dir", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    (line,) = [ln for ln in out.splitlines() if ln.startswith("livestyle run ")]
    assert "sdv2-1.3b" in err and line.endswith(f"--weights-dir {tmp_path}")
