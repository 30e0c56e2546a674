"""Mask provider ``person-hq``: person matting with MODNet (Apache-2.0), on the GPU when one is present.

The model's weights are downloaded once through the weights registry
(``livestyle weights pull modnet-webcam``, ``configs/models/modnet-webcam.yaml``) or read from a
local ``checkpoint`` path. The picture is shrunk so that its short side is ``input_size``
(both sides rounded to multiples of 32, as MODNet requires) and the matte is resized back to the
frame size. ``interval`` > 1
runs the model on every n-th frame only and reuses its matte in between (the effect's temporal
smoothing hides the steps), dividing the CPU cost by n.

No person in the frame gives an all-zeros subject mask: ``--effect background`` then styles the
whole frame and ``--effect person`` keeps the whole camera frame.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from livestyle.config import PersonMaskConfig
from livestyle.errors import ConfigError, WeightsError
from livestyle.models.segmentation import MODNet, load_modnet
from livestyle.effects.masks.base import MaskResult

__all__ = ["PersonSegmenter", "model_input_size", "open_person_segmenter", "resolve_person_checkpoint"]

WEIGHTS_ROLE = "model"
"""Role of the checkpoint file in ``configs/models/modnet-webcam.yaml``."""


def model_input_size(height: int, width: int, short_side: int) -> tuple[int, int]:
    """``(h, w)`` the model sees: the frame scaled so its short side is ``short_side``, both multiples of 32."""
    scale = short_side / min(height, width)
    return max(32, round(height * scale / 32) * 32), max(32, round(width * scale / 32) * 32)


class PersonSegmenter:
    """Mask provider ``person-hq``: a loaded MODNet plus the pre/post-processing around it."""

    name = "person-hq"

    def __init__(self, model: MODNet, settings: PersonMaskConfig | None = None) -> None:
        self.settings = settings or PersonMaskConfig()
        if self.settings.input_size % 32:
            raise ConfigError(f"effects.person.input_size must be a multiple of 32, got {self.settings.input_size}")
        self.model = model
        self._device = next(model.parameters()).device
        self._last: np.ndarray | None = None
        self._last_shape: tuple[int, ...] = ()
        self._count = 0

    @torch.inference_mode()
    def matte(self, image: np.ndarray) -> np.ndarray:
        """``uint8`` ``[H, W, 3]`` RGB → matte ``float32`` ``[H, W]`` in ``[0, 1]``.

        The model runs at :func:`model_input_size` (whose rounding to multiples of 32 changes the
        aspect ratio slightly); its matte is resized back to the frame size here.
        """
        height, width = image.shape[:2]
        h, w = model_input_size(height, width, self.settings.input_size)
        small = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
        x = torch.from_numpy(small).to(self._device).permute(2, 0, 1)[None].float()
        x = x.mul_(1.0 / 127.5).sub_(1.0)
        matte = self.model(x)[0, 0].float().cpu().numpy()
        return cv2.resize(matte, (width, height), interpolation=cv2.INTER_LINEAR)

    def compute(self, image: np.ndarray) -> MaskResult:
        assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8, f"{image.shape=} {image.dtype=}"
        if self._last is None or self._count % self.settings.interval == 0 or self._last_shape != image.shape:
            self._last = self.matte(image)
            self._last_shape = image.shape
        self._count += 1
        return MaskResult(subject=self._last)

    def reset(self) -> None:
        """Forget the reused matte (a new scene or stream)."""
        self._last = None
        self._count = 0


def resolve_person_checkpoint(settings: PersonMaskConfig) -> Path:
    """The checkpoint file to load: ``settings.checkpoint`` or the registry's file for ``settings.model``."""
    if settings.checkpoint:
        path = Path(settings.checkpoint).expanduser()
        if not path.exists():
            raise WeightsError(f"person mask checkpoint {path} does not exist; fix effects.person.checkpoint")
        return path
    from livestyle.models import weights

    try:
        return Path(weights.resolve(settings.model, WEIGHTS_ROLE))
    except WeightsError as exc:  # its message names the `livestyle weights pull` command
        raise WeightsError(f"person mask (person-hq, MODNet): {exc}") from None


def open_person_segmenter(settings: PersonMaskConfig | None = None) -> PersonSegmenter:
    """Resolve, load and wrap the person-segmentation model (raises WeightsError / ModelLoadError).

    ``device: auto`` puts it on the GPU when torch sees one, else on the CPU.
    """
    settings = settings or PersonMaskConfig()
    device = settings.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model = load_modnet(resolve_person_checkpoint(settings), device=device)
    return PersonSegmenter(model, settings)
