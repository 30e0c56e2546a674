"""Flow-matching schedule exactly as the StreamDiffusionV2 and Self-Forcing inference code computes it."""

from __future__ import annotations

import pytest
import torch

from livestyle.models import scheduler as S


def test_sigmas_and_timesteps() -> None:
    sig = S.flow_sigmas(5.0)
    assert sig.shape == (1000,) and sig.dtype == torch.float64
    assert sig[0].item() == 1.0
    assert S.flow_timesteps(5.0)[-1].item() == pytest.approx(1000 * 5 * 0.001 / (1 + 4 * 0.001))


@pytest.mark.parametrize(
    ("shift", "expected"),
    [(5.0, [1000.0, 937.5, 833.33, 625.0]), (8.0, [1000.0, 960.0, 888.89, 727.27])],
)
def test_warped_step_table(shift: float, expected: list[float]) -> None:
    assert S.warp_steps([1000, 750, 500, 250], shift) == pytest.approx(expected, abs=5e-3)


@pytest.mark.parametrize(
    ("strength", "steps", "expected"),
    [
        (1.0, 5, [1000.0, 937.5, 833.33, 625.0, 0.0]),
        (1.0, 4, [1000.0, 908.84, 713.98, 0.0]),
        (0.7, 4, [921.05, 813.55, 603.0, 0.0]),
    ],
)
def test_krea_strength_schedule(strength: float, steps: int, expected: list[float]) -> None:
    assert S.krea_steps(strength, steps) == pytest.approx(expected, abs=5e-3)


def test_sdv2_step_lists_and_sigmas() -> None:
    assert S.sdv2_steps(2) == [700.0, 500.0]
    assert S.sdv2_steps(1) == [700.0]
    sig = S.sigma_for_timestep(torch.tensor([700.0, 500.0]), 8.0)
    assert sig.tolist() == pytest.approx([0.7002, 0.4997], abs=1e-4)
    assert S.sigma_for_timestep(0.0, 5.0).item() == pytest.approx(0.005, abs=2e-4)
    with pytest.raises(ValueError, match=r"num_steps must be in 1..4"):
        S.sdv2_steps(5)


def test_noise_and_x0_velocity_conversions_round_trip() -> None:
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(2, 16, 3, 4, 4, generator=g), torch.randn(2, 16, 3, 4, 4, generator=g)
    sigma = torch.tensor([[0.9375, 0.5, 0.1], [1.0, 0.25, 0.625]])
    xt = S.add_noise(x0, eps, sigma)
    assert torch.allclose(xt[1, :, 0], eps[1, :, 0])
    v = eps - x0
    assert torch.allclose(S.x0_from_velocity(xt, v, sigma), x0, atol=1e-6)
    assert torch.allclose(S.velocity_from_x0(xt, x0, sigma), v, atol=1e-5)
    assert torch.allclose(S.x0_from_velocity(xt, v, sigma[:, 0])[:, :, 0], x0[:, :, 0], atol=1e-6)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match=r"strength must be in \(0, 1\]"):
        S.krea_steps(0.0, 4)
    with pytest.raises(ValueError, match=r"steps must lie in \[0, 1000\]"):
        S.warp_steps([1200], 5.0)
    with pytest.raises(ValueError, match="shift must be positive"):
        S.flow_sigmas(0.0)
