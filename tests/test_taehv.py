"""TAEHV: streaming == whole clip, the Wan-compatible stream interface, both file formats, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from livestyle.errors import ModelLoadError, PipelineError
from livestyle.models.taehv import TAEHV, TAEHV_CONFIGS, StreamingTAEHV, load_taehv
from livestyle.models.testing.stack import random_taehv, write_taehv
from livestyle.models.vae import LATENTS_MEAN, LATENTS_STD, StreamingAutoencoder


@pytest.fixture(scope="module")
def taehv() -> TAEHV:
    return random_taehv("tiny", seed=2)


@pytest.fixture(scope="module")
def clip() -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    return torch.rand((1, 3, 13, 32, 48), generator=gen) * 2 - 1


def test_release_config_has_the_published_size() -> None:
    with torch.device("meta"):
        model = TAEHV(TAEHV_CONFIGS["taew2_1"])
    assert sum(p.numel() for p in model.parameters()) == 11_315_539
    assert len(model.state_dict()) == 128


@torch.no_grad()
def test_chunked_equals_whole_clip_native(taehv: TAEHV) -> None:
    gen = torch.Generator().manual_seed(1)
    frames = torch.rand((2, 12, 3, 16, 24), generator=gen)
    whole = taehv.encode_video(frames)
    assert whole.shape == (2, 3, 16, 2, 3)
    cache = taehv.new_encoder_cache()
    chunked = torch.cat([taehv.encode_chunk(frames[:, i : i + 4], cache) for i in range(0, 12, 4)], 1)
    torch.testing.assert_close(chunked, whole, atol=1e-6, rtol=1e-5)
    decoded = taehv.decode_video(whole)
    assert decoded.shape == (2, 9, 3, 16, 24)
    cache = taehv.new_decoder_cache()
    parts = [taehv.decode_chunk(whole[:, i : i + 1], cache) for i in range(3)]
    assert [p.shape[1] for p in parts] == [1, 4, 4]
    torch.testing.assert_close(torch.cat(parts, 1), decoded, atol=1e-6, rtol=1e-5)


@torch.no_grad()
def test_memory_is_causal(taehv: TAEHV) -> None:
    """Changing a later frame never changes an earlier latent or frame."""
    gen = torch.Generator().manual_seed(2)
    frames = torch.rand((1, 8, 3, 16, 24), generator=gen)
    changed = frames.clone()
    changed[:, 5:] = 0.0
    a, b = taehv.encode_video(frames), taehv.encode_video(changed)
    assert torch.equal(a[:, :1], b[:, :1]) and not torch.equal(a[:, 1:], b[:, 1:])


@torch.no_grad()
@pytest.mark.parametrize("normalize", [True, False])
def test_stream_interface_matches_wan_conventions(taehv: TAEHV, clip: torch.Tensor, normalize: bool) -> None:
    stream = StreamingTAEHV(taehv, normalize_latents=normalize)
    assert isinstance(stream, StreamingAutoencoder)
    whole = stream.encode(clip)  # 13 = 1 + 4*3 frames -> 4 latents
    assert whole.shape == (1, 16, 4, 4, 6)
    stream.reset()
    parts = [stream.encode(clip[:, :, :1]), stream.encode(clip[:, :, 1:5]), stream.encode(clip[:, :, 5:13])]
    assert [p.shape[2] for p in parts] == [1, 1, 2]
    torch.testing.assert_close(torch.cat(parts, 2), whole, atol=1e-5, rtol=1e-5)
    # frame 0 alone gives the latent of four copies of frame 0 (Wan's frame-0 alignment)
    first = clip[:, :, :1].permute(0, 2, 1, 3, 4).mul(0.5).add(0.5).expand(-1, 4, -1, -1, -1)
    native = taehv.encode_video(first).permute(0, 2, 1, 3, 4)
    if not normalize:
        native = native * torch.tensor(LATENTS_STD).view(1, 16, 1, 1, 1) + torch.tensor(LATENTS_MEAN).view(1, 16, 1, 1, 1)
    torch.testing.assert_close(parts[0], native, atol=1e-5, rtol=1e-5)
    frames = [stream.decode(whole[:, :, i : i + 1]) for i in range(4)]
    assert [f.shape[2] for f in frames] == [1, 4, 4, 4]
    out = torch.cat(frames, 2)
    assert out.shape == clip.shape and out.min() >= -1 and out.max() <= 1
    stream.reset()
    torch.testing.assert_close(stream.decode(whole), out, atol=1e-4, rtol=1e-4)


@torch.no_grad()
def test_pth_and_safetensors_load(tmp_path: Path) -> None:
    pth = write_taehv(tmp_path / "taew2_1.pth", seed=4)
    st = write_taehv(tmp_path / "safetensors" / "taew2_1.safetensors", seed=4)
    a, b = load_taehv(pth), load_taehv(st)
    assert a.config == b.config == TAEHV_CONFIGS["tiny"]
    ref = random_taehv("tiny", seed=4)
    for k, v in ref.state_dict().items():
        assert torch.equal(a.state_dict()[k], v), k  # the wide stride-1 TGrow was sliced to its last channels
        assert torch.equal(b.state_dict()[k], v), k
    assert load_taehv(st, dtype=torch.bfloat16).decoder[1].weight.dtype == torch.bfloat16


def test_bad_files_and_input(tmp_path: Path, taehv: TAEHV) -> None:
    bad = tmp_path / "taew2_1.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(ModelLoadError, match="is not a readable safetensors file"):
        load_taehv(bad)
    foreign = tmp_path / "other.pth"
    torch.save({"x": torch.zeros(1)}, foreign)
    with pytest.raises(ModelLoadError, match="is not a TAEHV checkpoint"):
        load_taehv(foreign)
    stream = StreamingTAEHV(taehv)
    with pytest.raises(PipelineError, match=r"first chunk of a stream must have 1 \+ 4n frames .*got 3"):
        stream.encode(torch.zeros(1, 3, 3, 16, 16))
    stream.encode(torch.zeros(1, 3, 1, 16, 16))
    with pytest.raises(PipelineError, match="multiple of 4 frames; got 2"):
        stream.encode(torch.zeros(1, 3, 2, 16, 16))
    with pytest.raises(PipelineError, match="multiples of 8; got 12x16"):
        stream.encode(torch.zeros(1, 3, 4, 12, 16))
    with pytest.raises(PipelineError, match=r"latents shaped \[B, 16, T, h, w\]; got \(1, 4, 1, 2, 2\)"):
        stream.decode(torch.zeros(1, 4, 1, 2, 2))


@torch.no_grad()
def test_steady_state_step_compiles_as_one_graph_without_recompiles(taehv: TAEHV, clip: torch.Tensor) -> None:
    from torch._dynamo.testing import CompileCounter

    stream = StreamingTAEHV(taehv)
    first = stream.encode(clip[:, :, :1])
    stream.decode(first)
    counter = CompileCounter()
    torch._dynamo.reset()
    dec = torch.compile(lambda z: taehv.decode_chunk(z, stream.decoder_cache), backend=counter, fullgraph=True)
    enc = torch.compile(lambda x: taehv.encode_chunk(x, stream.encoder_cache), backend=counter, fullgraph=True)
    for start in (1, 5, 9):
        x = clip[:, :, start : start + 4].permute(0, 2, 1, 3, 4).mul(0.5).add(0.5)
        dec(enc(x))
    assert counter.frame_count == 2
