"""Honest defaults (issue 13): --model auto, and passthrough says what it ignores."""

from __future__ import annotations

import pytest

from livestyle.cli import main
from livestyle.config import ModelConfig
from livestyle.planning.auto import choose_model
from livestyle.planning.gpu import LocalGpu


def test_the_default_model_is_auto() -> None:
    assert ModelConfig().name == "auto"


def test_no_weights_means_passthrough_with_a_way_out() -> None:
    choice = choose_model(30, present=lambda _d: [], gpu=lambda: LocalGpu("NVIDIA GeForce RTX 4090", 24, "rtx4090"))
    assert choice.model == "passthrough" and not choice.styles
    assert "livestyle weights pull" in choice.reason


def test_weights_without_a_gpu_means_passthrough() -> None:
    choice = choose_model(30, present=lambda _d: ["sdv2-1.3b"], gpu=lambda: None)
    assert choice.model == "passthrough" and "no CUDA GPU" in choice.reason


def test_the_best_present_model_that_fits_the_gpu() -> None:
    both = lambda _d: ["sdv2-1.3b", "sdv2-14b"]
    assert choose_model(30, present=both, gpu=lambda: LocalGpu("NVIDIA H100 80GB HBM3", 80, "h100")).model == "sdv2-14b"
    # a 12 GB card cannot hold the 14B: the 1.3B it is
    assert choose_model(15, present=both, gpu=lambda: LocalGpu("NVIDIA GeForce RTX 3060", 12, "rtx3060")).model == "sdv2-1.3b"
    # an unknown card is planned as the slowest profile with its own memory
    small = choose_model(8, present=both, gpu=lambda: LocalGpu("Some Future GPU", 16, None))
    assert small.model == "sdv2-1.3b" and "Some Future GPU" in small.reason


def test_only_a_14b_present_on_a_small_card_means_passthrough() -> None:
    choice = choose_model(30, present=lambda _d: ["sdv2-14b"], gpu=lambda: LocalGpu("NVIDIA GeForce RTX 4070", 12, "rtx4070"))
    assert choice.model == "passthrough" and "fits" in choice.reason


def test_cli_says_auto_fell_back_and_warns_that_the_prompt_does_nothing(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))  # no weights anywhere
    monkeypatch.setenv("LIVESTYLE_CACHE_DIR", str(tmp_path / "cache"))
    code = main(["run", "--source", "pattern", "--sink", "null", "--max-frames", "2",
                 "--prompt", "oil painting", "--effect", "background", "--mask", "chroma"])
    err = capsys.readouterr().err
    assert code == 0
    assert "note: --model auto: no model weights found" in err
    assert "warning: the prompt and --effect background will do nothing: passthrough has no model" in err


def test_explicit_passthrough_with_a_preset_warns(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "--source", "pattern", "--sink", "null", "--max-frames", "2", "--quiet",
                 "--model", "passthrough", "--preset", "watercolor"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "warning: the preset will do nothing" in err and "note: --model auto" not in err
