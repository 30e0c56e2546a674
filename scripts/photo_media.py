"""Real-photo media for the background effects: a panned clip to stream, and the README's before/after still.

Both come from scikit-image's ``astronaut`` sample photo (a real person; ``pip install
scikit-image``, in the dev extra). The clip is what the end-to-end CPU measurement in the README
streams; the still is ``docs/images/background_blur.jpg``.

    python scripts/photo_media.py clip astronaut_pan.mp4 --seconds 20     # 640x480, 30 fps, H.264
    python scripts/photo_media.py still docs/images/background_blur.jpg   # needs the selfie files
"""

from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np


def panned_views(width: int, height: int, n: int, step: int = 2, noise: float = 2.0, seed: int = 0) -> list[np.ndarray]:
    """``n`` RGB ``uint8`` ``[height, width, 3]`` views of the photo, panned left-right and back ``step`` px per frame.

    The photo is enlarged so the view has room to pan; light sensor noise (Gaussian, ``noise``
    levels) makes each frame a new picture, as a camera's are.
    """
    from skimage import data

    side = max(2 * height, width + 160)
    big = cv2.resize(data.astronaut(), (side, side), interpolation=cv2.INTER_CUBIC)
    top, travel = (side - height) // 8, side - width
    rng = np.random.default_rng(seed)
    views = []
    for i in range(n):
        x = (i * step) % (2 * travel)
        x = x if x <= travel else 2 * travel - x
        view = big[top : top + height, x : x + width].astype(np.float32)
        views.append(np.clip(view + rng.normal(0.0, noise, view.shape), 0, 255).astype(np.uint8))
    return views


def write_clip(path: Path, seconds: float, width: int = 640, height: int = 480, fps: int = 30) -> int:
    """Write the panned clip (H.264, yuv420p) with PyAV; return the number of frames written."""
    import av

    n = round(seconds * fps)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps, options={"crf": "18", "preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = Fraction(1, fps)
        for i, view in enumerate(panned_views(width, height, n)):
            frame = av.VideoFrame.from_ndarray(view, format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return n


def write_still(path: Path, width: int = 640, height: int = 480) -> None:
    """Camera | selfie mask | background blurred (``effects.fill=blur``), side by side, as JPEG."""
    from livestyle.config import SelfieMaskConfig
    from livestyle.models.weights_pull import pull
    from livestyle.effects.generator import blurred, composite
    from livestyle.effects.masks.selfie import open_selfie_segmenter
    from livestyle.effects.masks.smoothing import feather

    pull("mediapipe-selfie", progress=False)
    camera = panned_views(width, height, 1, noise=0.0)[0]
    subject = feather(open_selfie_segmenter(SelfieMaskConfig()).compute(camera).subject, 2.0)
    after = composite(blurred(camera, 12.0), camera, subject, "background")
    mask = cv2.cvtColor((subject * 255 + 0.5).astype(np.uint8), cv2.COLOR_GRAY2RGB)
    gap = np.full((height, 8, 3), 255, np.uint8)
    still = np.hstack([camera, gap, mask, gap, after])
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(still, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    clip = sub.add_parser("clip", help="the panned 640x480 clip")
    clip.add_argument("path", type=Path)
    clip.add_argument("--seconds", type=float, default=20.0)
    still = sub.add_parser("still", help="the before/after still")
    still.add_argument("path", type=Path)
    args = ap.parse_args()
    if args.what == "clip":
        print(f"{args.path}: {write_clip(args.path, args.seconds)} frames, 640x480, 30 fps")
    else:
        write_still(args.path)
        print(f"{args.path}: camera | mask | background blurred")


if __name__ == "__main__":
    main()
