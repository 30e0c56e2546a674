"""Mask provider ``selfie``: MediaPipe selfie segmentation on LiteRT, a few ms per frame on one core.

Per frame, as MediaPipe's own CPU graph does it: the whole picture is resized (stretched, no
padding) to the network's input — 256x256, or 256x144 for frames at least 1.55 times as wide as
high (``effects.selfie.variant``) — bilinearly, as MediaPipe's ImageToTensorCalculator does, and
scaled to ``[0, 1]``; the network's output is already a probability (sigmoid inside), so the mask
is only resized (bilinear) to :data:`MASK_SCALE` of the frame: the frame's aspect ratio at about
the network's resolution, where the effect smooths and feathers it before enlarging it to the frame.
``interval`` > 1 runs the network on every n-th frame and reuses its mask in between.

Face gate: the network marks the main foreground of *any* close-up as person (a cat's face
filling the frame scores 0.9 over 90% of the picture). So every ``gate_interval``-th frame the
short-range face detector (:mod:`livestyle.models.face_presence`) checks for a face; after
:data:`GATE_HOLD` checks in a row without one scoring ``face_gate``, the mask is empty (and the
segmentation network is not run) until a face is seen again. A stream starts with the gate
closed until its first check. ``face_gate = 0`` turns the check off.

The provider runs wherever :class:`~livestyle.effects.generator.EffectGenerator` calls it: on its
mask thread beside the generator (the default), on ``effects.selfie.threads`` LiteRT threads.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from livestyle.config import SelfieMaskConfig
from livestyle.errors import WeightsError
from livestyle.models.face_presence import FacePresence, load_face_presence
from livestyle.models.selfie import (
    SELFIE_VARIANTS,
    SelfieModel,
    load_selfie_model,
    pick_variant,
)
from livestyle.effects.masks.base import MaskResult

__all__ = ["GATE_HOLD", "MASK_SCALE", "FaceGate", "SelfieSegmenter", "open_selfie_segmenter", "resolve_selfie_files"]

MASK_SCALE = 0.5
"""Mask size returned by ``compute``, as a fraction of the frame's sides (320x240 for 640x480)."""
GATE_HOLD = 2
"""Face checks in a row without a face before the gate closes (a turned head, a blink of the detector)."""
FACE_ROLE = "face"


class FaceGate:
    """Open while a face was seen in one of the last :data:`GATE_HOLD` checks; checks every ``interval`` frames."""

    def __init__(self, detector: FacePresence, threshold: float, interval: int) -> None:
        self.detector = detector
        self.threshold = threshold
        self.interval = interval
        self.last_score = 0.0
        self.reset()

    def update(self, image: np.ndarray) -> bool:
        """Count one frame (``uint8`` ``[H, W, 3]`` RGB), checking it when due; return whether the gate is open."""
        if self._count % self.interval == 0:
            self.last_score = self.detector.presence(image)
            self._misses = 0 if self.last_score >= self.threshold else self._misses + 1
        self._count += 1
        return self._misses < GATE_HOLD

    def reset(self) -> None:
        self._count = 0
        self._misses = GATE_HOLD


class SelfieSegmenter:
    """Mask provider ``selfie``: the loaded networks (by variant name), the face gate, pre/post-processing."""

    name = "selfie"

    def __init__(self, models: dict[str, SelfieModel], settings: SelfieMaskConfig | None = None, gate: FaceGate | None = None) -> None:
        self.settings = settings or SelfieMaskConfig()
        self.models = models
        self.gate = gate
        self._last: np.ndarray | None = None
        self._last_shape: tuple[int, ...] = ()
        self._count = 0

    def model_for(self, height: int, width: int) -> SelfieModel:
        """The network a ``height x width`` frame goes through (``settings.variant``)."""
        variant = pick_variant(height, width, self.settings.variant)
        try:
            return self.models[variant.role]
        except KeyError:
            raise WeightsError(f"selfie mask: the {variant.role} network is not loaded (loaded: {', '.join(self.models)})") from None

    def probability(self, image: np.ndarray, scale: float = 1.0) -> np.ndarray:
        """``uint8`` ``[H, W, 3]`` RGB → the network's person probability ``float32`` in ``[0, 1]`` (no gate).

        The result is ``[round(H * scale), round(W * scale)]`` (at least 1 px a side).
        """
        height, width = image.shape[:2]
        model = self.model_for(height, width)
        v = model.variant
        x = cv2.resize(image, (v.width, v.height), interpolation=cv2.INTER_LINEAR).astype(np.float32)
        x *= 1.0 / 255.0
        prob = model.run(x)
        out_h, out_w = max(1, round(height * scale)), max(1, round(width * scale))
        return cv2.resize(prob, (out_w, out_h), interpolation=cv2.INTER_LINEAR)

    def compute(self, image: np.ndarray) -> MaskResult:
        assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8, f"{image.shape=} {image.dtype=}"
        if self.gate is not None and not self.gate.update(image):
            self._last = None  # run the network again as soon as a face is back
            self._count = 0
            h, w = image.shape[:2]
            return MaskResult(subject=np.zeros((max(1, round(h * MASK_SCALE)), max(1, round(w * MASK_SCALE))), np.float32))
        if self._last is None or self._count % self.settings.interval == 0 or self._last_shape != image.shape:
            self._last = self.probability(image, MASK_SCALE)
            self._last_shape = image.shape
        self._count += 1
        return MaskResult(subject=self._last)

    def reset(self) -> None:
        """Forget the reused mask and the gate's history (a new scene or stream)."""
        self._last = None
        self._count = 0
        if self.gate is not None:
            self.gate.reset()


def resolve_selfie_files(settings: SelfieMaskConfig) -> dict[str, Path]:
    """Role → model file through the weights registry (``settings.model``): the variants, and ``face`` when gated."""
    from livestyle.models import weights

    roles = [*SELFIE_VARIANTS, *([FACE_ROLE] if settings.face_gate > 0 else [])]
    try:
        return {role: Path(weights.resolve(settings.model, role)) for role in roles}
    except WeightsError as exc:  # its message names the `livestyle weights pull` command
        raise WeightsError(f"person mask (selfie): {exc}") from None


def open_selfie_segmenter(settings: SelfieMaskConfig | None = None) -> SelfieSegmenter:
    """Resolve and load the networks (raises WeightsError / ModelLoadError, naming the fix)."""
    settings = settings or SelfieMaskConfig()
    files = resolve_selfie_files(settings)
    models = {role: load_selfie_model(files[role], variant, settings.threads) for role, variant in SELFIE_VARIANTS.items()}
    gate = None
    if settings.face_gate > 0:
        gate = FaceGate(load_face_presence(files[FACE_ROLE], settings.threads), settings.face_gate, settings.gate_interval)
    return SelfieSegmenter(models, settings, gate)
