"""A square in a 4:3 browser camera stays square through the WebRTC ingest (issue 13, --fit)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from chromium import Chromium, chromium_path
from netns import NetnsRunner
from stack import Stack

from livestyle.engine.passthrough import PassthroughGenerator
from livestyle.server.app import ServerSettings

pytestmark = pytest.mark.browser

REPORT = "Promise.resolve(window.livestyle && window.livestyle.report())"
BRIGHT_BOX = """(() => {
  const v = document.getElementById('output');
  const c = document.createElement('canvas');
  c.width = v.videoWidth; c.height = v.videoHeight;
  const g = c.getContext('2d');
  g.drawImage(v, 0, 0);
  const d = g.getImageData(0, 0, c.width, c.height).data;
  let x0 = c.width, y0 = c.height, x1 = -1, y1 = -1;
  for (let y = 0; y < c.height; y++) for (let x = 0; x < c.width; x++) {
    const i = 4 * (y * c.width + x);
    if (d[i] + d[i + 1] + d[i + 2] > 3 * 160) { x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y); }
  }
  return {w: c.width, h: c.height, box: [x1 - x0 + 1, y1 - y0 + 1]};
})()"""


def write_square_y4m(path: Path, width: int = 640, height: int = 480, side: int = 200, frames: int = 30) -> Path:
    """A 4:3 y4m: black with a white ``side`` x ``side`` square in the middle (4:2:0, limited range)."""
    y = bytearray([16]) * (width * height)
    top, left = (height - side) // 2, (width - side) // 2
    for row in range(top, top + side):
        y[row * width + left:row * width + left + side] = bytes([235]) * side
    chroma = bytes([128]) * (width * height // 2)
    with path.open("wb") as f:
        f.write(f"YUV4MPEG2 W{width} H{height} F30:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            f.write(b"FRAME\n" + bytes(y) + chroma)
    return path


@pytest.mark.parametrize(("fit", "square"), [("crop", True), ("stretch", False)])
def test_browser_square_stays_square(netns: NetnsRunner, tmp_path: Path, fit: str, square: bool) -> None:
    if chromium_path() is None:
        pytest.skip("Debian chromium is not installed (apt-get install -y chromium)")
    camera = write_square_y4m(tmp_path / "square.y4m")

    def scenario() -> dict[str, Any]:
        chrome = Chromium(camera)
        stack = Stack(PassthroughGenerator(), ServerSettings(port=0), size=(832, 480))
        stack.source.fit = fit  # what `livestyle serve --fit` sets
        try:
            page = chrome.open(f"{stack.url}/?autostart=1")
            chrome.wait_for(page, f"({REPORT}).then(r => r && r.outFrames >= 30 && r.inWidth === 640)", timeout=30)
            return chrome.evaluate(page, BRIGHT_BOX)
        finally:
            stack.close()
            chrome.close()

    result = netns.run(scenario)
    assert (result["w"], result["h"]) == (832, 480), result
    w, h = result["box"]
    assert (abs(w - h) <= 8) is square, result  # crop: ~260x260; stretch: ~260x200
