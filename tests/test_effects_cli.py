"""`livestyle run --effect ... --mask chroma` end to end: a real green-screen clip in, a real file out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from media_helpers import (
    GREEN,
    GREEN_CLIP_H,
    GREEN_CLIP_N,
    GREEN_CLIP_W,
    SKIN,
    decoded_rgb,
    write_green_clip,
)

from livestyle.cli import main
from livestyle.effects.masks.overlay import PREVIEW_TINT

av = pytest.importorskip("av")

W, H, N = GREEN_CLIP_W, GREEN_CLIP_H, GREEN_CLIP_N


@pytest.mark.parametrize("effect", ["background", "person"])
def test_mask_preview_through_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], effect: str) -> None:
    clip, out = tmp_path / "green.mp4", tmp_path / "out.mkv"
    write_green_clip(clip)
    code = main([
        "run", "--source", str(clip), "--sink", str(out), "--model", "passthrough", "--size", f"{W}x{H}",
        "--max-frames", str(N), "--no-pace", "--no-loop", "--quiet",
        "--effect", effect, "--mask", "chroma", "--mask-preview",
    ])
    err = capsys.readouterr().err
    assert code == 0, err
    frames = decoded_rgb(out)
    assert len(frames) == N
    tint = np.array(PREVIEW_TINT, np.float32)
    for img in frames:
        screen = img[4:12, 4:40].astype(np.float32).mean(axis=(0, 1))
        subject = img[40:80, 64:96].astype(np.float32).mean(axis=(0, 1))
        # the screen is tinted towards magenta, the subject is left as it was
        assert np.abs(screen - (0.6 * tint + 0.4 * np.array(GREEN))).max() < 20, screen
        assert np.abs(subject - np.array(SKIN)).max() < 12, subject


def test_unknown_effect_and_mask_are_one_line_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--source", "pattern", "--sink", "null", "--effect", "sky", "--quiet"]) == 2
    assert capsys.readouterr().err.strip() == "error: effects.mode: expected one of full, background, person, got 'sky'"
    assert main(["run", "--source", "pattern", "--sink", "null", "--effect", "background", "--mask", "depth", "--quiet"]) == 2
    assert capsys.readouterr().err.strip() == "error: effects.mask: expected one of chroma, person, selfie, person-hq, got 'depth'"


@pytest.mark.parametrize(
    ("mask", "model", "prefix"),
    [("person-hq", "modnet-webcam", "person mask (person-hq, MODNet): model 'modnet-webcam' is missing its model file "),
     ("selfie", "mediapipe-selfie", "person mask (selfie): model 'mediapipe-selfie' is missing its general file ")],
)
def test_missing_person_model_names_the_pull_command(
    mask: str, model: str, prefix: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("LIVESTYLE_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.setenv("LIVESTYLE_CACHE_DIR", str(tmp_path / "cache"))
    code = main(["run", "--source", "pattern", "--sink", "null", "--max-frames", "2", "--effect", "background", "--mask", mask, "--quiet"])
    *warnings, err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert all(w.startswith("warning: ") for w in warnings)  # passthrough's "will do nothing"
    assert err.startswith("error: " + prefix)
    assert f"run `livestyle weights pull {model}`" in err
