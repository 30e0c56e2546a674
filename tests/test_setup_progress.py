"""scripts/setup.sh says it is still working during long pip installs (issue 13)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_long_steps_report_progress_with_the_last_log_line(tmp_path: Path) -> None:
    log = tmp_path / "setup.log"
    script = (f"source {ROOT / 'scripts/progress.sh'}; "
              f"with_progress {log} 'pip install' bash -c 'echo Collecting torch; sleep 2.6; echo Installing; sleep 0.3'")
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env={"PROGRESS_EVERY": "1", "PATH": "/usr/bin:/bin"}, check=False,
                         timeout=30)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) >= 2 and lines[0] == "  ... pip install: 1 s (Collecting torch)", lines
    assert "Collecting torch" in log.read_text()  # the command's own output goes to the log only


def test_a_failing_step_returns_its_status(tmp_path: Path) -> None:
    script = f"source {ROOT / 'scripts/progress.sh'}; with_progress {tmp_path / 'log'} x bash -c 'exit 7'"
    assert subprocess.run(["bash", "-c", script], timeout=30, check=False).returncode == 7


def test_setup_help_prints_the_usage_not_the_script() -> None:
    out = subprocess.run(["bash", str(ROOT / "scripts/setup.sh"), "--help"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("Set up livestyle in ./.venv.")
    assert "set -euo" not in out.stdout and not any(ln.startswith("#") for ln in out.stdout.splitlines())


def test_setup_replaces_a_cpu_torch_when_an_nvidia_gpu_is_present(tmp_path: Path) -> None:
    """Issue 27, point 11: with a GPU present a rerun kept the CPU torch (`already installed`).
    A copy of the scripts with a fake nvidia-smi, a fake CPU-build torch and a pip that only logs."""
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    for name in ("setup.sh", "progress.sh"):
        shutil.copy(ROOT / "scripts" / name, repo / "scripts" / name)
    shutil.copy(ROOT / "pyproject.toml", repo / "pyproject.toml")
    fake_site = tmp_path / "site"
    (fake_site / "torch").mkdir(parents=True)
    (fake_site / "torch" / "__init__.py").write_text("__version__ = '2.13.0+cpu'\nclass version:\n    cuda = None\n")
    (fake_site / "livestyle").mkdir()
    (fake_site / "livestyle" / "__init__.py").write_text("")
    pip_log = tmp_path / "pip.log"
    venv_bin = repo / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "python").write_text(
        "#!/usr/bin/env bash\n"
        f'if [[ $1 == -m && $2 == pip ]]; then shift 2; echo "$*" >> {pip_log}; exit 0; fi\n'
        f'PYTHONPATH={fake_site} exec {sys.executable} "$@"\n'
    )
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "nvidia-smi").write_text("#!/bin/sh\necho 'GPU 0: NVIDIA GeForce RTX 4090 (UUID: GPU-0)'\n")
    for script in (venv_bin / "python", bin_dir / "nvidia-smi"):
        script.chmod(0o755)
    digest = subprocess.run(["sha256sum", str(repo / "pyproject.toml")], capture_output=True, text=True,
                            check=True).stdout[:16]
    (repo / ".venv" / ".livestyle-setup").write_text(f"all {digest}\n")  # "set up" before, with the CPU torch
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    done = subprocess.run(["bash", "scripts/setup.sh"], cwd=repo, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "already installed" not in done.stdout
    assert "replacing the CPU build of torch: an NVIDIA GPU is present" in done.stdout
    calls = pip_log.read_text().splitlines()
    assert calls[0].startswith("uninstall -y") and calls[0].endswith(" torch")
    assert calls[1].endswith("torch==2.13.0") and "download.pytorch.org/whl/cpu" not in calls[1]
    if shutil.which("nvidia-smi", path="/usr/bin:/bin"):
        return  # a real GPU host: the no-GPU half cannot be shown here
    # without the GPU the same venv is left alone
    pip_log.unlink()
    bare = {**os.environ, "PATH": "/usr/bin:/bin"}
    again = subprocess.run(["bash", "scripts/setup.sh"], cwd=repo, capture_output=True, text=True, env=bare)
    assert again.returncode == 0 and "already installed" in again.stdout and not pip_log.exists()
