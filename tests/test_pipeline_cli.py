"""End to end through the CLI: the pattern source, the ``tiny`` test model (written to the cache on
first use, loaded through the real loaders) and an mp4 recording read back with PyAV."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from media_helpers import decoded_rgb

av = pytest.importorskip("av")


@pytest.mark.slow
def test_run_tiny_model_from_pattern_to_mp4(tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    env = {**os.environ, "LIVESTYLE_CACHE_DIR": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    env.pop("LIVESTYLE_WEIGHTS_DIR", None)
    cmd = [sys.executable, "-m", "livestyle", "run", "--source", "pattern", "--sink", str(out), "--model", "tiny",
           "--size", "32x32", "--max-frames", "13", "--no-pace", "--prompt", "an oil painting"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=280, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:] + proc.stdout[-2000:]
    assert "13 frames out" in proc.stdout + proc.stderr
    # the tiny model's files were written in their real release layouts
    generated = tmp_path / "cache" / "weights" / "tiny"
    assert (generated / "wan_causal_dmd_v2v" / "model.pt").is_file()
    assert (generated / "Wan2.1_VAE.pth").is_file()
    decoded = decoded_rgb(out)
    assert len(decoded) == 13
    assert all(img.shape == (32, 32, 3) for img in decoded)
    assert max(float(img.std()) for img in decoded) > 1.0  # styled noise, not a blank picture


def test_unknown_model_is_a_one_line_error(tmp_path: Path) -> None:
    env = {**os.environ, "LIVESTYLE_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-m", "livestyle", "run", "--source", "pattern", "--sink", "null",
                           "--model", "tiny-xl", "--max-frames", "1"], env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode != 0
    assert "unknown model 'tiny-xl'; valid models:" in proc.stderr + proc.stdout
    assert "tiny" in proc.stderr + proc.stdout and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_open_tiny_through_the_registry_and_real_loaders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fractions import Fraction

    import numpy as np

    from livestyle.config import config_from_dict
    from livestyle.engine.commands import SetDecoder, SetPrompt
    from livestyle.engine.frames import Frame
    from livestyle.generators import open_generator

    monkeypatch.setenv("LIVESTYLE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("LIVESTYLE_WEIGHTS_DIR", raising=False)
    config = config_from_dict({"model": {"name": "tiny", "steps": 2, "device": "cpu"}, "stream": {"size": "96x64"}})
    pipe = open_generator("tiny", config)
    s = pipe.stats()
    assert "test model" in s["model"].lower()
    assert s["size"] == "64x32"  # scaled into the tiny model's 64x64 bound, aspect kept
    assert s["kv_mode"] == "stream_batch" and s["decoder"] == "wan"

    def chunk(start: int, n: int) -> list[Frame]:
        return [Frame(np.full((64, 96, 3), (7 * (start + k)) % 256, np.uint8), pts=start + k, time_base=Fraction(1, 30),
                      capture_time=0.0, index=start + k) for k in range(n)]

    out = pipe.process(chunk(0, pipe.frames_needed()))
    assert [f.image.shape for f in out] == [(64, 96, 3)] * 5  # back at the source size
    pipe.apply(SetPrompt("a charcoal sketch", transition_chunks=1))
    assert pipe.wait_for_prompts(30)  # encoded off the generator thread; applied at the next chunk
    pipe.process(chunk(5, 4))
    pipe.apply(SetDecoder("tiny-decoder"))  # TAEHV decoder: the stream restarts with it
    out = pipe.process(chunk(9, pipe.frames_needed()))
    assert len(out) == 5 and pipe.stats()["decoder"] == "tiny-decoder"
