"""Flow-matching schedule of the distilled Wan models (StreamDiffusionV2 and Self-Forcing inference code; docs/models.md).

Noise levels: ``u_i = linspace(1, 0, 1001)[:-1]``, ``sigma_i = s·u_i / (1 + (s-1)·u_i)`` for shift
``s``, model timesteps ``1000·sigma_i`` (float, 1000 down to ≈5 for s=5). Forward noising
``x_t = (1 - sigma)·x0 + sigma·noise``; the network predicts the velocity ``v = noise - x0``, so
``x0 = x_t - sigma·v`` (computed in float64, returned in the input dtype).

Step lists (all floats in 0..1000, trailing 0 = a final call at t=0 where a family uses one):

- ``warp_steps([1000, 750, 500, 250], shift=5)`` → ``[1000, 937.5, 833.33, 625.0]`` (Self-Forcing,
  LongLive; ``warp_denoising_step``).
- ``krea_steps(strength, steps)`` → warped ``linspace(strength·1000, 0, steps)`` (Krea v2v/T2V).
- ``sdv2_steps(n)`` → the first ``n`` non-zero entries of ``[700, 500, 400, 200, 0]`` (SDV2).

Shapes: ``sigma`` may be a float, ``[B]`` (per sample) or ``[B, F]`` (per latent frame); it is
broadcast onto latents ``[B, C, F, H, W]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = [
    "NUM_TRAIN_TIMESTEPS",
    "flow_sigmas",
    "flow_timesteps",
    "warp_steps",
    "krea_steps",
    "sdv2_steps",
    "sigma_for_timestep",
    "add_noise",
    "x0_from_velocity",
    "velocity_from_x0",
]

NUM_TRAIN_TIMESTEPS = 1000
SDV2_STEP_LIST: tuple[float, ...] = (700.0, 500.0, 400.0, 200.0, 0.0)


def flow_sigmas(shift: float, num_train_timesteps: int = NUM_TRAIN_TIMESTEPS) -> torch.Tensor:
    """``[num_train_timesteps]`` float64 shifted sigmas, from 1.0 down (``FlowMatchScheduler(extra_one_step=True)``)."""
    if shift <= 0:
        raise ValueError(f"shift must be positive, got {shift=}")
    u = torch.linspace(1.0, 0.0, num_train_timesteps + 1, dtype=torch.float64)[:-1]
    return shift * u / (1.0 + (shift - 1.0) * u)


def flow_timesteps(shift: float, num_train_timesteps: int = NUM_TRAIN_TIMESTEPS) -> torch.Tensor:
    """``[num_train_timesteps]`` float64 model timesteps ``1000·sigma``."""
    return flow_sigmas(shift, num_train_timesteps) * NUM_TRAIN_TIMESTEPS


def warp_steps(steps: Sequence[float], shift: float) -> list[float]:
    """Map nominal steps through ``cat(timesteps, [0])[1000 - int(t)]`` (Self-Forcing's warp)."""
    table = torch.cat([flow_timesteps(shift), torch.zeros(1, dtype=torch.float64)])
    out = []
    for t in steps:
        if not 0 <= t <= NUM_TRAIN_TIMESTEPS:
            raise ValueError(f"steps must lie in [0, 1000], got {t}")
        out.append(float(table[NUM_TRAIN_TIMESTEPS - int(t)]))
    return out


def krea_steps(strength: float, steps: int, shift: float = 5.0) -> list[float]:
    """Krea's ``get_denoising_schedule``: warp ``linspace(strength·1000, 0, steps)`` cast to integers.

    strength 1, 5 steps → ``[1000, 937.5, 833.33, 625, 0]``; strength 0.7, 4 steps →
    ``[921.05, 813.55, 603.0, 0]``. The last entry (0) is the final clean call.
    """
    if not 0.0 < strength <= 1.0:
        raise ValueError(f"strength must be in (0, 1], got {strength=}")
    if steps < 2:
        raise ValueError(f"Krea schedules need at least 2 entries (the last is 0), got {steps=}")
    nominal = torch.linspace(strength * NUM_TRAIN_TIMESTEPS, 0.0, steps).long().tolist()
    return warp_steps(nominal, shift)


def sdv2_steps(num_steps: int, step_list: Sequence[float] = SDV2_STEP_LIST) -> list[float]:
    """StreamDiffusionV2 ``--step N``: the first N non-zero entries (the v2v loop drops the 0)."""
    nonzero = [float(t) for t in step_list if t > 0]
    if not 1 <= num_steps <= len(nonzero):
        raise ValueError(f"num_steps must be in 1..{len(nonzero)} for step list {list(step_list)}, got {num_steps}")
    return nonzero[:num_steps]


def sigma_for_timestep(timestep: torch.Tensor | float, shift: float) -> torch.Tensor:
    """Sigma of the nearest table timestep (argmin |timesteps - t|), float64, same shape as ``timestep``.

    Runs on the timestep's device; no host sync.
    """
    t = torch.as_tensor(timestep, dtype=torch.float64)
    table = flow_timesteps(shift).to(t.device)
    idx = (table - t[..., None]).abs().argmin(-1)
    return flow_sigmas(shift).to(t.device)[idx]


def _expand(sigma: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    s = torch.as_tensor(sigma, dtype=torch.float64, device=like.device)
    if s.ndim == 0:
        return s
    if like.ndim != 5:
        raise ValueError(f"per-sample sigma needs latents [B, C, F, H, W], got {like.shape=}")
    if s.ndim == 1:
        return s.view(-1, 1, 1, 1, 1)
    if s.ndim == 2:
        return s.view(s.shape[0], 1, s.shape[1], 1, 1)
    raise ValueError(f"sigma must be a scalar, [B] or [B, F], got {s.shape=}")


def add_noise(x0: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
    """``(1 - sigma)·x0 + sigma·noise`` in float64, returned in ``x0``'s dtype."""
    s = _expand(sigma, x0)
    return ((1 - s) * x0.double() + s * noise.double()).to(x0.dtype)


def x0_from_velocity(x_t: torch.Tensor, velocity: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
    """``x0 = x_t - sigma·v`` in float64, returned in ``x_t``'s dtype."""
    s = _expand(sigma, x_t)
    return (x_t.double() - s * velocity.double()).to(x_t.dtype)


def velocity_from_x0(x_t: torch.Tensor, x0: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
    """Inverse of ``x0_from_velocity``: ``v = (x_t - x0) / sigma`` (sigma > 0)."""
    s = _expand(sigma, x_t)
    return ((x_t.double() - x0.double()) / s).to(x_t.dtype)
