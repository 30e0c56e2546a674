"""`livestyle bench` on CPU with the tiny random model: the same code path as on a GPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from livestyle.cli.bench import write_profile
from livestyle.errors import ConfigError
from livestyle.diffusion.random_models import random_stream_models

# Block the packages the GPU device lacks, so the bench path is proven not to need them (pydantic
# cannot be blocked here: this venv's typer imports it for option coercion; the device's typer does
# not, and `livestyle bench` ran there).
BLOCK = (
    "import sys\n"
    "class _Block:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.split('.')[0] in ('av', 'aiortc'):\n"
    "            raise ImportError('blocked for the test: ' + name)\n"
    "sys.meta_path.insert(0, _Block())\n"
    "from livestyle.cli import main\n"
    "sys.argv = ['livestyle'] + sys.argv[1:]\n"
    "main()\n"
)


def test_bench_runs_tiny_on_cpu_and_prints_json_last(tmp_path: Path) -> None:
    profile = tmp_path / "cpu.yaml"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", BLOCK, "bench", "--model", "tiny", "--device", "cpu", "--size", "64x48", "--steps", "2",
         "--vae", "tiny", "--seconds", "0.3", "--glass-seconds", "0.8", "--warmup", "2", "--write-profile", str(profile)],
        capture_output=True, text=True, timeout=240, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    last = proc.stdout.strip().splitlines()[-1]
    result = json.loads(last)
    assert result["model"] == "sdv2-tiny" and result["device"] == "cpu" and result["steps"] == 2
    assert result["frames"] > 0 and result["fps"] > 0 and result["first_frames_s"] > 0
    assert set(result["stages_ms"]) == {"encode", "denoise", "decode"}
    glass = result["glass_to_glass_ms"]
    assert glass["frames_written"] > 0 and glass["fps_written"] > 0 and glass["warmup_s"] is not None
    assert {"p50", "p95", "p99", "frames_lost", "gap_ms", "stalls"} <= set(glass)
    assert "viewer (30 fps camera" in proc.stdout
    assert "stage medians ms" in proc.stdout
    assert glass["governor"]["enabled"] is True  # the camera run steps down as `livestyle run` does
    assert "governor: on, as in `livestyle run`" in proc.stdout
    data = yaml.safe_load(profile.read_text())
    assert data["stages"]["dit"]["tiny"][2] == result["stages_ms"]["denoise"]
    assert data["stages"]["tiny_decode"] == result["stages_ms"]["decode"]


def test_bench_runs_the_tiny_model_over_two_stage_processes(tmp_path: Path) -> None:
    """``bench --gpus 2 --device cpu``: the random stack built in two stage processes (gloo), the
    same measurements, and the stages named in the JSON."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", BLOCK, "bench", "--model", "tiny", "--device", "cpu", "--size", "64x48", "--steps", "2",
         "--vae", "tiny", "--seconds", "0.5", "--glass-seconds", "1.0", "--warmup", "2", "--gpus", "2"],
        capture_output=True, text=True, timeout=240, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["gpus"] == 2 and result["stages"] == ["stage 0: blocks 0-0", "stage 1: blocks 1-1"]
    assert result["frames"] > 0 and result["fps"] > 0
    assert result["glass_to_glass_ms"]["frames_written"] > 0
    assert "Traceback" not in proc.stderr


def test_write_profile_keeps_other_entries(tmp_path: Path) -> None:
    path = tmp_path / "g.yaml"
    path.write_text(yaml.safe_dump({"name": "g", "stages": {"dit": {"14b": {1: 90.0}}, "vae_encode": 30.0}}))
    result = {"stages_ms": {"encode": 40.0, "denoise": 50.0, "decode": 3.0}, "steps": 2, "kv_mode": "stream_batch",
              "dit": "1.3b", "vae": "tiny-decoder", "device": "X", "torch": "t", "dtype": "bfloat16", "compiled": False}
    write_profile(path, result)
    data = yaml.safe_load(path.read_text())
    assert data["stages"]["dit"] == {"14b": {1: 90.0}, "1.3b": {2: 50.0}}
    assert data["stages"]["vae_encode"] == 40.0 and data["stages"]["tiny_decode"] == 3.0


def test_unknown_size_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown model size '7b'"):
        random_stream_models("7b", "cpu", __import__("torch").float32)


def test_bad_vae_choice_is_a_config_error() -> None:
    from livestyle.cli.bench import BenchOptions, run_bench

    with pytest.raises(ConfigError, match="--vae 'vqgan' is not one of wan, tiny-decoder, tiny"):
        run_bench(BenchOptions(model="tiny", vae="vqgan", device="cpu"))


@pytest.mark.parametrize(("args", "message"), [
    (["--seconds", "nan"], "error: --seconds must be a finite number of seconds above 0, got nan"),
    (["--seconds", "0"], "error: --seconds must be a finite number of seconds above 0, got 0.0"),
    (["--glass-seconds", "inf"], "error: --glass-seconds must be a finite number of seconds, 0 or more, got inf"),
    (["--gpus", "0"], "Error: Invalid value for '--gpus': Input should be greater than or equal to 1"),
])
def test_seconds_that_never_end_are_refused_in_one_line(args: list[str], message: str) -> None:
    """Issue 28, point 11: `bench --seconds nan` ran forever (NaN is not <= 0) and ignored SIGINT."""
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-m", "livestyle", "bench", "--model", "tiny", "--device", "cpu", *args],
                         capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip().splitlines()[-1] == message
