"""MediaPipe selfie segmentation (Apache-2.0) on LiteRT: the fast ``person`` mask.

Two published networks (``configs/models/mediapipe-selfie.yaml``): ``general`` with a 256x256
input and ``landscape`` with a 256x144 (width x height) input, for 16:9 pictures, run through
LiteRT (:mod:`livestyle.models.litert`), never through the ``mediapipe`` package.

Layout, as MediaPipe's own graph (``selfie_segmentation_cpu.pbtxt``) feeds them: input
``[1, h, w, 3]`` float32 RGB in ``[0, 1]``, the whole picture stretched to ``h x w`` (no aspect
padding); output ``[1, h, w, 1]`` float32 person probability in ``[0, 1]`` (the sigmoid is the
network's last layer; MediaPipe applies no activation after it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from livestyle.errors import ModelLoadError
from livestyle.models.litert import LiteRTNet, load_litert_net

__all__ = ["SELFIE_VARIANTS", "SelfieModel", "SelfieVariant", "load_selfie_model", "pick_variant"]


@dataclass(frozen=True)
class SelfieVariant:
    """One published network: its registry role and input size (``height x width``)."""

    role: str
    height: int
    width: int


SELFIE_VARIANTS: dict[str, SelfieVariant] = {
    "general": SelfieVariant("general", 256, 256),
    "landscape": SelfieVariant("landscape", 144, 256),
}
"""The two networks by name (also their roles in the registry entry)."""

LANDSCAPE_MIN_ASPECT = 1.55
"""``auto`` picks ``landscape`` for frames at least this wide (16:9 = 1.78 yes, 4:3 = 1.33 no)."""


def pick_variant(height: int, width: int, variant: str = "auto") -> SelfieVariant:
    """The network for a ``height x width`` frame: ``variant`` itself, or by aspect ratio for ``auto``."""
    if variant == "auto":
        variant = "landscape" if width / height >= LANDSCAPE_MIN_ASPECT else "general"
    return SELFIE_VARIANTS[variant]


class SelfieModel:
    """One loaded selfie segmentation network (layouts in the module docstring)."""

    def __init__(self, net: LiteRTNet, variant: SelfieVariant) -> None:
        want = (1, variant.height, variant.width, 3)
        if net.input_shape != want or len(net.outputs) != 1:
            raise ModelLoadError(
                f"{net.path} is not the {variant.role} selfie segmentation network: input {list(net.input_shape)}, "
                f"{len(net.outputs)} outputs; expected input {list(want)} and one output"
            )
        self.net = net
        self.variant = variant
        self._output = next(iter(net.outputs))

    def run(self, x: np.ndarray) -> np.ndarray:
        """``x`` float32 ``[h, w, 3]`` RGB in ``[0, 1]`` → person probability float32 ``[h, w]`` in ``[0, 1]``."""
        return self.net.run(x[None], (self._output,))[0][0, :, :, 0]


def load_selfie_model(path: str | Path, variant: SelfieVariant, threads: int = 1) -> SelfieModel:
    """Load one network on ``threads`` CPU threads (ModelLoadError: no LiteRT, not a model, wrong input)."""
    return SelfieModel(load_litert_net(path, threads), variant)
