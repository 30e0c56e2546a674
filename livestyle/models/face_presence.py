"""Is a face in the picture? MediaPipe's short-range face detector (BlazeFace, Apache-2.0) on LiteRT.

The selfie segmentation network marks the main foreground of any picture as "person" (a cat's
face filling the frame, a coffee cup in close-up), so the ``selfie`` mask is gated by a face check.
Only the detector's confidence is used, not its boxes: ``presence`` is the highest of its 896
anchor scores.

Layout, as MediaPipe's ``face_detection_short_range`` graph feeds it: input ``[1, 128, 128, 3]``
float32 RGB in ``[-1, 1]``, the picture scaled to fit with its aspect ratio kept and zero (black)
borders; outputs ``regressors`` ``[1, 896, 16]`` (boxes, unused here) and ``classificators``
``[1, 896, 1]`` logits, turned into probabilities by a sigmoid (after clipping to ``±100``, as
MediaPipe does). Short range: faces within about 2 m of a webcam.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from livestyle.errors import ModelLoadError
from livestyle.models.litert import LiteRTNet, load_litert_net

__all__ = ["FacePresence", "letterbox", "load_face_presence"]

INPUT_SIZE = 128
SCORES = "classificators"


def letterbox(image: np.ndarray, size: int) -> np.ndarray:
    """``uint8`` ``[H, W, 3]`` → ``uint8`` ``[size, size, 3]``: scaled to fit (bilinear), black borders."""
    h, w = image.shape[:2]
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    out = np.zeros((size, size, 3), np.uint8)
    top, left = (size - nh) // 2, (size - nw) // 2
    out[top : top + nh, left : left + nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    return out


class FacePresence:
    """The loaded detector; :meth:`presence` is the probability that a face is in the picture."""

    def __init__(self, net: LiteRTNet) -> None:
        if net.input_shape != (1, INPUT_SIZE, INPUT_SIZE, 3) or SCORES not in net.outputs:
            raise ModelLoadError(
                f"{net.path} is not MediaPipe's short-range face detector: input {list(net.input_shape)}, "
                f"outputs {list(net.outputs)}; expected [1, 128, 128, 3] and {SCORES!r}"
            )
        self.net = net

    def presence(self, image: np.ndarray) -> float:
        """``uint8`` ``[H, W, 3]`` RGB → highest face score in ``[0, 1]``."""
        x = letterbox(image, INPUT_SIZE).astype(np.float32)
        x *= 1.0 / 127.5
        x -= 1.0
        logits = self.net.run(x[None], (SCORES,))[0]
        top = float(np.clip(logits.max(), -100.0, 100.0))
        return 1.0 / (1.0 + float(np.exp(-top)))


def load_face_presence(path: str | Path, threads: int = 1) -> FacePresence:
    """Load the detector on ``threads`` CPU threads (ModelLoadError: no LiteRT, not this model)."""
    return FacePresence(load_litert_net(path, threads))
