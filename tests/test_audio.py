"""Audio through livestyle into recordings and stream URLs, in sync with the (styled) video.

Real parts throughout: clips are written with PyAV (H.264 + AAC), run through the CLI or the
runner, and the outputs are decoded back; the UDP test receives in a second process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from host_helpers import free_udp_port
from media_helpers import TONE_HZ, dominant_hz, read_audio_video, tone_with_clicks

from livestyle.cli import main
from livestyle.ingest.media import MediaSource
from livestyle.output.media import MediaSink
from livestyle.engine.frames import AudioChunk, AudioInfo, Frame
from livestyle.engine.passthrough import PassthroughGenerator
from livestyle.engine.runner import Runner

av = pytest.importorskip("av")

FPS = 30
RATE = 48000
SIZE = (64, 48)


def make_clip(path: Path, *, seconds: float = 2.0, click_at: float = 1.0, audio: bool = True,
              rate: int = RATE, layout: str = "mono") -> None:
    """A clip: grey video with one white frame at ``click_at`` and (optionally) a 440 Hz tone
    with a loud 3 kHz click starting at the same instant."""
    n_frames = round(seconds * FPS)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=FPS, options={"preset": "ultrafast", "bf": "0"})
        video.width, video.height, video.pix_fmt = *SIZE, "yuv420p"
        astream = out.add_stream("aac", rate=rate, layout=layout) if audio else None
        for i in range(n_frames):
            value = 255 if i == round(click_at * FPS) else 60
            frame = av.VideoFrame.from_ndarray(np.full((SIZE[1], SIZE[0], 3), value, np.uint8), format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if astream is None:
            return
        wave = tone_with_clicks(np.arange(round(seconds * rate)) / rate, [click_at])
        channels = 1 if layout == "mono" else 2
        samples = np.repeat(wave[None].astype(np.float32), channels, axis=0)
        for start in range(0, samples.shape[1], 1024):
            block = np.ascontiguousarray(samples[:, start:start + 1024])
            aframe = av.AudioFrame.from_ndarray(block, format="fltp", layout=layout)
            aframe.sample_rate, aframe.pts, aframe.time_base = rate, start, Fraction(1, rate)
            out.mux(astream.encode(aframe))
        out.mux(astream.encode(None))


def check_sync(got: dict[str, Any], *, duration: float | None = None) -> float:
    """Asserts tone, click/white-frame alignment (within a frame); returns the audio duration."""
    assert got["has_audio"] and got["codec"] == "aac"
    audio, rate = got["audio"], got["rate"]
    start = got["audio_start"]
    white = got["times"][int(np.argmax(got["means"]))]
    assert max(got["means"]) > 200
    click = start + int(np.argmax(np.abs(audio) > 0.6)) / rate
    assert abs(click - white) < 1 / FPS, (click, white)
    tone = audio[int((white - 0.45 - start) * rate): int((white - 0.05 - start) * rate)]
    assert len(tone) > rate // 4
    assert dominant_hz(tone, rate) == pytest.approx(TONE_HZ, abs=4)
    audio_end = start + len(audio) / rate
    video_end = got["times"][-1] + 1 / FPS
    assert abs(audio_end - video_end) < 0.05, (audio_end, video_end)
    if duration is not None:
        assert video_end == pytest.approx(duration, abs=1.5 / FPS)
    return audio_end - start


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("audio") / "clip.mp4"
    make_clip(path)
    return path


def test_passthrough_recording_keeps_the_audio_in_sync(clip: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.mp4"
    code = main(["run", "--source", str(clip), "--sink", str(out), "--no-pace", "--no-loop", "--quiet",
                 "--size", "64x48", "--fps", "30"])
    assert code == 0, capsys.readouterr().err
    got = read_audio_video(str(out))
    assert len(got["times"]) == 60
    check_sync(got, duration=2.0)


class LaggingChunks:
    """A generator with a pipeline delay: takes chunks of 4 and returns the previous chunk."""

    name = "lagging"

    def __init__(self) -> None:
        self._held: list[Frame] = []

    def frames_needed(self) -> int:
        return 4

    def process(self, frames: Sequence[Frame]) -> list[Frame]:
        out, self._held = self._held, list(frames)
        return out

    def apply(self, command: object) -> None:
        return None

    def reset(self) -> None:
        self._held = []

    def stats(self) -> dict[str, Any]:
        return {}


@pytest.mark.parametrize("container", ["mkv", "mp4"])
def test_pipeline_delay_keeps_sync_and_loops_continue_the_audio(clip: Path, tmp_path: Path, container: str) -> None:
    out = tmp_path / f"out.{container}"
    source = MediaSource(str(clip), pace=False, loop=True)
    sink = MediaSink(str(out), "matroska" if container == "mkv" else "mp4")
    runner = Runner(source, LaggingChunks(), [sink], size=SIZE, fps=FPS, max_frames=100, backpressure=True)
    report = runner.run()
    assert report.frames_out == 100 and report.drops.get("audio", 0) == 0
    got = read_audio_video(str(out))
    assert len(got["times"]) == 100
    # 100 frames of a 60-frame loop: two clicks, 2 s apart, each with its white frame
    audio, rate, start = got["audio"], got["rate"], got["audio_start"]
    whites = [t for t, m in zip(got["times"], got["means"]) if m > 200]
    assert len(whites) == 2 and whites[1] - whites[0] == pytest.approx(2.0, abs=1e-6)
    loud = np.flatnonzero(np.abs(audio) > 0.6) / rate + start
    onsets = [loud[0], loud[loud > loud[0] + 0.5][0]]
    for onset, white in zip(onsets, whites):
        assert abs(onset - white) < 1 / FPS, (onsets, whites)
    assert start + len(audio) / rate == pytest.approx(got["times"][-1] + 1 / FPS, abs=0.05)
    assert dominant_hz(audio[int(1.3 * rate): int(1.8 * rate)], rate) == pytest.approx(TONE_HZ, abs=4)
    assert runner.stats()["audio"]["chunks_in"] > 0


def test_source_without_audio_and_sink_without_audio(tmp_path: Path) -> None:
    silent = tmp_path / "silent.mp4"
    make_clip(silent, seconds=0.5, click_at=0.2, audio=False)
    source = MediaSource(str(silent), pace=False, loop=False)
    out = tmp_path / "out.mp4"
    report = Runner(source, PassthroughGenerator(), [MediaSink(str(out), "mp4")], size=SIZE, fps=FPS,
                    backpressure=True).run()
    assert report.frames_out == 15 and "audio" not in report.stats
    got = read_audio_video(str(out))
    assert len(got["times"]) == 15 and not got["has_audio"]
    # audio=False: the clip's sound is left out on request
    clip_with_sound = tmp_path / "sound.mp4"
    make_clip(clip_with_sound, seconds=0.5, click_at=0.2)
    source = MediaSource(str(clip_with_sound), pace=False, loop=False, audio=False)
    assert source.open() and source.audio_info() is None
    source.close()


def test_stereo_44k1_source_is_mixed_and_resampled_only_as_needed(tmp_path: Path) -> None:
    clip = tmp_path / "stereo.mkv"
    make_clip(clip, seconds=1.0, click_at=0.5, rate=44100, layout="stereo")
    source = MediaSource(str(clip), pace=False, loop=False)
    source.open()
    assert source.audio_info() == AudioInfo(44100, 2)
    source.close()
    out = tmp_path / "out.mkv"
    Runner(MediaSource(str(clip), pace=False, loop=False), PassthroughGenerator(), [MediaSink(str(out), "matroska")],
           size=SIZE, fps=FPS, backpressure=True).run()
    got = read_audio_video(str(out))
    assert got["rate"] == 44100
    check_sync(got, duration=1.0)


def test_sink_places_audio_by_pts_fills_gaps_and_cuts_overlaps(tmp_path: Path) -> None:
    """Direct MediaSink use: a gap becomes silence, an overlap is cut, audio past the video is cut."""
    out = tmp_path / "direct.mkv"
    sink = MediaSink(str(out), "matroska", fps=FPS)
    assert sink.open_audio(AudioInfo(RATE, 1))
    tb = Fraction(1, 90000)
    from livestyle.engine.frames import StreamInfo

    sink.open(StreamInfo(*SIZE, FPS, tb))

    def tone(t0: float, seconds: float) -> AudioChunk:
        t = t0 + np.arange(round(seconds * RATE)) / RATE
        return AudioChunk((0.3 * np.sin(2 * np.pi * TONE_HZ * t)).astype(np.float32)[None], RATE,
                          round(t0 / tb), tb, 0.0)

    sink.write_audio(tone(0.0, 0.5))  # before the first video frame: held
    sink.write_audio(tone(0.4, 0.3))  # overlaps 0.4-0.5: cut
    sink.write_audio(tone(1.0, 2.0))  # a 0.3 s gap: silence; runs past the video's end: cut
    for i in range(45):  # 1.5 s of video
        sink.write(Frame(np.full((SIZE[1], SIZE[0], 3), 90, np.uint8), round(i / FPS / tb), tb, 0.0, i))
    sink.close()
    got = read_audio_video(str(out))
    audio, rate, start = got["audio"], got["rate"], got["audio_start"]
    assert start == pytest.approx(0.0, abs=1e-3)
    assert start + len(audio) / rate == pytest.approx(1.5, abs=0.03)
    gap = np.abs(audio[int(0.72 * rate): int(0.98 * rate)])
    assert gap.max() < 0.02  # silence where no audio came
    assert np.abs(audio[int(0.1 * rate): int(0.6 * rate)]).max() > 0.2
    assert dominant_hz(audio[int(1.1 * rate): int(1.45 * rate)], rate) == pytest.approx(TONE_HZ, abs=4)
    sink.write_audio(tone(2.0, 0.1))  # after close: ignored, no error


RECEIVER = r"""
import json, sys, av, numpy as np
url, out = sys.argv[1], sys.argv[2]
print("ready", flush=True)
c = av.open(url, format="mpegts", timeout=(20, 3), options={"probesize": "5000000", "analyzeduration": "3000000"})
v = c.streams.video[0]
a = c.streams.audio[0] if c.streams.audio else None
times, means, audio, start, rate = [], [], [], None, None
try:
    for p in c.demux(*([v, a] if a else [v])):
        for f in p.decode():
            if p.stream is v:
                times.append(float(f.pts * v.time_base)); means.append(float(f.to_ndarray(format="gray").mean()))
            else:
                if start is None:
                    start, rate = float(f.pts * a.time_base), f.sample_rate
                audio.append(f.to_ndarray().reshape(len(f.layout.channels), -1)[0].tolist())
except av.error.ExitError:
    pass
json.dump({"times": times, "means": means, "audio": sum(audio, []), "audio_start": start, "rate": rate,
           "codec": a.codec_context.name if a else None}, open(out, "w"))
"""


def test_mpegts_over_udp_carries_the_audio_to_another_process(clip: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    port = free_udp_port()
    result = tmp_path / "received.json"
    receiver = subprocess.Popen(
        [sys.executable, "-c", RECEIVER, f"udp://127.0.0.1:{port}?fifo_size=1000000&overrun_nonfatal=1", str(result)],
        env=dict(os.environ, PYTHONUNBUFFERED="1"), stdout=subprocess.PIPE, text=True,
    )
    try:
        assert receiver.stdout is not None and receiver.stdout.readline().strip() == "ready"
        time.sleep(0.5)  # av.open binds the UDP socket right after "ready"
        code = main(["run", "--source", str(clip), "--sink", f"udp://127.0.0.1:{port}", "--no-loop", "--quiet",
                     "--size", "64x48", "--fps", "30"])  # paced: a live stream in real time
        assert code == 0, capsys.readouterr().err
        assert receiver.wait(timeout=30) == 0
    finally:
        receiver.kill()
    got = json.loads(result.read_text())
    got["audio"] = np.asarray(got["audio"], np.float32)
    got["has_audio"] = got["codec"] is not None
    assert len(got["times"]) >= 55  # a few may be lost to UDP start-up; the click frame must not be
    white = got["times"][int(np.argmax(got["means"]))]
    audio, rate, start = got["audio"], got["rate"], got["audio_start"]
    assert got["codec"] == "aac" and max(got["means"]) > 200
    click = start + int(np.argmax(np.abs(audio) > 0.6)) / rate
    assert abs(click - white) < 1 / FPS, (click, white)
    assert dominant_hz(audio[int((white - 0.45 - start) * rate): int((white - 0.05 - start) * rate)], rate) == \
        pytest.approx(TONE_HZ, abs=4)


def test_a_stop_mid_stream_finalizes_the_recording_with_its_audio(clip: Path, tmp_path: Path) -> None:
    """Ctrl-C's path (Runner.stop from another thread) on a paced, looping file."""
    import threading

    out = tmp_path / "stopped.mp4"
    runner = Runner(MediaSource(str(clip), pace=True, loop=True), LaggingChunks(), [MediaSink(str(out), "mp4")],
                    size=SIZE, fps=FPS)
    threading.Timer(1.4, runner.stop).start()
    report = runner.run()
    assert report.stop_reason == "stopped"
    got = read_audio_video(str(out))
    assert len(got["times"]) >= 30
    check_sync(got)  # click with its white frame, tone kept, audio ends with the last frame
