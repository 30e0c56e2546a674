"""NDI send-to-receive latency on one machine (issue 30), both directions, real NDI runtime.

* ``sink``: livestyle's NDI sink (``ndi://NAME``) in a child process → a plain cyndilib receiver
  here, polling NDI's frame synchroniser every millisecond;
* ``source``: a plain cyndilib sender in a child process → livestyle's NDI source here (it polls
  at a quarter of the frame period, so about 4 ms of the figure at 30 fps is its polling).

Each frame carries its number in black/white bars; latency is the time from just before the
sender's write call to the moment the receiving side has the frame, both on CLOCK_MONOTONIC
(system-wide, so comparable across the two processes). Discovery runs without mDNS: an NDI
config with the extra IP 127.0.0.1 (NDI_CONFIG_DIR), as in tests/test_ndi.py.

    python benchmarks/ndi_latency.py                       # 640x360 and 1280x720, 30 fps, 5 s each
    python benchmarks/ndi_latency.py --sizes 1920x1080 --seconds 10 --out result.json

Prints a table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import threading
import time
import uuid
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def picture(index: int, w: int, h: int) -> np.ndarray:
    img = np.full((h, w, 3), 90, np.uint8)
    for bit in range(12):
        if index >> bit & 1:
            img[: h // 2, bit * (w // 12):(bit + 1) * (w // 12)] = 255
        else:
            img[: h // 2, bit * (w // 12):(bit + 1) * (w // 12)] = 0
    return img


def read_index(rgb: np.ndarray) -> int:
    h, w = rgb.shape[:2]
    bars = [rgb[h // 8: 3 * h // 8, b * (w // 12) + 4:(b + 1) * (w // 12) - 4].mean() for b in range(12)]
    return sum(1 << b for b, v in enumerate(bars) if v > 128)


def _send_with_sink(name: str, w: int, h: int, fps: int, seconds: float, out: Any, ready: Any) -> None:
    from livestyle.output import open_sink
    from livestyle.engine.frames import Frame, StreamInfo

    sink = open_sink(f"ndi://{name}")
    sink.open(StreamInfo(w, h, fps))
    ready.wait(10)
    times = {}
    t0 = time.monotonic()
    n = int(seconds * fps)
    for i in range(n):
        img = picture(i, w, h)
        times[i] = time.monotonic()
        sink.write(Frame(img, i * 3000, Fraction(1, 90000), times[i], i))
        time.sleep(max(0.0, t0 + (i + 1) / fps - time.monotonic()))
    time.sleep(0.3)
    sink.close()
    out.put(times)


def _send_with_cyndilib(name: str, w: int, h: int, fps: int, seconds: float, out: Any, ready: Any) -> None:
    import cyndilib

    sender = cyndilib.Sender(name, clock_video=False)
    vf = cyndilib.VideoSendFrame()
    vf.set_resolution(w, h)
    vf.set_frame_rate(Fraction(fps))
    vf.set_fourcc(cyndilib.FourCC.RGBX)
    sender.set_video_frame(vf)
    sender.open()
    rgbx = np.full((h, w, 4), 255, np.uint8)
    times = {}
    i = 0
    t0 = time.monotonic()
    warm_until = t0 + 30.0
    while not ready.is_set() and time.monotonic() < warm_until:  # frames until the source has opened
        rgbx[..., :3] = picture(4000, w, h)
        sender.write_video(rgbx.reshape(-1))
        time.sleep(1 / fps)
    t0 = time.monotonic()
    for i in range(int(seconds * fps)):
        rgbx[..., :3] = picture(i, w, h)
        times[i] = time.monotonic()
        sender.write_video(rgbx.reshape(-1))
        time.sleep(max(0.0, t0 + (i + 1) / fps - time.monotonic()))
    time.sleep(0.5)
    sender.close()
    out.put(times)


def _receive_raw(name: str, seconds: float, ready: Any) -> dict[int, float]:
    import cyndilib

    from livestyle.ndi import matches

    finder = cyndilib.Finder()
    finder.open()
    receiver = cyndilib.Receiver(color_format=cyndilib.RecvColorFormat.RGBX_RGBA,
                                 bandwidth=cyndilib.RecvBandwidth.highest)
    video = cyndilib.VideoFrameSync()
    receiver.frame_sync.set_video_frame(video)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = [n for n in finder.get_source_names() if matches(n, name)]
        if found:
            receiver.set_source(finder.get_source(found[0]))
            break
        finder.wait_for_sources(0.2)
    got: dict[int, float] = {}
    last = None
    # connect before the first timed frame is sent
    while time.monotonic() < deadline + 5:
        receiver.frame_sync.capture_video()
        if receiver.is_connected():
            break
        time.sleep(0.01)
    time.sleep(0.5)
    ready.set()
    end = time.monotonic() + seconds + 2.0
    while time.monotonic() < end:
        receiver.frame_sync.capture_video()
        if video.xres:
            stamp = (video.get_timestamp_posix(), video.get_timecode_posix())
            if stamp != last:
                now = time.monotonic()
                last = stamp
                data = video.get_array()[: video.get_line_stride() * video.yres]
                rgb = data.reshape(video.yres, -1)[:, : video.xres * 4].reshape(video.yres, video.xres, 4)[..., :3]
                got.setdefault(read_index(rgb), now)
        time.sleep(0.001)
    receiver.set_source(None)
    finder.close()
    return got


def _receive_source(name: str, seconds: float, ready: Any) -> dict[int, float]:
    from livestyle.ingest import open_source

    source = open_source(f"ndi://{name}")
    source.open()
    got: dict[int, float] = {}
    end = None
    for frame in source.frames():
        i = read_index(frame.image)
        if not ready.is_set():
            ready.set()
            end = time.monotonic() + seconds + 2.0
        if i != 4000:
            got.setdefault(i, frame.capture_time)
        if end is not None and time.monotonic() > end or len(got) >= int(seconds * 30):
            break
    source.close()
    return got


def run(direction: str, w: int, h: int, fps: int, seconds: float) -> dict[str, Any]:
    name = f"ls-bench-{uuid.uuid4().hex[:6]}"
    ctx = multiprocessing.get_context("spawn")
    out, ready = ctx.Queue(), ctx.Event()
    target = _send_with_sink if direction == "sink" else _send_with_cyndilib
    child = ctx.Process(target=target, args=(name, w, h, fps, seconds, out, ready))
    child.start()
    got = _receive_raw(name, seconds, ready) if direction == "sink" else _receive_source(name, seconds, ready)
    sent = out.get(timeout=60)
    child.join(10)
    lat = np.array([(got[i] - sent[i]) * 1000 for i in sent if i in got])
    return {
        "direction": direction, "size": [w, h], "fps": fps, "seconds": seconds,
        "sent": len(sent), "received": int(len(lat)),
        "latency_ms_p50": round(float(np.percentile(lat, 50)), 2) if len(lat) else None,
        "latency_ms_p95": round(float(np.percentile(lat, 95)), 2) if len(lat) else None,
        "latency_ms_max": round(float(lat.max()), 2) if len(lat) else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="640x360,1280x720")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="ndi-bench-"))
    (folder / "ndi-config.v1.json").write_text(json.dumps({"ndi": {"networks": {"ips": "127.0.0.1"}}}))
    os.environ["NDI_CONFIG_DIR"] = str(folder)  # children inherit it
    import cyndilib

    runs = []
    for size in args.sizes.split(","):
        w, h = (int(v) for v in size.split("x"))
        for direction in ("sink", "source"):
            runs.append(run(direction, w, h, args.fps, args.seconds))
    print(f"{'direction':<10}{'size':>11}{'sent':>6}{'recv':>6}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}")
    for r in runs:
        print(f"{r['direction']:<10}{r['size'][0]:>6}x{r['size'][1]:<4}{r['sent']:>6}{r['received']:>6}"
              f"{r['latency_ms_p50']:>9}{r['latency_ms_p95']:>9}{r['latency_ms_max']:>9}")
    result = {"benchmark": "ndi_latency", "ndi": cyndilib.get_ndi_version() if hasattr(cyndilib, "get_ndi_version")
              else str(getattr(cyndilib, "ndi_version", "")), "cyndilib": _version("cyndilib"),
              "cores": os.cpu_count(), "loadavg_1min": round(os.getloadavg()[0], 2),
              "discovery": "extra IP 127.0.0.1 (no mDNS)", "runs": runs}
    line = json.dumps(result)
    if args.out is not None:
        args.out.write_text(line + "\n")
    print(line)


def _version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


if __name__ == "__main__":
    threading.current_thread().name = "ndi-bench"
    main()
