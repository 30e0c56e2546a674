"""Noise injection for video-to-video: SDEdit mixing, SDV2's motion-aware controller, Krea's
strength → first-timestep rule, and the seeded noise source every draw of a stream comes from.

Facts from MODEL_SPEC §3.6, §4.1–4.2 and §5.1; reference code: StreamDiffusionV2
``streamv2v/inference.py::compute_noise_scale_and_step`` and ``_encode_noisy_latents``; Krea
``release_server.py::get_denoising_schedule``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

__all__ = [
    "NoiseSource",
    "mix",
    "motion_distance",
    "MotionController",
    "timestep_table",
    "warp_timesteps",
    "strength_schedule",
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
    The scalar crosses to the host once per chunk (the first timestep is a Python number that the
    schedule needs); that is the reference behaviour and costs one tiny sync per chunk.
    """

    init_scale: float
    scale: float
    weight: float = 0.1

    def update(self, distance: float) -> tuple[float, int]:
        """Feed a chunk's motion distance; returns ``(noise_scale, first_step)``."""
        self.scale = (self.init_scale - self.weight * distance) * 0.9 + self.scale * 0.1
        return self.scale, sdv2_first_step(self.scale)


def sdv2_first_step(scale: float) -> int:
    """SDV2's first timestep for a noise scale: ``int(1000*s) - 100`` (700 for 0.8), floored at 0."""
    return max(int(1000 * scale) - 100, 0)


def timestep_table(shift: float, num_train_timesteps: int = 1000) -> torch.Tensor:
    """The flow-matching timestep table ``[1000]`` float64, from 1000 down (§3.6).

    ``u_i = linspace(1, 0, 1001)[:-1]``, ``sigma_i = s*u_i / (1 + (s-1)*u_i)``, ``t_i = 1000*sigma_i``.
    """
    u = torch.linspace(1.0, 0.0, num_train_timesteps + 1, dtype=torch.float32)[:-1].double()
    sigma = shift * u / (1 + (shift - 1) * u)
    return sigma * num_train_timesteps


def warp_timesteps(nominal: Sequence[float], shift: float) -> list[float]:
    """Map nominal timesteps (0..1000) through the shifted table: ``cat(table, [0])[1000 - t]``."""
    table = torch.cat([timestep_table(shift).float(), torch.zeros(1)])
    return [float(table[1000 - int(t)]) for t in nominal]


def strength_schedule(strength: float, steps: int, shift: float, *, final_zero: bool) -> list[float]:
    """Krea's strength → timesteps: ``linspace(1000*strength, 0, n)`` cast to long, then warped.

    With ``final_zero`` the list has ``steps`` entries and ends with the t=0 call (Krea's
    ``num_denoising_steps`` counts it); otherwise ``steps`` non-zero entries.
    Strength 1, 5 steps, shift 5 → ``[1000, 937.5, 833.33, 625, 0]``; 0.7, 4 → ``[921.05, 813.55, 603.0, 0]``.
    """
    n = steps if final_zero else steps + 1
    nominal = torch.linspace(strength * 1000, 0, n).long().tolist()
    warped = warp_timesteps(nominal, shift)
    return warped if final_zero else warped[:-1]
