"""`livestyle run` with its broadcast controls: presets, the control API, terminal hotkeys, bypass preview.

Real processes, a real pty, real HTTP; the passthrough generator (and the tiny model where the
prompt-embedding path matters).
"""

from __future__ import annotations

import json
import os
import pty
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from host_helpers import free_tcp_port

from livestyle.cli import main
from livestyle.cli.run import build_config, stream
from livestyle.cli.status import format_status
from livestyle.control.presets import load_presets

PRESETS = load_presets()
ANIME = PRESETS[PRESETS.index_of("anime")]
COMIC = PRESETS[PRESETS.index_of("comic")]


def http(method: str, url: str, token: str | None = None, body: Any = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = json.dumps(body).encode() if body is not None else None
    if data is not None:
        headers["Content-Type"] = "application/json"  # JSON bodies only as JSON (docs/malformed-input.md)
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def wait_for(check: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def env() -> dict[str, str]:
    return dict(os.environ, PYTHONUNBUFFERED="1", LIVESTYLE_LOG="WARNING")


class Proc:
    """A `livestyle run` process whose stderr is read line by line."""

    def __init__(self, args: list[str], *, stdin: Any = subprocess.DEVNULL, extra_env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "livestyle", "run", *args], stdin=stdin,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                     env={**env(), **(extra_env or {})})
        self.lines: list[str] = []

    def read_until(self, prefix: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        assert self.proc.stderr is not None
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.lines.append(line)
            if line.startswith(prefix):
                return line.strip()
        raise AssertionError(f"no line starting {prefix!r}; got {self.lines}")

    def finish(self, timeout: float = 20.0) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            _, rest = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, rest = self.proc.communicate()
        return self.proc.returncode, "".join(self.lines) + (rest or "")


@pytest.fixture
def api_run() -> Iterator[Callable[..., tuple[Proc, str]]]:
    procs: list[Proc] = []

    def start(*extra: str, stdin: Any = subprocess.DEVNULL) -> tuple[Proc, str]:
        port = free_tcp_port()
        p = Proc(["-i", "pattern", "-o", "null", "--size", "64x48", "--fps", "30", "--quiet",
                  "--api", "--api-port", str(port), *extra], stdin=stdin)
        procs.append(p)
        p.read_until("livestyle: control API on")
        return p, f"http://127.0.0.1:{port}"

    yield start
    for p in procs:
        p.finish()


def test_preset_option_applies_the_preset_and_status_shows_it() -> None:
    cfg = build_config(None, ["runner.status_interval=0.05"], preset="anime", size="64x48", max_frames=12, pace=False)
    report = stream(cfg, "pattern", ["null"], status=False)
    assert report.stats["generator"]["prompt"] == ANIME.prompt
    controls = report.stats["controls"]
    assert controls["params"]["preset"] == "anime" and controls["obs"] is None
    assert controls["terminal_hotkeys"] is False
    line = format_status(report.stats)
    assert line.endswith("| preset anime"), line
    typed = format_status({**report.stats, "controls": {"params": {"prompt": "a very long prompt about a castle"}, "obs": {"state": "connecting"}}})
    assert typed.endswith("| prompt 'a very long prompt abou…' | obs connecting"), typed


def test_unknown_preset_is_a_one_line_error_listing_the_valid_ones(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "-i", "pattern", "-o", "null", "--max-frames", "2", "--preset", "vaporwave"])
    err = capsys.readouterr().err
    assert code == 2  # a bad option, nothing started (docs/exit-codes.md); it was 1 (issue 27, point 12)
    assert err.strip().splitlines() == ["error: unknown preset 'vaporwave'; valid: 1:watercolor, 2:anime, 3:comic, 4:cyberpunk, "
                                        "5:oil-painting, 6:pixel-art, 7:claymation, 8:sketch, 9:van-gogh"]


def test_presets_file_and_api_options_need_each_other(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mine = tmp_path / "mine.yaml"
    mine.write_text("presets:\n  - name: noir\n    prompt: black and white film noir\n    strength: 0.4\n")
    code = main(["run", "-i", "pattern", "-o", "null", "--max-frames", "3", "--size", "64x48", "--no-pace",
                 "--presets", str(mine), "--preset", "noir"])
    err = capsys.readouterr().err
    assert code == 0, err
    # --model auto fell back to passthrough: the preset is accepted with a warning, and the last
    # status line (written at the end) names no look of a model that is not there (issue 27, point 10)
    assert "warning: the preset will do nothing" in err and "| passthrough: no styling\n" in err, err
    assert main(["run", "-i", "pattern", "-o", "null", "--api-port", "9999"]) != 0
    assert capsys.readouterr().err.strip() == "error: --api-host/--api-port need --api"


def test_tiny_model_embeds_every_preset_prompt_at_start(tmp_path: Path) -> None:
    """The family's max_steps reaches the controller, and all preset prompts land in the embedding cache."""
    e = dict(env(), LIVESTYLE_CACHE_DIR=str(tmp_path / "cache"))
    weights = Path(os.environ.get("LIVESTYLE_CACHE_DIR") or Path.home() / ".cache" / "livestyle") / "weights" / "tiny"
    if weights.is_dir():  # reuse the tiny TEST model's random weights instead of writing them again
        shutil.copytree(weights, tmp_path / "cache" / "weights" / "tiny")
    out = subprocess.run(
        [sys.executable, "-m", "livestyle", "run", "-i", "pattern", "-o", "null", "--model", "tiny", "--size", "64x48",
         "--max-frames", "12", "--no-pace", "-q", "--preset", "comic", "--set", "model.device=cpu", "--no-keys"],
        env=e, capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL, check=False,
    )
    assert out.returncode == 0, out.stderr
    cached = list((tmp_path / "cache" / "prompt_embeddings").rglob("*.safetensors"))
    # the bundled preset prompts and model.prompt, each embedded once
    assert len(cached) == len({*PRESETS.prompts, build_config().model.prompt}), cached


def test_control_api_of_run_answers_and_drives_the_stream(api_run: Callable[..., tuple[Proc, str]]) -> None:
    proc, base = api_run("--preset", "anime", "--no-keys")
    status, params = http("GET", base + "/api/params")
    assert status == 200 and params["preset"] == "anime" and params["prompt"] == ANIME.prompt
    assert http("POST", base + "/api/presets/comic")[1]["preset"] == "comic"
    assert wait_for(lambda: http("GET", base + "/api/stats")[1]["generator"]["prompt"] == COMIC.prompt)
    stats = http("GET", base + "/api/stats")[1]
    assert stats["controls"]["params"]["preset"] == "comic" and stats["running"] is True
    assert http("PATCH", base + "/api/params", body={"steps": 9})[0] == 400  # passthrough: config bound 1..8
    assert http("POST", base + "/api/presets/vaporwave")[0] == 404
    assert http("GET", base + "/health") == (200, {"ok": True})
    assert http("POST", base + "/offer", body={})[0] == 404  # the API only: no page, no WebRTC
    code, text = proc.finish()  # Ctrl-C
    assert code == 130 and "done (signal)" in text, text  # 128 + SIGINT (docs/exit-codes.md)


def _netns_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root for a network namespace"
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "needs unshare and ip (util-linux, iproute2)"
    if subprocess.run(["unshare", "-n", "true"], capture_output=True, check=False).returncode != 0:
        return "unshare -n is not permitted here"
    return None


NETNS_SCENARIO = r"""
import json, subprocess, sys, urllib.error, urllib.request
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
proc = subprocess.Popen([sys.executable, "-m", "livestyle", "run", "-i", "pattern", "-o", "null", "--size", "64x48", "-q",
                         "--no-keys", "--api", "--api-host", "0.0.0.0", "--api-port", "18766"],
                        stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
token = None
for _ in range(50):
    line = proc.stderr.readline()
    if not line:
        break
    if line.startswith("token: "):
        token = line.split(": ", 1)[1].strip()
        break
def get(path, token=None):
    req = urllib.request.Request("http://127.0.0.1:18766" + path, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
result = {"token": token, "no_token": get("/api/params"), "wrong": get("/api/params", "x" * 20),
          "with_token": get("/api/params", token), "health": get("/health")}
proc.terminate()
try:
    result["exit"] = proc.wait(20)
except subprocess.TimeoutExpired:
    proc.kill()
    result["exit"] = "did not stop within 20 s of SIGTERM"
print(json.dumps(result))
"""


def test_control_api_beyond_loopback_needs_the_printed_token() -> None:
    """Bound to 0.0.0.0 inside a private network namespace, so nothing is exposed."""
    reason = _netns_reason()
    if reason:
        pytest.skip(reason)
    out = subprocess.run(["unshare", "-n", sys.executable, "-c", NETNS_SCENARIO], check=False, env=env(), capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["token"] and len(result["token"]) >= 8, result
    assert (result["no_token"], result["wrong"], result["with_token"], result["health"]) == (401, 401, 200, 200), result
    assert result["exit"] == 143, result  # 128 + SIGTERM (docs/exit-codes.md)


def test_terminal_hotkeys_drive_a_running_stream(api_run: Callable[..., tuple[Proc, str]]) -> None:
    """Keys typed into the process's terminal (a real pty): 2 → preset 2, b → bypass, q → quit."""
    master, slave = pty.openpty()
    try:
        proc, base = api_run(stdin=slave)
        proc.read_until("keys: 1-9 preset")
        os.write(master, b"2")
        assert wait_for(lambda: http("GET", base + "/api/params")[1]["preset"] == "anime")
        assert wait_for(lambda: http("GET", base + "/api/stats")[1]["generator"]["prompt"] == ANIME.prompt)
        os.write(master, b"b")
        assert wait_for(lambda: http("GET", base + "/api/stats")[1]["bypass"] is True)
        assert http("GET", base + "/api/params")[1]["bypass"] is True
        assert http("GET", base + "/api/stats")[1]["controls"]["terminal_hotkeys"] is True
        os.write(master, b"q")
        assert wait_for(lambda: proc.proc.poll() is not None)
        code, text = proc.finish()
        assert code == 0 and "done (stopped)" in text, text
    finally:
        os.close(master)
        os.close(slave)


def test_mask_preview_shows_during_bypass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The panic key shows the camera; with --mask-preview the key's tint stays on it."""
    from media_helpers import GREEN, SKIN, write_green_clip
    from media_helpers import GREEN_CLIP_H as H
    from media_helpers import GREEN_CLIP_N as N
    from media_helpers import GREEN_CLIP_W as W
    from media_helpers import decoded_rgb as decoded

    from livestyle.effects.masks.overlay import PREVIEW_TINT

    clip = tmp_path / "green.mp4"
    write_green_clip(clip)
    common = ["run", "--source", str(clip), "--model", "passthrough", "--size", f"{W}x{H}", "--max-frames", str(N),
              "--no-pace", "--no-loop", "--quiet", "--bypass", "--mask", "chroma"]
    tinted, raw = tmp_path / "tinted.mkv", tmp_path / "raw.mkv"
    assert main([*common, "--sink", str(tinted), "--effect", "background", "--mask-preview"]) == 0, capsys.readouterr().err
    assert main([*common, "--sink", str(raw), "--effect", "background"]) == 0, capsys.readouterr().err
    tint = np.array(PREVIEW_TINT, np.float32)
    for img in decoded(tinted):
        screen = img[4:12, 4:40].astype(np.float32).mean(axis=(0, 1))
        subject = img[40:80, 64:96].astype(np.float32).mean(axis=(0, 1))
        assert np.abs(screen - (0.6 * tint + 0.4 * np.array(GREEN))).max() < 20, screen
        assert np.abs(subject - np.array(SKIN)).max() < 12, subject
    for img in decoded(raw):  # bypass without the preview: the camera as it is
        assert np.abs(img[4:12, 4:40].astype(np.float32).mean(axis=(0, 1)) - np.array(GREEN)).max() < 12
    assert len(decoded(tinted)) == len(decoded(raw)) == N
