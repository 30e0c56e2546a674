"""Noise injection for video-to-video: SDEdit mixing, SDV2's motion-aware controller and first
step, and the seeded noise source every draw of a stream comes from (Krea's strength → timesteps
rule is ``livestyle.models.scheduler.krea_steps``).

Facts from StreamDiffusionV2 (chenfengxu714/StreamDiffusionV2, streamv2v/inference.py); reference code: StreamDiffusionV2
``streamv2v/inference.py::compute_noise_scale_and_step`` and ``_encode_noisy_latents``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from livestyle.errors import PipelineError

__all__ = [
    "MotionController",
    "NoiseSource",
    "keep_scale",
    "latent_keep_mask",
    "mix",
    "motion_distance",
    "sdv2_first_step",
]


class NoiseSource:
    """Gaussian noise from one seeded generator, so a stream is reproducible for a seed.

    Every random draw of a stream goes through :meth:`draw`, in a fixed order (injection noise of a
    chunk, then the re-noising of each step), on ``device``. ``reseed`` restarts the sequence.
    """

    def __init__(self, seed: int, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.generator = torch.Generator(device=self.device)
        self.seed = int(seed)
        self.generator.manual_seed(self.seed)

    def reseed(self, seed: int) -> None:
        self.seed = int(seed)
        self.generator.manual_seed(self.seed)

    def draw(self, shape: Sequence[int], dtype: torch.dtype) -> torch.Tensor:
        """Standard normal noise ``shape`` in ``dtype`` on the source's device."""
        return torch.randn(tuple(shape), generator=self.generator, device=self.device, dtype=dtype)


def mix(latents: torch.Tensor, noise: torch.Tensor, scale: float | torch.Tensor) -> torch.Tensor:
    """SDEdit / flow-matching forward noising ``noise*s + latents*(1-s)`` (any layout, same shapes)."""
    return noise * scale + latents * (1 - scale)


def latent_keep_mask(masks: Sequence[np.ndarray | None], latent_frames: int, latent_hw: tuple[int, int]) -> torch.Tensor | None:
    """A chunk's keep masks at latent resolution: ``float32`` ``[1, 1, F, h, w]`` in ``[0, 1]`` on the CPU.

    Args:
        masks: one ``float32`` ``[H, W]`` mask in ``[0, 1]`` per pixel frame of the chunk (1 = keep
            the input there), all the same size, or ``None`` for a frame without one (treated as 0).
        latent_frames: ``F``, the chunk's latent frames; the chunk has ``4F`` pixel frames, or
            ``4F - 3`` when it is a stream's first (the Wan VAE encodes the first frame alone).
        latent_hw: ``(h, w)``, the latent size (the working size / 8).

    Returns ``None`` when no frame has a mask. Each latent pixel is the area average of the masks
    over its pixel frames (the first frame alone, then groups of 4) and the source pixels it covers
    (8x8 at the working size; ``F.interpolate(mode="area")`` straight from the frame size, so a
    working size scaled from the frame's is followed too). Computed on the host: only the small
    latent-size map travels to the device.
    """
    if all(m is None for m in masks):
        return None
    n = len(masks)
    if n == 4 * latent_frames:
        groups = [range(4 * j, 4 * j + 4) for j in range(latent_frames)]
    elif n == 4 * latent_frames - 3:
        groups = [range(1)] + [range(4 * j - 3, 4 * j + 1) for j in range(1, latent_frames)]
    else:
        raise PipelineError(f"a chunk of {n} frames does not make {latent_frames} latent frames; keep masks cannot be aligned")
    shape = next(m.shape for m in masks if m is not None)
    planes = np.zeros((latent_frames, *shape), np.float32)
    for j, group in enumerate(groups):  # time first: one spatial pass per latent frame, not per frame
        for i in group:
            m = masks[i]
            if m is None:
                continue
            if m.shape != shape:
                raise PipelineError(f"keep masks of one chunk differ in size ({m.shape} vs {shape}); masks must match their frames")
            planes[j] += m
        planes[j] /= len(group)
    small = F.interpolate(torch.from_numpy(planes)[None], size=latent_hw, mode="area")[0]  # [F, h, w]
    return small.clamp_(0.0, 1.0)[None, None]


def keep_scale(scale: float | torch.Tensor, keep: torch.Tensor, strength: float) -> torch.Tensor:
    """Per-latent-pixel noise scale ``scale * (1 - strength * keep)``: ``keep`` ``[1, 1, F, h, w]``
    in ``[0, 1]`` (1 = keep the input), ``strength`` in ``[0, 1]`` (0 = no change, 1 = no noise
    where ``keep`` is 1). Broadcasts against latents ``[B, C, F, h, w]`` in :func:`mix`."""
    return scale * (1.0 - strength * keep)


def motion_distance(previous_last: torch.Tensor, frames: torch.Tensor, norm: float = 0.2) -> torch.Tensor:
    """SDV2's motion measure of a chunk, a 0-d tensor in ``[0, 1]`` (stays on the device).

    Args:
        previous_last: ``[B, 3, 1, H, W]`` the frame before the chunk, pixels in ``[-1, 1]``.
        frames: ``[B, 3, T, H, W]`` the chunk, pixels in ``[-1, 1]``.
        norm: RMS frame difference that counts as full motion (0.2 in SDV2).

    ``clamp(max_t RMS(frame_t - frame_{t-1}) / norm, 0, 1)`` with the RMS over batch, channels and pixels.
    """
    video = torch.cat([previous_last, frames], dim=2).float()
    diff = (video[:, :, 1:] - video[:, :, :-1]) ** 2
    return (diff.mean(dim=(0, 1, 3, 4)).sqrt().max() / norm).clamp(0, 1)


@dataclass
class MotionController:
    """SDV2's motion-aware noise controller (§4.2): fast motion → less noise.

    ``s_new = (s_init - weight*d)*0.9 + s_prev*0.1`` and the chunk's first denoising step is
    ``int(1000*s_new) - 100``. ``s_init`` is the user's strength; ``s_prev`` the last chunk's value.
    Everything stays on the device in float64 (the reference computes in Python floats), so the
    controller costs no host sync.
    """

    init_scale: float
    scale: float | torch.Tensor
    weight: float = 0.1

    def update(self, distance: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Feed a chunk's motion distance (0-d tensor); returns ``(noise_scale, first_step)`` as
        0-d float64 tensors on the distance's device."""
        d = distance.double()
        self.scale = (self.init_scale - self.weight * d) * 0.9 + self.scale * 0.1
        return self.scale, (torch.trunc(1000 * self.scale) - 100).clamp_min(0)


def sdv2_first_step(scale: float) -> int:
    """SDV2's first timestep for a noise scale: ``int(1000*s) - 100`` (700 for 0.8), floored at 0."""
    return max(int(1000 * scale) - 100, 0)
