"""WebRTC path cost in bypass: frame in → frame out at the page, CPU per frame, drops under load.

Real headless Chromium (Debian's ``chromium``) publishes a fake camera whose frames carry their
number; the page (``?probe=1``) samples its own camera preview and the processed output, so the
latency below is "shown as input" → "shown as output" for the same frame, in the same browser.
The server runs the real stack: aiortc decode → WebRTC source (convert/scale) → runner in bypass →
WebRTC sink (encode once) → packetize → the page. Everything runs inside a private network
namespace (root needed), as the browser tests do.

CPU per frame is read per thread from /proc (utime + stime): aiortc's decoder thread(s), the
runner's source thread (YUV→RGB), the sink thread (RGB→YUV + encode), the server's event loop
(RTP, SRTP, packetizing). "Under load" repeats the run while ``--load`` busy processes compete
for the CPUs.

    python benchmarks/webrtc_latency.py                 # 640x480, 30 fps, VP8, 8 s idle + 8 s loaded
    python benchmarks/webrtc_latency.py --codec h264 --seconds 5 --load 0

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
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "browser"))  # the Chromium/netns/fake-camera harness

from chromium import Chromium, chromium_path
from fake_camera import decode_probe, write_fake_camera
from netns import NetnsRunner, netns_unavailable_reason

from livestyle.ingest.webrtc import WebRTCSource
from livestyle.output.webrtc import WebRTCSink
from livestyle.engine.commands import SetBypass
from livestyle.engine.passthrough import PassthroughGenerator
from livestyle.engine.runner import Runner
from livestyle.server.app import ServerSettings, ServerThread

REPORT = "Promise.resolve(window.livestyle && window.livestyle.report())"
TICK = os.sysconf("SC_CLK_TCK")


def thread_cpu() -> dict[str, float]:
    """CPU seconds per live Python thread, grouped by role."""
    groups: dict[str, float] = {}
    for t in threading.enumerate():
        if t.native_id is None:
            continue
        try:
            fields = Path(f"/proc/self/task/{t.native_id}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        cpu = (int(fields[11]) + int(fields[12])) / TICK
        name = t.name
        role = ("decode" if "decoder" in name else "encode" if "sink" in name else
                "convert" if "source" in name else "worker" if name == "livestyle-worker" else
                "loop" if name == "livestyle-server" else "other")
        groups[role] = groups.get(role, 0.0) + cpu
    return groups


def busy() -> None:
    while True:
        pass


def latencies(report: dict[str, Any]) -> list[float]:
    inputs: dict[int, list[float]] = {}
    for t, samples in report["inProbe"]:
        inputs.setdefault(decode_probe(samples)[0], []).append(t)
    out = []
    for t, samples in report["outProbe"]:
        before = [ti for ti in inputs.get(decode_probe(samples)[0], []) if 0 <= t - ti < 2000]
        if before:
            out.append(t - max(before))
    return out


def measure(browser: Chromium, size: tuple[int, int], codec: str, bitrate: int, seconds: float, load: int,
            sink_queue: int) -> dict[str, Any]:
    settings = ServerSettings(port=0, codec=codec, bitrate=bitrate)
    server = ServerThread(settings, settings.make_hub()).start()
    hub = server.hub
    sink = WebRTCSink(hub, fps=30)
    runner = Runner(WebRTCSource(hub, size=size, fps=30), PassthroughGenerator(), [sink], size=size, fps=30,
                    sink_queue=sink_queue)
    runner.submit(SetBypass(True))
    runner.start()
    hogs = [multiprocessing.Process(target=busy, daemon=True) for _ in range(load)]
    try:
        page = browser.open(f"{server.url}/?autostart=1&probe=1")
        browser.wait_for(page, f"({REPORT}).then(r => r && r.outFrames >= 30)", timeout=60)
        for hog in hogs:
            hog.start()
        time.sleep(1.0)  # settle
        r0 = browser.evaluate(page, REPORT)
        cpu0, wall0, frames0 = thread_cpu(), time.monotonic(), sink.frames_encoded
        s0 = runner.stats()
        time.sleep(seconds)
        r1 = browser.evaluate(page, REPORT)
        cpu1, wall1, frames1 = thread_cpu(), time.monotonic(), sink.frames_encoded
        s1 = runner.stats()
        browser.close_tab(page)
    finally:
        for hog in hogs:
            hog.kill()
        runner.stop()
        runner.wait(10)
        server.stop()
    frames = max(1, frames1 - frames0)
    cpu = {k: 1000 * (cpu1.get(k, 0.0) - cpu0.get(k, 0.0)) / frames
           for k in ("decode", "convert", "worker", "encode", "loop", "other")}
    lat = latencies(r1)
    d0, d1 = s0.get("drops", {}), s1.get("drops", {})
    elapsed = wall1 - wall0
    in_frames, out_frames = r1["inFrames"] - r0["inFrames"], r1["outFrames"] - r0["outFrames"]
    return {
        "load_procs": load,
        "seconds": round(elapsed, 2),
        "page_in_fps": round(in_frames / elapsed, 1),
        "page_out_fps": round(out_frames / elapsed, 1),
        "out_size": [r1["outWidth"], r1["outHeight"]],
        "latency_ms_p50": round(float(np.median(lat)), 1) if lat else None,
        "latency_ms_p95": round(float(np.percentile(lat, 95)), 1) if lat else None,
        "matched_frames": len(lat),
        "server_delay_ms": r1["server"].get("delay_ms"),
        "cpu_ms_per_frame": {k: round(v, 2) for k, v in cpu.items()},
        "cpu_ms_per_frame_total": round(sum(cpu.values()), 2),
        "frames_encoded": frames,
        "dropped_page_in_minus_out": max(0, in_frames - out_frames),
        "dropped_server_ingest": d1.get("input", 0) - d0.get("input", 0),
        "dropped_sink_queue": sum(d1.get(k, 0) - d0.get(k, 0) for k in d1 if k.startswith("sink:")),
        "dropped_browser_decoder": r1["receive"]["framesDropped"] - r0["receive"]["framesDropped"],
        "codec": r1["receive"]["codec"],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--codec", default="vp8", choices=["vp8", "h264"])
    ap.add_argument("--bitrate", type=int, default=2_000_000)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--load", type=int, default=2, help="busy processes for the loaded run (0: skip it)")
    ap.add_argument("--sink-queue", type=int, default=4, help="runner sink queue (runner.sink_queue, default 4)")
    args = ap.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    if chromium_path() is None:
        print("chromium is not installed (apt-get install -y chromium)", file=sys.stderr)
        return 2
    reason = netns_unavailable_reason()
    if reason:
        print(f"cannot make a network namespace: {reason}", file=sys.stderr)
        return 2
    camera = write_fake_camera(Path(tempfile.mkdtemp()) / "fake.y4m", width=width, height=height, frames=60)
    ns = NetnsRunner()
    browser = ns.run(Chromium, camera)
    rows = []
    try:
        for load in ([0, args.load] if args.load else [0]):
            rows.append(ns.run(measure, browser, (width, height), args.codec, args.bitrate, args.seconds, load,
                               args.sink_queue, timeout=300))
    finally:
        ns.run(browser.close)
        ns.close()
        camera.unlink()
    cores = os.cpu_count()
    print(f"WebRTC bypass path, {width}x{height} 30 fps, {args.codec} {args.bitrate // 1000} kb/s, {cores} cores, "
          f"{args.seconds:.0f} s per run, sink queue {args.sink_queue}, load average {os.getloadavg()[0]:.1f}")
    header = ("load", "in fps", "out fps", "out size", "lat p50", "lat p95", "srv ms", "dec", "conv", "enc", "loop",
              "other", "cpu/frame", "drop in-out", "drop ingest", "drop sink", "drop dec")
    print(" | ".join(f"{h:>9}" for h in header))
    for r in rows:
        c = r["cpu_ms_per_frame"]
        cells = (r["load_procs"], r["page_in_fps"], r["page_out_fps"], "x".join(map(str, r["out_size"])),
                 r["latency_ms_p50"], r["latency_ms_p95"], r["server_delay_ms"], c["decode"], c["convert"],
                 c["encode"], c["loop"], round(c["other"] + c["worker"], 2), r["cpu_ms_per_frame_total"], r["dropped_page_in_minus_out"],
                 r["dropped_server_ingest"], r["dropped_sink_queue"], r["dropped_browser_decoder"])
        print(" | ".join(f"{v!s:>9}" for v in cells))
    print("(latency: same frame shown as input preview -> shown as output, in the page; cpu in ms per frame)")
    print(json.dumps({"benchmark": "webrtc_latency", "size": [width, height], "fps": 30, "codec": args.codec,
                      "bitrate": args.bitrate, "cores": cores, "sink_queue": args.sink_queue,
                      "loadavg_1min": round(os.getloadavg()[0], 2), "runs": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
