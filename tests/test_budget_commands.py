"""`livestyle budget` prints a command that runs as printed, in the same vocabulary (issue 13)."""

from __future__ import annotations

import shlex
from typing import Any

import pytest

from livestyle.cli import main
from livestyle.config import Config
from livestyle.pipeline import generators
from livestyle.pipeline.passthrough import PassthroughGenerator

PLANS = [
    ["--gpu", "h100", "--fps", "30", "--latency-ms", "250"],
    ["--gpu", "b200", "--fps", "11", "--latency-ms", "2500", "--model", "krea-14b"],
    ["--gpu", "rtx4090", "--fps", "24", "--latency-ms", "400"],
    ["--gpu", "rtx3060", "--fps", "8", "--latency-ms", "1500"],
    ["--gpu", "h100", "--fps", "20", "--latency-ms", "3000", "--model", "sdv2-1.3b"],
]


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
    import json

    plan = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert cfg.model.name == plan["model"] and cfg.model.steps == plan["steps"]
    assert cfg.model.vae == plan["decoder"]  # one decoder vocabulary: wan | tiny-decoder | tiny
    assert "x".join(map(str, cfg.stream.size)) == plan["size"]
    if model.startswith("sdv2"):
        assert cfg.model.stream_batch == plan["stream_batch"]


@pytest.mark.parametrize("vae", ["wan", "tiny-decoder", "tiny"])
def test_config_bench_and_budget_share_decoder_names(vae: str) -> None:
    from livestyle.config import load_config
    from livestyle.pipeline.budget import DECODERS

    assert vae in DECODERS
    assert load_config(None, [f"model.vae={vae}"]).model.vae == vae
