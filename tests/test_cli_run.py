"""`livestyle run` / `demo` end to end with real PyAV encode/decode, real signals, real UDP."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from host_helpers import free_udp_port

from livestyle.cli import main

av = pytest.importorskip("av")

REPO = Path(__file__).resolve().parents[1]


def read_video(path: Path) -> tuple[list[int], int, int, float]:
    """Decoded frame pts, width, height and the stream's average rate."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        pts = [f.pts for f in container.decode(stream)]
        return pts, stream.codec_context.width, stream.codec_context.height, float(stream.average_rate)


def cli(*args: str, cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1", LIVESTYLE_LOG="WARNING")
    return subprocess.run(
        [sys.executable, "-m", "livestyle", *args], cwd=cwd, env=env, capture_output=True,
        text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )


def test_pattern_to_mp4_reads_back_exactly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "pattern.mp4"
    code = main(["run", "--source", "pattern", "--sink", str(out), "--max-frames", "24",
                 "--size", "160x96", "--fps", "24", "--no-pace", "--quiet"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "done (max_frames): 24 frames out" in err
    pts, width, height, rate = read_video(out)
    assert len(pts) == 24
    assert (width, height) == (160, 96)
    assert rate == pytest.approx(24.0)
    assert all(b > a for a, b in zip(pts, pts[1:])), pts


def test_several_sinks_at_once_and_status_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = tmp_path / "a.mkv", tmp_path / "b.mp4"
    code = main(["run", "-i", "pattern", "-o", str(a), "-o", str(b), "-o", "null", "--max-frames", "10",
                 "--size", "64x48", "--no-pace", "--set", "runner.status_interval=0.05"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert len(read_video(a)[0]) == 10 and len(read_video(b)[0]) == 10
    # not a terminal: plain status lines, never carriage returns
    status = [ln for ln in err.splitlines() if ln.startswith("in ")]
    assert status and "\r" not in err
    assert re.search(r"written +[\d.]+ fps \| frames 10 \| lost 0 \| judder p95 \d+ max \d+ ms \| g2g p50 \d+ p95 \d+ ms \| "
                     r"gen [\d.]+ ms \| sink [\d.]+ ms", status[-1]), status[-1]
    assert re.search(r"done \(max_frames\): 10 frames out, \d+ in; written: \S*a.mkv 10, \S*b.mp4 10, null 10; 0 lost", err), err


def test_odd_size_is_rounded_with_a_note(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "odd.mkv"
    code = main(["run", "--source", "pattern", "--sink", str(out), "--max-frames", "3",
                 "--size", "100x70", "--no-pace", "--quiet"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "note: stream.size 100x70 rounded to 96x64 (the model takes multiples of 16)" in err
    assert read_video(out)[1:3] == (96, 64)


@pytest.mark.parametrize(
    ("args", "message", "exit_code"),
    [
        (["--max-frames", "0"], "error: --max-frames must be at least 1, got 0 (leave it out to run until "
                                "Ctrl-C or the end of the source)", 2),
        (["--set", "model.steps=0"], "error: model.steps: expected an integer >= 1 and <= 8, got 0", 2),
        (["--set", "model.stepz=2"], "error: unknown config key 'model.stepz'; keys in model: name, prompt,", 2),
        (["--set", "stream.pace=sometimes"], "error: stream.pace: expected true or false, got 'sometimes'", 2),
        (["--size", "wide"], "error: stream.size: expected WIDTHxHEIGHT such as 832x480, got 'wide'", 2),
        (["--model", "sdv9"], "error: unknown model 'sdv9'; valid models: ", 2),
        (["--fps", "0"], "error: --fps must be positive, got 0", 2),
    ],
)
def test_bad_options_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str, exit_code: int
) -> None:
    code = main(["run", "--source", "pattern", "--sink", str(tmp_path / "x.mp4"), *args])
    err = capsys.readouterr().err
    assert code == exit_code
    assert err.startswith(message), err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.mp4").exists()


def test_bad_sources_and_sinks_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases = [
        (["--source", str(tmp_path / "missing.mp4"), "--sink", "null"], "missing.mp4"),
        (["--source", "gopher://x", "--sink", "null"], "unknown source scheme 'gopher://'"),
        (["--source", "pattern", "--sink", "ftp://host/x"], "unknown sink scheme 'ftp://'"),
        (["--source", "pattern", "--sink", "out.avi2"], "unknown sink 'out.avi2'"),
    ]
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    cases.append((["--source", "pattern", "--sink", str(blocker / "out.mp4")], "cannot record to"))
    for args, fragment in cases:
        code = main(["run", *args, "--max-frames", "2", "--quiet"])
        err = capsys.readouterr().err
        assert code == 1, (args, err)
        assert err.startswith("error: ") and fragment in err, (args, err)
        assert len(err.strip().splitlines()) == 1, err


def test_config_file_and_help(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("stream:\n  size: 48x32\n  max_frames: 4\n  pace: false\n")
    out = tmp_path / "c.mkv"
    assert main(["run", "--source", "pattern", "--sink", str(out), "--config", str(cfg), "--quiet"]) == 0
    assert read_video(out)[1:3] == (48, 32) and len(read_video(out)[0]) == 4
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        from livestyle.cli import app

        app(["run", "--help"], prog_name="livestyle")
    assert info.value.code == 0
    help_text = capsys.readouterr().out
    assert "livestyle run --source pattern --sink out.mp4" in help_text
    assert "--no-pace" in help_text and "--set" in help_text


def test_demo_writes_the_file_and_says_where(tmp_path: Path) -> None:
    result = cli("demo", "--seconds", "1", "--size", "96x64", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "out" / "demo.mp4"
    assert f"wrote {out}" in result.stdout
    pts, w, h, rate = read_video(out)
    assert len(pts) == 30 and (w, h) == (96, 64) and rate == pytest.approx(30.0)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_finalizes_the_recording_to_the_last_frame(tmp_path: Path, sig: signal.Signals) -> None:
    out = tmp_path / "live.mp4"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "livestyle", "run", "--source", "pattern", "--sink", str(out),
         "--size", "128x96", "--fps", "30", "--set", "runner.status_interval=0.1", "--set", "runner.log_interval=0.1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=env,
    )
    assert proc.stderr is not None
    try:
        deadline = time.monotonic() + 60
        lines = []
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(line)
            if sum(ln.startswith("in ") for ln in lines) >= 8:  # 0.8 s of status lines: ~24 frames
                break
        else:
            pytest.fail("no status lines: " + "".join(lines))
        proc.send_signal(sig)
        _, rest = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + sig, rest  # 130 for SIGINT, 143 for SIGTERM (docs/exit-codes.md)
    done = re.search(r"done \(signal\): (\d+) frames out, \d+ in; written: \S+ (\d+);", rest)
    assert done, rest
    pts, w, h, _ = read_video(out)
    assert (w, h) == (128, 96)
    # every frame handed to the sink is written, and every frame written is in the file
    assert len(pts) == int(done.group(1)) == int(done.group(2)) >= 15
    assert all(b > a for a, b in zip(pts, pts[1:]))


@pytest.mark.slow
def test_udp_mpegts_stream_to_a_second_process(tmp_path: Path) -> None:
    port = free_udp_port()
    got = tmp_path / "received.mkv"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    receiver = subprocess.Popen(
        [sys.executable, "-m", "livestyle", "run", "--source", f"udp://127.0.0.1:{port}", "--sink", str(got),
         "--size", "128x96", "--max-frames", "20", "--no-pace", "--quiet"],  # lossless: a busy machine must not drop late frames here
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=env,
    )
    sender = subprocess.Popen(
        [sys.executable, "-m", "livestyle", "run", "--source", "pattern", "--sink", f"udp://127.0.0.1:{port}",
         "--size", "128x96", "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=env,
    )
    try:
        _, rerr = receiver.communicate(timeout=90)
    finally:
        sender.send_signal(signal.SIGINT)
        try:
            sender.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            sender.kill()
            sender.communicate()
        if receiver.poll() is None:
            receiver.kill()
            receiver.communicate()
    assert receiver.returncode == 0, rerr
    assert "done (max_frames): 20 frames out" in rerr
    pts, w, h, _ = read_video(got)
    assert len(pts) == 20 and (w, h) == (128, 96)


def test_python_dash_m_is_the_same_cli() -> None:
    result = cli("--help")
    assert result.returncode == 0
    for verb in ("run", "demo", "doctor"):
        assert verb in result.stdout


def test_status_line_redraws_in_place_on_a_terminal_only(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    monkeypatch.setenv("COLUMNS", "250")  # a wide terminal: the full line (narrow: test_terminal.py)

    from livestyle.cli.status import StatusLine

    stats = {"fps_in": 30.0, "fps_out": 29.5, "fps_written": 29.4, "frames_out": 90, "frames_lost": 3,
             "drops": {"input": 2, "sink:a.mp4": 1}, "gap_ms": {"p95": 35.0, "max": 70.0},
             "stage_ms": {"generate": {"p50": 41.0}, "sink:a.mp4": {"p50": 3.2}},
             "latency_ms": {"p50": 120.0, "p95": 180.0}, "bypass": True,
             "governor": {"index": 1, "level": "1 step, tiny decoder, 832x480"},
             "sinks": {"a.mp4": {"state": "running"}, "rtmp://x": {"state": "failed"}}}

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = Tty()
    line = StatusLine(tty)
    line(stats)
    line(stats)
    line.finish()
    text = tty.getvalue()
    assert text.count("\r") == 2 and text.count("\x1b[K") == 2 and text.endswith("\n")
    assert ("in  30.0 fps | written  29.4 fps | frames 90 | lost 3 | judder p95 35 max 70 ms | g2g p50 120 p95 180 ms | "
            "gen 41.0 ms | sink 3.2 ms | governor: 1 step, tiny decoder, 832x480 | BYPASS | failed: rtmp://x") in text
    plain = io.StringIO()
    line = StatusLine(plain)
    line(stats)
    line.finish()
    assert "\r" not in plain.getvalue() and plain.getvalue().count("\n") == 1
