"""The page in real headless Chromium with the real tiny model behind the server.

``open_generator("tiny", config)`` (random weights in the release formats, CPU, 64x48 working size
for a 320x240 stream, two denoising steps in the SDV2 stream batch) runs in the server's runner,
wrapped by a recorder. The test checks that frames flow both ways, that the pipeline's output
counts follow its chunking (5 then 4 frames, one chunk in flight), that replaying the recorded
input chunks on a freshly opened pipeline gives the very same frames (same seed, same input), that
those frames are far from the input, and that the page shows those frames (codec tolerance).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from chromium import Chromium
from netns import NetnsRunner
from recording import RecordingGenerator, probe_samples
from stack import Stack

from livestyle.config import config_from_dict
from livestyle.generators import open_generator
from livestyle.server.app import ServerSettings

pytestmark = pytest.mark.browser

REPORT = "Promise.resolve(window.livestyle && window.livestyle.report())"
STEPS = 2


@pytest.fixture
def tiny_config(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("LIVESTYLE_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("LIVESTYLE_WEIGHTS_DIR", raising=False)
    # the TAEHV decoder keeps a chunk near real time on a loaded 2-core CPU (the Wan VAE encodes)
    return config_from_dict({"model": {"name": "tiny", "steps": STEPS, "device": "cpu", "vae": "tiny"},
                             "stream": {"size": "320x240"}})


def test_tiny_model_page_round_trip(netns: NetnsRunner, browser: Chromium, tiny_config: Any) -> None:
    torch.set_num_threads(1)
    recorder = RecordingGenerator(open_generator("tiny", tiny_config))

    def scenario() -> dict[str, Any]:
        stack = Stack(recorder, ServerSettings(port=0, codec="vp8", bitrate=4_000_000))
        try:
            page = browser.open(f"{stack.url}/?autostart=1&probe=1")
            browser.wait_for(page, f"({REPORT}).then(r => r && r.outFrames >= 30)", timeout=30)
            report = browser.evaluate(page, REPORT)
            browser.close_tab(page)
            return report
        finally:
            stack.close()

    report = netns.run(scenario)
    calls = recorder.snapshot()

    # frames flowed both ways, at the stream's size
    assert report["error"] == "" and report["inFrames"] >= 30 and report["outFrames"] >= 30, report["error"]
    assert (report["outWidth"], report["outHeight"]) == (320, 240)
    assert [c.kind for c in calls] == ["process"] * len(calls)  # nothing reset or re-configured it
    assert len(calls) >= 4, len(calls)

    # chunking: a 5-frame warm-up chunk comes back at once, then 4-frame chunks, each returned
    # STEPS - 1 calls later (stream batch); outputs keep their input frame's pts, in order
    assert [len(c.inputs) for c in calls] == [5] + [4] * (len(calls) - 1)
    assert [len(c.outputs) for c in calls] == [5] + [0] * (STEPS - 1) + [4] * (len(calls) - STEPS)
    inputs = [f for c in calls for f in c.inputs]
    outputs = [f for c in calls for f in c.outputs]
    assert [f.pts for f in outputs] == [f.pts for f in inputs[: len(outputs)]]
    assert all(f.image.shape == (240, 320, 3) for f in outputs)

    # deterministic: the same input chunks through a freshly opened pipeline give the same frames
    fresh = open_generator("tiny", tiny_config)
    for c in calls:
        again = fresh.process(c.inputs)
        assert len(again) == len(c.outputs)
        for a, b in zip(again, c.outputs, strict=True):
            assert np.abs(a.image.astype(int) - b.image.astype(int)).max() <= 1

    # the model changed the picture: far from its input frame
    out_px = np.stack([f.image for f in outputs]).astype(np.float64)
    in_px = np.stack([f.image for f in inputs[: len(outputs)]]).astype(np.float64)
    assert np.abs(out_px - in_px).mean() > 40, np.abs(out_px - in_px).mean()

    # the page shows the pipeline's frames: each late output record is close to one of them and
    # far from every input frame (the probe reads 20 points of the picture the page presents)
    out_probes = np.stack([probe_samples(f.image) for f in outputs])  # [N, 20, 3]
    in_probes = np.stack([probe_samples(f.image) for f in inputs])
    records = [np.asarray(s, np.float64).reshape(20, 3) for _, s in report["outProbe"][-20:]]
    to_out = [np.abs(out_probes - r).mean(axis=(1, 2)).min() for r in records]
    to_in = [np.abs(in_probes - r).mean(axis=(1, 2)).min() for r in records]
    assert np.median(to_out) < 12 and np.median(to_in) > 60, (np.median(to_out), np.median(to_in))
