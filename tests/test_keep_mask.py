"""Keep masks in the StreamPipeline (issue 9): less entry noise where the camera will show.

Tiny random model, CPU. The random Wan VAE does not reconstruct pictures, so closeness to the input
is measured where the pipeline can be judged: the clean latents the decoder receives against the
encoder's latents of the same input (the codecs record both; they are the real streaming VAE).
"""

from __future__ import annotations

import os
import shutil
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from pipeline_helpers import tiny_wan_pipeline

import livestyle.diffusion.stream as stream_module
from livestyle.cli import main
from livestyle.config import EffectsConfig, config_from_dict
from livestyle.errors import ConfigError, PipelineError
from livestyle.models.vae import StreamingWanVAE
from livestyle.effects.generator import EffectGenerator
from livestyle.engine.frames import Frame
from livestyle.diffusion.noise import keep_scale, latent_keep_mask
from livestyle.diffusion.stream import StreamPipeline

H, W = 32, 32
FRAMES = 17  # the 5-frame first chunk and 3 more chunks


def scene() -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W]
    return np.stack([xx * 4 % 256, yy * 4 % 256, (xx + yy) * 2 % 256], -1).astype(np.uint8)


KEEP = np.zeros((H, W), np.float32)
KEEP[:, : W // 2] = 1.0  # the left half: the camera will show there
LATENT_KEEP = torch.zeros(H // 8, W // 8, dtype=torch.bool)
LATENT_KEEP[:, : W // 16] = True


class Recorded:
    """Latents that went into the encoder's output and the decoder's input, in order."""

    def __init__(self) -> None:
        self.encoded: list[torch.Tensor] = []
        self.decoded: list[torch.Tensor] = []


def pipeline(rec: Recorded, family: str = "sdv2", steps: int = 2) -> StreamPipeline:
    """The tiny random-model pipeline at W x H whose encoder and decoder record into ``rec``."""

    class Encoder(StreamingWanVAE):
        def encode(self, pixels: torch.Tensor) -> torch.Tensor:
            z = super().encode(pixels)
            rec.encoded.append(z.clone())
            return z

    class Decoder(StreamingWanVAE):
        def decode(self, latents: torch.Tensor) -> torch.Tensor:
            rec.decoded.append(latents.clone())
            return super().decode(latents)

    return tiny_wan_pipeline(W, H, steps=steps, family=family, encoder=Encoder, decoder=Decoder,
                             prompt_cached=lambda text: True)


def run(extras: dict | None, family: str = "sdv2", steps: int = 2) -> tuple[np.ndarray, Recorded]:
    rec = Recorded()
    pipe = pipeline(rec, family, steps)
    image, outs, i = scene(), [], 0
    with torch.no_grad():
        while i < FRAMES:
            n = pipe.frames_needed()
            chunk = [Frame(image, pts=j, time_base=Fraction(1, 30), capture_time=0.0, index=j, extras=dict(extras or {}))
                     for j in range(i, i + n)]
            outs += pipe.process(chunk)
            i += n
    return np.stack([o.image for o in outs]), rec


def latent_error(rec: Recorded) -> tuple[float, float]:
    """Mean |decoder input − encoder output| inside and outside the keep region (static input, so
    the k-th decoded chunk is the k-th encoded one)."""
    diffs = torch.cat([(d - e).abs() for e, d in zip(rec.encoded, rec.decoded)], dim=2)
    return diffs[..., LATENT_KEEP].mean().item(), diffs[..., ~LATENT_KEEP].mean().item()


# -- the latent keep map ------------------------------------------------------------------------


def test_latent_keep_mask_averages_each_latent_frames_pixel_frames_and_8x8_pixels() -> None:
    masks = [np.zeros((16, 32), np.float32) for _ in range(5)]  # a first chunk: frame 0 alone, then 1..4
    masks[0][:8, :8] = 1.0  # one latent pixel fully kept in latent frame 0
    masks[3][:, 8:16] = 1.0  # one of latent frame 1's four frames keeps latent column 1
    keep = latent_keep_mask(masks, 2, (2, 4))
    assert keep is not None and keep.shape == (1, 1, 2, 2, 4) and keep.dtype == torch.float32
    expected = torch.zeros(2, 2, 4)
    expected[0, 0, 0] = 1.0
    expected[1, :, 1] = 0.25
    assert torch.equal(keep[0, 0], expected)


def test_latent_keep_mask_follows_a_scaled_working_size_and_treats_missing_masks_as_zero() -> None:
    full = np.ones((96, 160), np.float32)
    keep = latent_keep_mask([full, None, full, full], 1, (4, 8))  # a later chunk: one group of 4
    assert keep is not None and torch.allclose(keep, torch.full((1, 1, 1, 4, 8), 0.75))
    assert latent_keep_mask([None] * 4, 1, (4, 8)) is None


def test_latent_keep_mask_rejects_misaligned_chunks_and_sizes() -> None:
    with pytest.raises(PipelineError) as err:
        latent_keep_mask([np.zeros((8, 8), np.float32)] * 3, 1, (1, 1))
    assert str(err.value) == "a chunk of 3 frames does not make 1 latent frames; keep masks cannot be aligned"
    with pytest.raises(PipelineError) as err:
        latent_keep_mask([np.zeros((8, 8), np.float32)] * 3 + [np.zeros((8, 16), np.float32)], 1, (1, 1))
    assert str(err.value) == "keep masks of one chunk differ in size ((8, 16) vs (8, 8)); masks must match their frames"


def test_keep_scale_is_the_strength_times_one_minus_k_m() -> None:
    keep = torch.tensor([0.0, 0.5, 1.0]).view(1, 1, 1, 1, 3)
    assert torch.allclose(keep_scale(0.8, keep, 0.5), torch.tensor([0.8, 0.6, 0.4]).view(1, 1, 1, 1, 3))
    assert torch.allclose(keep_scale(torch.tensor(0.6, dtype=torch.float64), keep, 1.0).float(),
                          torch.tensor([0.6, 0.3, 0.0]).view(1, 1, 1, 1, 3))


# -- the pipeline -------------------------------------------------------------------------------


@pytest.mark.parametrize("steps", [1, 2])
def test_keep_region_leaves_closer_to_the_input_and_the_rest_is_unchanged(steps: int) -> None:
    _, plain = run(None, steps=steps)
    _, half = run({"keep_mask": KEEP, "keep_strength": 0.5}, steps=steps)
    _, full = run({"keep_mask": KEEP, "keep_strength": 1.0}, steps=steps)
    keep0, rest0 = latent_error(plain)
    keep1, rest1 = latent_error(half)
    keep2, rest2 = latent_error(full)
    # measured (steps 1 / 2): keep region 1.32 → 0.89 → 0.66 / 1.32 → 1.14 → 1.00; rest within 2%
    assert keep1 < 0.9 * keep0 and keep2 < 0.95 * keep1, (keep0, keep1, keep2)
    assert abs(rest1 / rest0 - 1) < 0.04 and abs(rest2 / rest0 - 1) < 0.04, (rest0, rest1, rest2)


def test_without_masks_the_keep_path_is_never_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    plain, _ = run(None)

    def refuse(*args: object) -> None:
        raise AssertionError("keep-mask code ran for a chunk without masks")

    monkeypatch.setattr(stream_module, "latent_keep_mask", refuse)
    monkeypatch.setattr(stream_module, "keep_scale", refuse)
    again, _ = run({"other": 1})
    assert np.array_equal(plain, again)


@pytest.mark.parametrize("family", ["sdv2", "krea"])
def test_keep_strength_zero_gives_the_outputs_of_no_masks_bit_for_bit(family: str) -> None:
    plain, _ = run(None, family)
    zero, _ = run({"keep_mask": KEEP, "keep_strength": 0.0}, family)
    hinted, _ = run({"keep_mask": KEEP, "keep_strength": 0.5}, family)
    assert np.array_equal(plain, zero)
    assert not np.array_equal(plain, hinted)  # the hint does reach the outputs


def test_a_mask_without_a_strength_uses_the_config_default() -> None:
    default, _ = run({"keep_mask": KEEP})
    explicit, _ = run({"keep_mask": KEEP, "keep_strength": EffectsConfig().keep_strength})
    assert np.array_equal(default, explicit)


def test_keep_strength_outside_0_1_is_refused() -> None:
    with pytest.raises(ConfigError) as err:
        config_from_dict({"effects": {"keep_strength": 1.5}})
    assert str(err.value) == "effects.keep_strength: expected a number >= 0.0 and <= 1.0, got 1.5"
    with pytest.raises(ConfigError) as err:
        config_from_dict({"effects": {"keep_strength": -0.1}})
    assert str(err.value) == "effects.keep_strength: expected a number >= 0.0 and <= 1.0, got -0.1"
    with pytest.raises(PipelineError) as perr:
        run({"keep_mask": KEEP, "keep_strength": 2.0})
    assert str(perr.value) == ("keep_strength 2.0 is outside [0, 1]; set effects.keep_strength between 0 (off) "
                               "and 1 (no noise where the camera shows)")


def test_effect_generator_hands_the_configured_strength_to_the_pipeline() -> None:
    rec = Recorded()
    seen: list[dict] = []
    inner = pipeline(rec)
    process = inner.process

    def spy(frames: list[Frame]) -> list[Frame]:
        seen.extend(f.extras for f in frames)
        return process(frames)

    inner.process = spy  # type: ignore[method-assign]
    gen = EffectGenerator(inner, EffectsConfig(mode="background", mask="chroma", keep_hint=True, keep_strength=0.25))
    image = scene()
    image[:, : W // 2] = (0, 177, 64)  # green screen on the left: the background effect keeps the right
    with torch.no_grad():
        gen.process([Frame(image, pts=j, time_base=Fraction(1, 30), capture_time=0.0, index=j) for j in range(5)])
    assert len(seen) == 5 and all(e["keep_strength"] == 0.25 for e in seen)
    keep = seen[0]["keep_mask"]
    assert keep[:, -4:].mean() > 0.95 and keep[:, :4].mean() < 0.05


# -- end to end ---------------------------------------------------------------------------------


def test_run_with_keep_hint_on_a_green_screen_clip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    av = pytest.importorskip("av")
    from media_helpers import GREEN, SKIN, write_green_clip
    from media_helpers import GREEN_CLIP_H as CH
    from media_helpers import GREEN_CLIP_N as N
    from media_helpers import GREEN_CLIP_W as CW
    from media_helpers import decoded_rgb as decoded

    weights = Path(os.environ.get("LIVESTYLE_CACHE_DIR") or Path.home() / ".cache" / "livestyle") / "weights" / "tiny"
    if weights.is_dir():  # reuse the tiny TEST model's random weights instead of writing them again
        shutil.copytree(weights, tmp_path / "cache" / "weights" / "tiny")
    monkeypatch.setenv("LIVESTYLE_CACHE_DIR", str(tmp_path / "cache"))
    clip, out = tmp_path / "green.mp4", tmp_path / "out.mkv"
    write_green_clip(clip)
    code = main([
        "run", "--source", str(clip), "--sink", str(out), "--model", "tiny", "--size", f"{CW}x{CH}",
        "--max-frames", str(N), "--no-pace", "--no-loop", "--quiet", "--set", "model.device=cpu",
        "--effect", "background", "--mask", "chroma", "--set", "effects.keep_hint=true",
        "--set", "effects.keep_strength=0.75",
    ])
    err = capsys.readouterr().err
    assert code == 0, err
    frames = decoded(out)
    assert len(frames) >= 1 and av is not None
    for img in frames:
        subject = img[40:80, 64:96].astype(np.float32).mean(axis=(0, 1))
        assert np.abs(subject - np.array(SKIN)).max() < 12, subject  # the person keeps the camera
        screen = img[4:12, 4:40].astype(np.float32).mean(axis=(0, 1))
        assert np.abs(screen - np.array(GREEN)).max() > 12, screen  # the screen is restyled
