"""Generating the tiny model onto a full disk: one line, and no truncated file under the final name
(issue 28, point 10: a torch.save traceback left a broken model.pt that failed every later run)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from host_helpers import can_mount_tmpfs, full_tmpfs

pytestmark = pytest.mark.skipif(not can_mount_tmpfs(), reason="needs root to mount a tmpfs")


def test_the_tiny_model_on_a_full_disk_fails_in_one_line_and_leaves_nothing_half_written(tmp_path: Path) -> None:
    with full_tmpfs(tmp_path / "disk") as disk:
        env = {**os.environ, "LIVESTYLE_CACHE_DIR": str(disk / "cache"), "HF_HUB_OFFLINE": "1"}
        proc = subprocess.run([sys.executable, "-m", "livestyle", "weights", "pull", "tiny"], env=env,
                              capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        assert proc.returncode != 0
        assert "Traceback" not in proc.stderr, proc.stderr
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error")]
        assert len(errors) == 1 and "no space left" in errors[0] and "LIVESTYLE_CACHE_DIR" in errors[0], proc.stderr
        left = [p for p in (disk / "cache").rglob("*") if p.is_file()]
        assert left == [], left  # neither a truncated file under its final name nor a temporary one
