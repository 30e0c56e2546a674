"""`livestyle doctor`: every check reported, each gap with its fix."""

from __future__ import annotations

import json
import socket

import pytest
from host_helpers import free_tcp_port

from livestyle.cli import main
from livestyle.cli.doctor import check_obs, run_checks

EXPECTED = {"python", "torch", "pyav", "codecs", "ffmpeg (srt://)", "window (Tk)", "cameras",
            "virtual camera", "obs websocket", "chromium"}


def test_json_lists_every_check_and_every_gap_has_a_fix(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["doctor", "--json", "--obs-port", str(free_tcp_port())])
    checks = json.loads(capsys.readouterr().out)
    assert any(c["name"] == "obs websocket" and c["status"] == "missing" for c in checks)  # nothing on that port
    assert code == 1  # a missing check is an exit code scripts can stop on
    names = {c["name"] for c in checks}
    assert EXPECTED <= names
    assert any(n == "gpu" or n.startswith("gpu:") for n in names)
    for c in checks:
        assert c["status"] in ("ok", "warn", "missing")
        if c["status"] == "missing":
            assert c["fix"], c
    pyav = next(c for c in checks if c["name"] == "codecs")
    assert "libx264" in pyav["detail"] and "libvpx" in pyav["detail"]


def test_obs_check_reachable_and_not(tmp_path: object) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        ok = check_obs("127.0.0.1", port)
    assert ok.status in ("ok", "warn") and f"127.0.0.1:{port} reachable" in ok.detail
    gone = check_obs("127.0.0.1", free_tcp_port())
    assert gone.status == "missing"
    assert "Tools > WebSocket Server Settings" in gone.fix


def test_virtual_camera_gap_names_the_setup_command(monkeypatch: pytest.MonkeyPatch) -> None:
    import livestyle.cli.doctor as doctor

    monkeypatch.setattr(doctor, "_video_devices", lambda: [("/dev/video0", "Integrated Camera")])
    monkeypatch.setattr(doctor.platform, "system", lambda: "Linux")
    vcam = doctor.check_virtualcam()
    assert vcam.status == "missing" and "modprobe v4l2loopback" in vcam.fix
    cams = doctor.check_cameras()
    assert cams.status == "ok" and "/dev/video0 (Integrated Camera)" in cams.detail
    monkeypatch.setattr(doctor, "_video_devices", lambda: [("/dev/video9", "Dummy video device (0x0000)")])
    assert doctor.check_virtualcam().status in ("ok", "missing")  # ok when pyvirtualcam is installed
    assert doctor.check_cameras().status == "missing"


def test_human_report(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--obs-port", str(free_tcp_port())]) == 1  # OBS is missing on that port
    out = capsys.readouterr().out
    assert "[ok  ] python" in out
    assert "fix: start OBS" in out
    assert "checks passed" in out
    assert len(run_checks(obs_port=free_tcp_port())) >= len(EXPECTED)


def test_exit_code_is_0_only_when_nothing_is_missing(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    import livestyle.cli.doctor as doctor

    ok = [doctor.Check("python", "ok", "3.11"), doctor.Check("chromium", "warn", "none", "apt install chromium")]
    monkeypatch.setattr(doctor, "run_checks", lambda host, port: ok)
    assert main(["doctor"]) == 0
    assert "2 of 2 checks passed" in capsys.readouterr().out
    monkeypatch.setattr(doctor, "run_checks", lambda host, port: [*ok, doctor.Check("codecs", "missing", "no PyAV", "pip install av")])
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "2 of 3 checks passed; 1 missing (exit code 1)" in out and "fix: pip install av" in out


@pytest.mark.parametrize(("cuda", "smi", "fix"), [
    (None, True, "rerun bash scripts/setup.sh: it replaces the CPU build with the CUDA one"),
    ("12.8", True, "update the NVIDIA driver to one that supports CUDA 12.8"),
    (None, False, "install the driver until `nvidia-smi -L` lists the GPU, then rerun bash scripts/setup.sh"),
])
def test_gpu_fix_matches_what_setup_does(monkeypatch: pytest.MonkeyPatch, cuda: str | None, smi: bool, fix: str) -> None:
    """Issue 27, point 11: with an NVIDIA GPU and the CPU torch, 'rerun scripts/setup.sh' kept the CPU
    torch; now the fix names the real problem, and setup.sh replaces that build
    (tests/test_setup_progress.py)."""
    import torch

    from livestyle.cli import doctor

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", cuda)
    monkeypatch.setattr(doctor, "nvidia_smi_sees_gpu", lambda: smi)
    (gpu,) = [c for c in doctor.check_torch_gpu() if c.name == "gpu"]
    assert gpu.status == "missing" and fix in gpu.fix


def test_every_pip_fix_uses_the_python_that_runs_livestyle(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 27, point 12: a bare `pip` may belong to another environment (the system's, a conda
    base) and install where livestyle never looks; each fix names this interpreter's `-m pip`."""
    import re
    import sys
    from pathlib import Path

    for absent in ("cyndilib", "pyvirtualcam", "obswebsocket"):  # import of each fails: their fixes are pip lines
        monkeypatch.setitem(sys.modules, absent, None)
    with socket.socket() as server:  # something listens, so the OBS check gets to its library
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        checks = run_checks("127.0.0.1", server.getsockname()[1])
    fixes = [c.fix for c in checks if "pip" in c.fix]
    assert len(fixes) >= 3, checks
    python = str(Path(sys.executable).relative_to(Path.cwd())) if Path(sys.executable).is_relative_to(Path.cwd()) else sys.executable
    for fix in fixes:
        assert not re.search(r"(?<!-m )\bpip (install|uninstall)", fix), fix
        assert f"{python} -m pip " in fix, fix
