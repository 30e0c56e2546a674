"""SDV2's motion-aware noise controller: the distance by hand, the controller's recurrence, and both
against the reference's ``compute_noise_scale_and_step`` on a clip whose motion varies inside the
controller's range (neither still nor saturated), so max-over-frames vs mean-over-frames shows.
"""

from __future__ import annotations

import math

import pytest
import torch
from pipeline_helpers import reference_function

from livestyle.diffusion.noise import MotionController, motion_distance, sdv2_first_step


def _steps(diffs: list[float], batch: int = 1, size: int = 8) -> torch.Tensor:
    """A clip ``[B, 3, 1 + len(diffs), size, size]`` of flat frames whose consecutive differences are
    ``diffs`` (each frame is the previous plus a constant), so each step's RMS is ``|diff|``."""
    levels = [-0.5]
    for d in diffs:
        levels.append(levels[-1] + d)
    video = torch.tensor(levels).reshape(1, 1, -1, 1, 1)
    return video.expand(batch, 3, -1, size, size).clone()


def test_distance_is_the_largest_per_step_rms_over_norm() -> None:
    video = _steps([0.02, 0.1, -0.05, 0.0])
    d = motion_distance(video[:, :, :1], video[:, :, 1:])
    assert d.dim() == 0
    assert float(d) == pytest.approx(0.1 / 0.2)  # the largest step, not their mean (0.0425 / 0.2)
    assert float(motion_distance(video[:, :, :1], video[:, :, 1:], norm=0.4)) == pytest.approx(0.25)
    # the first step is measured against the frame before the chunk
    jump = _steps([0.15, 0.01, 0.01])
    assert float(motion_distance(jump[:, :, :1], jump[:, :, 1:])) == pytest.approx(0.75)
    assert float(motion_distance(jump[:, :, 1:2], jump[:, :, 2:])) == pytest.approx(0.05)


def test_distance_rms_spans_batch_channels_and_pixels_and_clamps() -> None:
    a, b = _steps([0.06]), _steps([0.08])
    video = torch.cat([a, b])  # batch 2: the RMS over both rows is sqrt((0.06² + 0.08²) / 2)
    assert float(motion_distance(video[:, :, :1], video[:, :, 1:])) == pytest.approx(math.sqrt(0.005) / 0.2)
    half = _steps([0.1])
    half[:, :, 1, :4] = half[:, :, 0, :4]  # half of the pixels still: RMS 0.1 / sqrt(2)
    assert float(motion_distance(half[:, :, :1], half[:, :, 1:])) == pytest.approx(0.1 / math.sqrt(2) / 0.2)
    still = _steps([0.0, 0.0])
    assert float(motion_distance(still[:, :, :1], still[:, :, 1:])) == 0.0
    fast = _steps([0.5, -0.5])
    assert float(motion_distance(fast[:, :, :1], fast[:, :, 1:])) == 1.0


def test_controller_follows_the_recurrence_and_stays_on_the_device() -> None:
    ctrl = MotionController(init_scale=0.8, scale=0.8)
    s_prev = 0.8
    for d in (0.0, 0.35, 0.8, 0.1, 1.0):
        scale, step = ctrl.update(torch.tensor(d, dtype=torch.float64))
        expected = (0.8 - 0.1 * d) * 0.9 + s_prev * 0.1
        assert scale.dtype == torch.float64 and scale.dim() == 0
        assert float(scale) == pytest.approx(expected, abs=1e-12)
        assert int(step) == int(1000 * expected) - 100
        s_prev = expected
    assert sdv2_first_step(0.8) == 700 and sdv2_first_step(0.05) == 0


def _varying_clip(frames: int = 33, size: int = 32, seed: int = 0) -> tuple[torch.Tensor, list[float]]:
    """``[1, 3, T, H, W]`` in [-1, 1]: a sinusoidal grating drifting at a speed that changes every
    frame (0.1 to 0.65 px: a slow swell with a random wobble on every frame), quantised to uint8 like
    camera frames. Returns the clip and the speeds."""
    g = torch.Generator().manual_seed(seed)
    swell = 0.1 + 0.35 * (1 - torch.cos(torch.arange(frames) * 2 * math.pi / frames)) / 2
    speeds = (swell + 0.2 * torch.rand(frames, generator=g)).tolist()
    x = torch.arange(size, dtype=torch.float64)
    y = torch.arange(size, dtype=torch.float64)[:, None]
    pos, out = 0.0, []
    for t in range(frames):
        pos += speeds[t]
        r = 127.5 + 100 * torch.sin(2 * math.pi * (x - pos) / 16) + 0 * y
        gg = 127.5 + 100 * torch.sin(2 * math.pi * (y - 0.5 * pos) / 11) + 0 * x
        b = 127.5 + 100 * torch.cos(2 * math.pi * (x + y - pos) / 20)
        out.append(torch.stack([r, gg, b]).round().clamp(0, 255))
    video = torch.stack(out, 1)[None].float() / 127.5 - 1.0
    return video, speeds


def test_controller_matches_the_reference_on_motion_inside_its_range() -> None:
    reference = reference_function("inference.py", "compute_noise_scale_and_step")
    video, _ = _varying_clip()
    chunk, init = 4, 0.8
    ours = MotionController(init_scale=init, scale=init)
    ref_scale = init
    distances, means = [], []
    for end in range(1 + 2 * chunk, video.shape[2] + 1, chunk):  # the first chunk (5 frames) has no controller
        ref_scale, ref_step = reference(video, end, chunk, ref_scale, init)
        d = motion_distance(video[:, :, end - chunk - 1:end - chunk], video[:, :, end - chunk:end])
        scale, step = ours.update(d)
        assert float(scale) == pytest.approx(ref_scale, abs=1e-9) and int(step) == ref_step, end
        distances.append(float(d))
        diff = video[:, :, end - chunk:end] - video[:, :, end - chunk - 1:end - 1]
        means.append(float(diff.pow(2).mean(dim=(0, 1, 3, 4)).sqrt().mean() / 0.2))
    # the clip exercises the controller inside its range: every chunk moves, none saturates, and
    # the distances differ from chunk to chunk (so the first step does too)
    assert all(0.1 < d < 0.9 for d in distances), distances
    assert max(distances) - min(distances) > 0.15, distances
    # the largest step of a chunk is not its mean step: a mean-based distance would be caught
    assert min(d - m for d, m in zip(distances, means)) > 0.02, (distances, means)
