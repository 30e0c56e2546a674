"""A y4m file for Chromium's fake camera whose frames carry their own number.

Layout (fractions of the frame, mirrored by ``PROBE_POINTS`` in ``server/static/common.js``):
the top 10 % holds 16 black/white blocks, the frame number's bits (MSB first); below it four
flat colour quadrants. The page samples those points on its input preview and on the output, so
tests can match the same frame on both sides, compare pixels, and time frame in → frame out.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

__all__ = ["BITS", "QUADRANT_COLOURS", "decode_probe", "write_fake_camera"]

BITS = 16
QUADRANT_COLOURS = ((220, 40, 40), (40, 200, 60), (40, 70, 220), (230, 210, 40))


def frame_image(index: int, width: int, height: int) -> np.ndarray:
    """``uint8 [H, W, 3]`` RGB picture for frame ``index``."""
    img = np.empty((height, width, 3), np.uint8)
    band = height // 10
    top, half_w = band, width // 2
    mid = top + (height - top) // 2
    img[top:mid, :half_w] = QUADRANT_COLOURS[0]
    img[top:mid, half_w:] = QUADRANT_COLOURS[1]
    img[mid:, :half_w] = QUADRANT_COLOURS[2]
    img[mid:, half_w:] = QUADRANT_COLOURS[3]
    for bit in range(BITS):
        on = (index >> (BITS - 1 - bit)) & 1
        x0, x1 = bit * width // BITS, (bit + 1) * width // BITS
        img[:band, x0:x1] = 255 if on else 0
    return img


def write_fake_camera(path: Path, *, width: int = 320, height: int = 240, fps: int = 30, frames: int = 90) -> Path:
    """Write ``frames`` numbered frames as a 4:2:0 y4m file Chromium plays in a loop."""
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for i in range(frames):
            yuv = av.VideoFrame.from_ndarray(frame_image(i, width, height), format="rgb24").reformat(format="yuv420p")
            f.write(b"FRAME\n")
            for plane, (w, h) in zip(yuv.planes, ((width, height), (width // 2, height // 2), (width // 2, height // 2)), strict=True):
                data = np.frombuffer(bytes(plane), np.uint8).reshape(h, plane.line_size)[:, :w]
                f.write(data.tobytes())
    return path


def decode_probe(samples: list[int], *, inverted: bool = False) -> tuple[int, np.ndarray]:
    """Frame number and the four quadrant colours (``[4, 3]`` float) from one probe record."""
    values = np.asarray(samples, dtype=np.float64)
    bits = values[: BITS * 3].reshape(BITS, 3).mean(1)
    on = bits < 128 if inverted else bits >= 128
    index = int("".join("1" if b else "0" for b in on), 2)
    return index, values[BITS * 3 :].reshape(4, 3)
