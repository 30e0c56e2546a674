"""``livestyle doctor``: what this machine offers livestyle, and the fix for each missing piece.

Each check is a small function returning a :class:`Check`; none of them needs the network
(the OBS check only tries a TCP connection to the configured host and port).
"""

from __future__ import annotations

import glob
import json
import platform
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Literal

import typer

from livestyle.cli.help_text import examples
from livestyle.optional import ffmpeg_protocols

__all__ = ["Check", "doctor", "pip_command", "register", "run_checks"]

EXAMPLES = examples(
    "livestyle doctor",
    "livestyle doctor --json",
    "livestyle doctor --obs-host 192.168.1.20 --obs-port 4455",
)

Status = Literal["ok", "warn", "missing"]

ENCODERS = ("libx264", "h264", "h264_nvenc", "libvpx", "libopus", "aac")
"""Encoders worth knowing about: recordings and streams (x264, NVENC), WebRTC (VP8, Opus)."""


@dataclass(frozen=True)
class Check:
    """One line of the report: ``status`` ok / warn (works, with limits) / missing."""

    name: str
    status: Status
    detail: str
    fix: str = ""


def pip_command(args: str) -> str:
    """``python -m pip ARGS`` with the Python that runs livestyle (``.venv/bin/python`` from the
    repository, ``.venv\\Scripts\\python.exe`` on Windows): a bare ``pip`` may be another
    environment's and install where livestyle never looks."""
    exe = Path(sys.executable)
    try:
        shown = str(exe.relative_to(Path.cwd()))
    except ValueError:
        shown = str(exe)
    if " " in shown:
        shown = f'"{shown}"'
    return f"{shown} -m pip {args}"


def check_python() -> Check:
    v = sys.version_info
    ok = v >= (3, 10)
    return Check("python", "ok" if ok else "missing", platform.python_version(),
                 "" if ok else "install Python 3.10 or newer")


def check_torch_gpu() -> list[Check]:
    try:
        import torch
    except ImportError:
        return [Check("torch", "missing", "not installed", "bash scripts/setup.sh (installs the right torch build)")]
    out = [Check("torch", "ok", torch.__version__)]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            out.append(Check(f"gpu:{i}", "ok", f"{p.name}, {p.total_memory / 2**30:.0f} GiB, "
                             f"compute {p.major}.{p.minor}, CUDA {torch.version.cuda}"))
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        out.append(Check("gpu", "warn", "Apple MPS (models run slowly; passthrough is fine)"))
    elif torch.version.cuda is None and nvidia_smi_sees_gpu():
        out.append(Check(
            "gpu", "missing", f"an NVIDIA GPU is present but torch {torch.__version__} is the CPU build",
            "rerun bash scripts/setup.sh: it replaces the CPU build with the CUDA one",
        ))
    elif torch.version.cuda is not None and nvidia_smi_sees_gpu():
        out.append(Check(
            "gpu", "missing", f"nvidia-smi lists a GPU but torch (CUDA {torch.version.cuda}) cannot use it",
            "update the NVIDIA driver to one that supports CUDA " f"{torch.version.cuda} (nvidia-smi shows its version)",
        ))
    else:
        out.append(Check(
            "gpu", "missing", "no CUDA GPU: only passthrough and bypass run in real time",
            "on an NVIDIA machine install the driver until `nvidia-smi -L` lists the GPU, then rerun "
            "bash scripts/setup.sh (it installs the CUDA build of torch)",
        ))
    return out


def nvidia_smi_sees_gpu() -> bool:
    """Whether ``nvidia-smi -L`` lists a GPU (the test scripts/setup.sh makes for the CUDA build)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return False
    try:
        done = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and "GPU" in done.stdout


def check_pyav() -> list[Check]:
    try:
        import av
    except ImportError:
        return [Check("pyav", "missing", "not installed (files, streams and cameras need it)",
                      pip_command('install "livestyle[io]"'))]
    out = [Check("pyav", "ok", f"{av.__version__} (FFmpeg {_ffmpeg_version(av)})")]
    have, lack = [], []
    for name in ENCODERS:
        try:
            av.codec.Codec(name, "w")
            have.append(name)
        except Exception:  # noqa: BLE001 - av raises several types for "no such encoder"
            lack.append(name)
    essential = {"libx264", "libvpx"} & set(lack)
    status: Status = "missing" if essential else ("warn" if lack else "ok")
    detail = "encoders: " + ", ".join(have) + (f"; not available: {', '.join(lack)}" if lack else "")
    fix = ""
    if essential:
        fix = f"reinstall PyAV from its wheels ({pip_command('install --force-reinstall av')}), which bundle x264 and libvpx"
    elif "h264_nvenc" in lack:
        fix = "h264_nvenc (GPU encoding) needs an NVIDIA GPU and an FFmpeg build with NVENC; libx264 is used instead"
    out.append(Check("codecs", status, detail, fix))
    return out


def _ffmpeg_version(av: object) -> str:
    versions = getattr(av, "ffmpeg_version_info", None) or getattr(av, "library_versions", {})
    if isinstance(versions, str):
        return versions
    if isinstance(versions, dict):
        lib = versions.get("libavformat")
        return ".".join(str(x) for x in lib) if lib else "?"
    return "?"


def check_ffmpeg_cli() -> Check:
    exe = shutil.which("ffmpeg")
    if exe is None:
        return Check("ffmpeg (srt://)", "warn", "no ffmpeg command: srt:// sources and sinks are off",
                     "apt install ffmpeg (or brew install ffmpeg); PyAV's wheels have no SRT")
    try:
        protocols = ffmpeg_protocols(exe)
    except (OSError, subprocess.SubprocessError) as exc:
        return Check("ffmpeg (srt://)", "warn", f"{exe} did not run: {exc}", "reinstall ffmpeg")
    if "srt" in protocols:
        return Check("ffmpeg (srt://)", "ok", f"{exe} with libsrt")
    return Check("ffmpeg (srt://)", "warn", f"{exe} has no libsrt: srt:// is off",
                 "install an ffmpeg built with libsrt (Debian/Ubuntu's ffmpeg has it)")


def check_window() -> Check:
    """The ``window`` sink: Tk in this Python (the window runs in a process of its own) and a display."""
    import importlib.util
    import os

    if importlib.util.find_spec("_tkinter") is None:
        return Check("window (Tk)", "warn", "no Tk in this Python: the window sink is off",
                     "sudo apt install python3-tk (Debian/Ubuntu); the python.org installers include Tk")
    if platform.system() == "Linux" and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return Check("window (Tk)", "warn", "Tk present, but no display (DISPLAY is not set)",
                     "run on a desktop for --sink window; or use --sink virtualcam, out.mp4 or a stream URL")
    return Check("window (Tk)", "ok", "Tk present; the window runs in a process of its own")


def _video_devices() -> list[tuple[str, str]]:
    """``(path, name)`` of every /dev/video* (Linux); the name from sysfs when readable."""
    out = []
    for path in sorted(glob.glob("/dev/video*")):
        name_file = Path("/sys/class/video4linux") / Path(path).name / "name"
        try:
            name = name_file.read_text().strip()
        except OSError:
            name = "?"
        out.append((path, name))
    return out


def _is_loopback(name: str) -> bool:
    lowered = name.lower()
    return "loopback" in lowered or "dummy" in lowered or "virtual" in lowered or "obs" in lowered


def check_cameras() -> Check:
    system = platform.system()
    if system != "Linux":
        return Check("cameras", "warn", f"not listed on {system}",
                     "try: livestyle run --source webcam --sink window")
    cams = [f"{p} ({n})" for p, n in _video_devices() if not _is_loopback(n)]
    if cams:
        return Check("cameras", "ok", ", ".join(cams))
    return Check("cameras", "missing", "no camera device (/dev/video*)",
                 "plug in a webcam (and check `ls /dev/video*`), or use --source pattern or a video file")


def check_virtualcam() -> Check:
    from livestyle.output.virtualcam import setup_hint

    try:
        import pyvirtualcam  # noqa: F401
    except ImportError:
        return Check("virtual camera", "missing", "pyvirtualcam not installed", pip_command('install "livestyle[vcam]"'))
    system = platform.system()
    if system != "Linux":
        return Check("virtual camera", "warn", f"pyvirtualcam installed; device not checked on {system}",
                     setup_hint(system))
    loops = [f"{p} ({n})" for p, n in _video_devices() if _is_loopback(n)]
    if loops:
        return Check("virtual camera", "ok", ", ".join(loops))
    return Check("virtual camera", "missing", "no v4l2loopback device", setup_hint(system))


def check_ndi() -> Check:
    try:
        import cyndilib
    except ImportError:
        return Check("ndi", "warn", "cyndilib not installed: ndi:// sources and sinks are off",
                     pip_command('install "livestyle[ndi]"'))
    version = str(getattr(cyndilib, "ndi_version", "")).strip() or "version unknown"
    return Check("ndi", "ok", f"{version} (ndi://NAME; where mDNS is blocked add ?ips=SENDER_IP)")


def check_obs(host: str, port: int, timeout: float = 0.5) -> Check:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        return Check("obs websocket", "missing", f"nothing listens on {host}:{port} ({reason})",
                     f"start OBS and enable Tools > WebSocket Server Settings > Enable (port {port})")
    try:
        import obswebsocket  # noqa: F401
    except ImportError:
        return Check("obs websocket", "warn", f"{host}:{port} reachable; client library missing",
                     pip_command('install "livestyle[obs]"'))
    return Check("obs websocket", "ok", f"{host}:{port} reachable")


def check_chromium() -> Check:
    for exe in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(exe)
        if path:
            return Check("chromium", "ok", path)
    return Check("chromium", "warn", "no Chromium/Chrome found (any browser opens the web UI; the browser tests need it)",
                 "apt install chromium chromium-driver")


def run_checks(obs_host: str = "127.0.0.1", obs_port: int = 4455) -> list[Check]:
    """Every check, in the order they are printed."""
    steps: list[Callable[[], Check | list[Check]]] = [
        check_python,
        check_torch_gpu,
        check_pyav,
        check_ffmpeg_cli,
        check_window,
        check_cameras,
        check_virtualcam,
        check_ndi,
        lambda: check_obs(obs_host, obs_port),
        check_chromium,
    ]
    out: list[Check] = []
    for step in steps:
        result = step()
        out.extend(result if isinstance(result, list) else [result])
    return out


def doctor(
    as_json: Annotated[bool, typer.Option("--json", help="Print the checks as one JSON line")] = False,
    obs_host: Annotated[str, typer.Option("--obs-host", help="Where OBS's websocket should be")] = "127.0.0.1",
    obs_port: Annotated[int, typer.Option("--obs-port", help="OBS websocket port")] = 4455,
) -> None:
    """Check GPU, torch, codecs, cameras, virtual camera, NDI, OBS and Chromium, with a fix for each gap.

    Exits 0 when nothing is missing (warnings allowed), 1 when a check is missing, so scripts and
    set-up guides can stop on it.
    """
    checks = run_checks(obs_host, obs_port)
    missing = sum(c.status == "missing" for c in checks)
    if as_json:
        print(json.dumps([asdict(c) for c in checks]))
        raise typer.Exit(1 if missing else 0)
    width = max(len(c.name) for c in checks)
    mark = {"ok": "ok  ", "warn": "warn", "missing": "MISS"}
    for c in checks:
        print(f"[{mark[c.status]}] {c.name:<{width}}  {c.detail}")
        if c.fix:
            print(f"       {'':<{width}}  fix: {c.fix}")
    print(f"\n{len(checks) - missing} of {len(checks)} checks passed"
          + (f"; {missing} missing (exit code 1): each has its fix above; livestyle demo works on any machine"
             if missing else ""))
    raise typer.Exit(1 if missing else 0)


def register(app: typer.Typer) -> None:
    app.command("doctor", help=(doctor.__doc__ or "") + "\n\n" + EXAMPLES)(doctor)
