"""Fault injection with real processes: signals during a recording, a full disk, a source file that
breaks while it loops. Each run is ``python -m livestyle run`` on the synthetic pattern."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

av = pytest.importorskip("av")

BASE = ["run", "--source", "pattern", "--size", "160x96", "--fps", "30", "--model", "passthrough", "-q", "--no-keys"]


def spawn(args: list[str], cwd: Path, *, preexec: Callable[[], None] | None = None,
          prefix: tuple[str, ...] = ()) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1", LIVESTYLE_LOG="WARNING")
    return subprocess.Popen([*prefix, sys.executable, "-m", "livestyle", *args], cwd=cwd, env=env, text=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=preexec)


def frames_in(path: Path) -> int:
    """How many video frames decode from ``path`` (raises if it cannot be opened)."""
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def frames_before_damage(path: Path) -> int:
    """Frames that decode from ``path`` before the first damaged packet (a write cut short by a
    full disk leaves its last packet incomplete; players skip it the same way)."""
    count = 0
    with av.open(str(path)) as container:
        try:
            for _ in container.decode(video=0):
                count += 1
        except av.error.InvalidDataError:
            pass
    return count


def wait_for_bytes(path: Path, size: int, proc: subprocess.Popen[str], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.stat().st_size >= size):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path} never reached {size} bytes"
        time.sleep(0.05)


@pytest.mark.parametrize("name", ["rec.mp4", "rec.mov", "rec.mkv", "rec.ts", "rec.flv"])
def test_sigkill_leaves_a_playable_recording(tmp_path: Path, name: str) -> None:
    proc = spawn([*BASE, "--sink", name], tmp_path)
    wait_for_bytes(tmp_path / name, 1, proc)
    time.sleep(2.5)  # two fragments/clusters at least
    proc.kill()
    proc.wait(10)
    assert frames_in(tmp_path / name) >= 45  # ~1.5 s of 2.5 s at 30 fps: at most about a second lost


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGINT, 130)])
def test_stop_signals_finalize_and_exit_128_plus_n(tmp_path: Path, sig: signal.Signals, code: int) -> None:
    proc = spawn([*BASE, "--sink", "rec.mp4", "--sink", "rec.mkv"], tmp_path)
    wait_for_bytes(tmp_path / "rec.mkv", 1, proc)
    time.sleep(1.0)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == code, err
    assert f"stopped by {sig.name}" in err and "done (signal)" in err and "Traceback" not in err
    done = int(err.split("done (signal): ")[1].split(" frames out")[0])
    assert frames_in(tmp_path / "rec.mp4") == done == frames_in(tmp_path / "rec.mkv")


def test_faststart_on_request_writes_a_classic_file_on_a_clean_end(tmp_path: Path) -> None:
    proc = spawn([*BASE, "--sink", "rec.mp4", "--max-frames", "30", "--set", "recording.mp4=faststart"], tmp_path)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    data = (tmp_path / "rec.mp4").read_bytes()
    assert 0 < data.find(b"moov") < data.find(b"mdat") and b"moof" not in data  # index first, no fragments
    assert frames_in(tmp_path / "rec.mp4") == 30
    proc = spawn([*BASE, "--sink", "frag.mp4", "--max-frames", "30"], tmp_path)
    proc.communicate(timeout=30)
    frag = (tmp_path / "frag.mp4").read_bytes()
    assert b"moof" in frag and frames_in(tmp_path / "frag.mp4") == 30  # the default is fragmented


def _tmpfs_prefix(mount: Path, size: str) -> tuple[str, ...] | None:
    """A command prefix that runs the rest in a private mount namespace with a small tmpfs at ``mount``."""
    if shutil.which("unshare") is None or os.geteuid() != 0:
        return None
    probe = subprocess.run(["unshare", "-m", "sh", "-c", f"mount -t tmpfs -o size={size} tmpfs {mount}"],
                           capture_output=True)
    if probe.returncode != 0:
        return None
    script = f'mount -t tmpfs -o size={size} tmpfs "{mount}" && "$0" "$@"; rc=$?; cp "{mount}"/* "{mount}.copy/" ; exit $rc'
    return ("unshare", "-m", "sh", "-c", script)


def _file_size_limit(limit: int) -> Callable[[], None]:
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_a_full_disk_stops_that_recording_alone(tmp_path: Path) -> None:
    """The recording on a 48 KiB tmpfs (or under a 48 KiB file-size limit where no tmpfs can be
    mounted) fails with one line; the null sink and an mkv elsewhere go on to --max-frames."""
    small = tmp_path / "small"
    small.mkdir()
    (tmp_path / "small.copy").mkdir()
    prefix = _tmpfs_prefix(small, "48k")
    preexec = None if prefix else _file_size_limit(48 * 1024)
    args = [*BASE, "--sink", "small/rec.mp4", "--sink", "null", "--max-frames", "300", "--no-pace"]
    if prefix:  # the tmpfs holds only the recording, so a second recording may live elsewhere
        args += ["--sink", "other.mkv"]
    proc = spawn(args, tmp_path, preexec=preexec, prefix=prefix or ())
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err
    assert "done (max_frames): 300 frames out" in err and "Traceback" not in err
    failed = [line for line in err.splitlines() if "small/rec.mp4 failed" in line and "the other sinks go on" in line]
    assert len(failed) == 1, err
    assert "No space left on device" in failed[0] or "File too large" in failed[0]
    if prefix:
        assert frames_in(tmp_path / "other.mkv") == 300
        kept = tmp_path / "small.copy" / "rec.mp4"
    else:
        kept = small / "rec.mp4"
    assert frames_before_damage(kept) >= 15  # what fit on the disk plays (fragmented MP4)


def _clip(tmp_path: Path) -> Path:
    proc = spawn([*BASE, "--sink", "clip.mp4", "--max-frames", "30", "--no-pace"], tmp_path)
    proc.communicate(timeout=30)
    return tmp_path / "clip.mp4"


@pytest.mark.parametrize("damage", ["truncate", "delete"])
def test_a_looping_source_file_that_breaks_ends_the_run_with_an_error(tmp_path: Path, damage: str) -> None:
    clip = _clip(tmp_path)
    proc = spawn(["run", "--source", "clip.mp4", "--size", "160x96", "--model", "passthrough", "-q", "--no-keys",
                  "--sink", "out.mkv"], tmp_path)
    wait_for_bytes(tmp_path / "out.mkv", 1, proc)
    time.sleep(0.5)
    if damage == "truncate":
        os.truncate(clip, clip.stat().st_size // 3)
    else:
        clip.unlink()
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1, err
    assert err.count("error: clip.mp4 was") == 1 and "Traceback" not in err
    # the recording of what played is finalized (the damage lands ~0.5 s after the first bytes,
    # inside the clip's first 1 s pass or just after it)
    assert frames_in(tmp_path / "out.mkv") >= 15


def test_a_recording_whose_folder_is_deleted_mid_run_is_reported_lost(tmp_path: Path) -> None:
    """Issue 28, point 9: the folder of a recording removed while it records: the recording is a
    lost sink (exit 3, one warning), not ``exit 0, written: gone/rec.mp4 150`` for a file that no
    longer exists; the other sinks reach the end."""
    gone = tmp_path / "gone"
    gone.mkdir()
    proc = spawn([*BASE, "--sink", "gone/rec.mp4", "--sink", "kept.mkv", "--max-frames", "90"], tmp_path)
    deadline = time.monotonic() + 30
    while not (gone / "rec.mp4").exists() or (gone / "rec.mp4").stat().st_size < 1000:
        assert time.monotonic() < deadline and proc.poll() is None, "the recording never started"
        time.sleep(0.05)
    shutil.rmtree(gone)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, err
    assert "gone/rec.mp4 was deleted (or its folder) while recording" in err and "Traceback" not in err, err
    assert "gone/rec.mp4 90 (failed)" in err, err
    assert frames_in(tmp_path / "kept.mkv") == 90
