"""Noise injection for video-to-video: SDEdit mixing, SDV2's motion-aware controller and first
step, and the seeded noise source every draw of a stream comes from (Krea's strength → timesteps
rule is ``livestyle.models.scheduler.krea_steps``).

Facts from MODEL_SPEC §4.1–4.2; reference code: StreamDiffusionV2
``streamv2v/inference.py::compute_noise_scale_and_step`` and ``_encode_noisy_latents``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

__all__ = [
    "MotionController",
    "NoiseSource",
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
