"""scripts/setup.sh says it is still working during long pip installs (issue 13)."""

from __future__ import annotations

import subprocess
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
