"""Wan VAE: parity with diffusers' AutoencoderKLWan, streaming == whole clip, both file layouts, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from livestyle.errors import ModelLoadError, PipelineError
from livestyle.models.testing.stack import (
    random_wan_vae,
    write_wan_vae_diffusers,
    write_wan_vae_pth,
)
from livestyle.models.vae import (
    VAE_CONFIGS,
    CausalCache,
    StreamingAutoencoder,
    StreamingWanVAE,
    WanVAE,
)
from livestyle.models.vae_loading import load_wan_vae, original_to_diffusers_key


@pytest.fixture(scope="module")
def vae() -> WanVAE:
    return random_wan_vae("tiny", seed=1)


@pytest.fixture(scope="module")
def clip() -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    return torch.rand((1, 3, 9, 32, 48), generator=gen) * 2 - 1


def test_release_config_has_the_published_size() -> None:
    with torch.device("meta"):
        model = WanVAE(VAE_CONFIGS["wan2.1"])
    assert sum(p.numel() for p in model.parameters()) == 126_892_531
    assert len(model.state_dict()) == 194


@torch.no_grad()
def test_parity_with_diffusers(vae: WanVAE, clip: torch.Tensor) -> None:
    from diffusers import AutoencoderKLWan

    ref = AutoencoderKLWan(base_dim=16, z_dim=16).eval()
    ref.load_state_dict({original_to_diffusers_key(k): v for k, v in vae.state_dict().items()}, strict=True)
    raw = vae.encode(clip, normalize=False)
    ref_raw = ref.encode(clip).latent_dist.mean
    assert raw.shape == (1, 16, 3, 4, 6)
    torch.testing.assert_close(raw, ref_raw, atol=1e-5, rtol=1e-5)
    frames = vae.decode(raw, normalized=False)
    torch.testing.assert_close(frames, ref.decode(raw).sample, atol=1e-5, rtol=1e-5)
    assert frames.shape == clip.shape and frames.abs().max() <= 1.0
    # normalised latents are (mu - mean) / std and decode back to the same frames
    z = vae.encode(clip)
    mean = torch.tensor(ref.config.latents_mean).view(1, 16, 1, 1, 1)
    std = torch.tensor(ref.config.latents_std).view(1, 16, 1, 1, 1)
    torch.testing.assert_close(z, (ref_raw - mean) / std, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(vae.decode(z), frames, atol=1e-5, rtol=1e-5)


@torch.no_grad()
@pytest.mark.parametrize("normalize", [True, False])
def test_streaming_equals_whole_clip(vae: WanVAE, clip: torch.Tensor, normalize: bool) -> None:
    whole = vae.encode(clip, normalize=normalize)
    stream = StreamingWanVAE(vae, normalize_latents=normalize)
    assert isinstance(stream, StreamingAutoencoder)
    parts = [stream.encode(clip[:, :, :1]), stream.encode(clip[:, :, 1:5]), stream.encode(clip[:, :, 5:9])]
    assert [p.shape[2] for p in parts] == [1, 1, 1]
    assert torch.equal(torch.cat(parts, 2), whole)
    decoded = vae.decode(whole, normalized=normalize)
    frames = [stream.decode(whole[:, :, i : i + 1]) for i in range(3)]
    assert [f.shape[2] for f in frames] == [1, 4, 4]
    assert torch.equal(torch.cat(frames, 2), decoded)
    # after reset the stream starts over and gives the same result again
    stream.reset()
    assert torch.equal(stream.encode(clip[:, :, :5]), whole[:, :, :2])
    assert torch.equal(stream.decode(whole[:, :, :2]), decoded[:, :, :5])


@torch.no_grad()
def test_cache_is_static_after_first_chunk(vae: WanVAE, clip: torch.Tensor) -> None:
    stream = StreamingWanVAE(vae)
    z = stream.encode(clip[:, :, :1])
    stream.decode(z)
    for cache, slots in ((stream.encoder_cache, vae.encoder.num_slots), (stream.decoder_cache, vae.decoder.num_slots)):
        assert isinstance(cache, CausalCache) and len(cache.tails) == slots
        assert all(t is not None for t in cache.tails)  # everything allocated by the first chunk
    ptrs = [t.data_ptr() for t in stream.encoder_cache.tails + stream.decoder_cache.tails]
    shapes = [tuple(t.shape) for t in stream.encoder_cache.tails + stream.decoder_cache.tails]
    for start in (1, 5):
        stream.decode(stream.encode(clip[:, :, start : start + 4]))
        assert [t.data_ptr() for t in stream.encoder_cache.tails + stream.decoder_cache.tails] == ptrs
        assert [tuple(t.shape) for t in stream.encoder_cache.tails + stream.decoder_cache.tails] == shapes
    assert stream.decoder_cache.nbytes > 0


@torch.no_grad()
def test_pth_and_diffusers_layouts_load(tmp_path: Path, clip: torch.Tensor) -> None:
    pth = write_wan_vae_pth(tmp_path / "Wan2.1_VAE.pth", seed=3)
    folder = write_wan_vae_diffusers(tmp_path / "vae", seed=3)
    a = load_wan_vae(pth)
    b = load_wan_vae(folder)
    assert a.config == b.config == VAE_CONFIGS["tiny"]
    torch.testing.assert_close(a.encode(clip), b.encode(clip), atol=0, rtol=0)
    from diffusers import AutoencoderKLWan

    ref = AutoencoderKLWan.from_pretrained(str(folder)).eval()  # diffusers reads our folder as its own
    torch.testing.assert_close(a.encode(clip, normalize=False), ref.encode(clip).latent_dist.mean, atol=1e-5, rtol=1e-5)
    half = load_wan_vae(pth, dtype=torch.bfloat16)
    assert half.conv1.weight.dtype == torch.bfloat16
    assert half.encode(clip.bfloat16()).dtype == torch.bfloat16


def test_bad_files(tmp_path: Path) -> None:
    truncated = tmp_path / "Wan2.1_VAE.pth"
    write_wan_vae_pth(truncated)
    truncated.write_bytes(truncated.read_bytes()[:500])
    with pytest.raises(ModelLoadError, match="is not a readable PyTorch checkpoint"):
        load_wan_vae(truncated)
    foreign = tmp_path / "foreign.pth"
    torch.save({"weight": torch.zeros(2)}, foreign)
    with pytest.raises(ModelLoadError, match="is not a Wan 2.1 VAE checkpoint"):
        load_wan_vae(foreign)
    partial = tmp_path / "partial.pth"
    state = random_wan_vae().state_dict()
    del state["decoder.head.2.bias"]
    torch.save(dict(state), partial)
    with pytest.raises(ModelLoadError, match=r"does not match the model: 1 missing keys .*decoder.head.2.bias"):
        load_wan_vae(partial)
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_wan_vae(tmp_path / "nope.pth")


@torch.no_grad()
def test_bad_input_shapes(vae: WanVAE, clip: torch.Tensor) -> None:
    stream = StreamingWanVAE(vae)
    with pytest.raises(PipelineError, match=r"first chunk of a stream must have 1 \+ 4n frames .*got 4"):
        stream.encode(clip[:, :, :4])
    with pytest.raises(PipelineError, match="multiples of 8; got 30x48"):
        stream.encode(clip[:, :, :1, :30])
    with pytest.raises(PipelineError, match=r"pixels shaped \[B, 3, T, H, W\]; got \(1, 1, 9, 32, 48\)"):
        stream.encode(clip[:, :1])
    stream.encode(clip[:, :, :1])
    with pytest.raises(PipelineError, match="multiple of 4 frames; got 5"):
        stream.encode(clip[:, :, 1:6])
    with pytest.raises(PipelineError, match=r"latents shaped \[B, 16, T, h, w\] with T >= 1; got \(1, 8, 1, 4, 6\)"):
        stream.decode(torch.zeros(1, 8, 1, 4, 6))


@torch.no_grad()
def test_steady_state_step_compiles_as_one_graph_without_recompiles(vae: WanVAE, clip: torch.Tensor) -> None:
    from torch._dynamo.testing import CompileCounter

    eager = StreamingWanVAE(vae)
    compiled = StreamingWanVAE(vae)
    for s in (eager, compiled):
        s.decode(s.encode(clip[:, :, :1]))
    counter = CompileCounter()
    torch._dynamo.reset()
    enc = torch.compile(lambda x: vae.encode_chunk(x, compiled.encoder_cache), backend=counter, fullgraph=True)
    dec = torch.compile(lambda z: vae.decode_chunk(z, compiled.decoder_cache), backend=counter, fullgraph=True)
    for start in (1, 5):
        chunk = clip[:, :, start : start + 4]
        z = enc(chunk)
        assert torch.equal(z, eager.encode(chunk))
        assert torch.equal(dec(z), eager.decode(z))
    assert counter.frame_count == 2  # one graph each for encode and decode, reused by the next chunk
