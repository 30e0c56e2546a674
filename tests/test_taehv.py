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
    # un-normalised latents are the normalised ones times std (up to ~3.3): the same fp32 round-off, scaled
    scale = 1.0 if normalize else max(LATENTS_STD)
    torch.testing.assert_close(torch.cat(parts, 2), whole, atol=1e-5 * scale, rtol=1e-5)
    # frame 0 alone gives the latent of four copies of frame 0 (Wan's frame-0 alignment)
    first = clip[:, :, :1].permute(0, 2, 1, 3, 4).mul(0.5).add(0.5).expand(-1, 4, -1, -1, -1)
    native = taehv.encode_video(first).permute(0, 2, 1, 3, 4)
    if not normalize:
        native = native * torch.tensor(LATENTS_STD).view(1, 16, 1, 1, 1) + torch.tensor(LATENTS_MEAN).view(1, 16, 1, 1, 1)
    torch.testing.assert_close(parts[0], native, atol=1e-5 * scale, rtol=1e-5)
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


# ------------------------------------------------------------------ upstream reference
# ``taehv`` is not on PyPI (``pip download taehv``: no matching distribution), so its code is
# transcribed here from madebyollin/taehv ``taehv.py`` at commit
# 1f14a568f24bf8811e0a0ac601613e04fc1581e8 (MIT): ``conv``, ``Clamp``, ``MemBlock``, ``TPool``,
# ``TGrow``, ``apply_model_with_memblocks_parallel`` / ``_sequential`` (the O(1)-memory frame-by-frame
# walk), the base (non-"super") ``TAEHV`` encoder / decoder layer lists and ``encode_video`` /
# ``decode_video`` for Wan 2.1 (patch size 1, no CogVideoX / H3 paths). One change: the layer
# widths, hard-coded upstream (64; 256, 128, 64, 64), are arguments, so the tiny test size runs too.
# tqdm progress bars are left out.


def _up_conv(n_in, n_out, **kwargs):
    return torch.nn.Conv2d(n_in, n_out, 3, padding=1, **kwargs)


class _UpClamp(torch.nn.Module):
    def forward(self, x):
        return torch.tanh(x / 3) * 3


class _UpMemBlock(torch.nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        nn = torch.nn
        self.conv = nn.Sequential(_up_conv(n_in * 2, n_out), nn.ReLU(inplace=True), _up_conv(n_out, n_out),
                                  nn.ReLU(inplace=True), _up_conv(n_out, n_out))
        self.skip = nn.Conv2d(n_in, n_out, 1, bias=False) if n_in != n_out else nn.Identity()
        self.act = nn.ReLU(inplace=True)

    def forward(self, x, past):
        return self.act(self.conv(torch.cat([x, past], 1)) + self.skip(x))


class _UpTPool(torch.nn.Module):
    def __init__(self, n_f, stride):
        super().__init__()
        self.stride = stride
        self.conv = torch.nn.Conv2d(n_f * stride, n_f, 1, bias=False)

    def forward(self, x):
        _NT, C, H, W = x.shape
        return self.conv(x.reshape(-1, self.stride * C, H, W))


class _UpTGrow(torch.nn.Module):
    def __init__(self, n_f, stride):
        super().__init__()
        self.stride = stride
        self.conv = torch.nn.Conv2d(n_f, n_f * stride, 1, bias=False)

    def forward(self, x):
        _NT, C, H, W = x.shape
        x = self.conv(x)
        return x.reshape(-1, C, H, W)


def _up_apply_parallel(model, x):
    N, T, C, H, W = x.shape
    x = x.reshape(N * T, C, H, W)
    for b in model:
        if isinstance(b, _UpMemBlock):
            NT, C, H, W = x.shape
            T = NT // N
            _x = x.reshape(N, T, C, H, W)
            block_memory = torch.nn.functional.pad(_x, (0, 0, 0, 0, 0, 0, 1, 0), value=0)[:, :T].reshape(x.shape)
            x = b(x, block_memory)
        else:
            x = b(x)
    NT, C, H, W = x.shape
    T = NT // N
    return x.view(N, T, C, H, W)


def _up_apply_sequential(model, x):
    work_queue = [(xt, 0) for xt in x.unbind(1)]
    memory = [None] * len(model)
    out = []
    while work_queue:  # apply_model_with_memblocks_sequential_single_step, inlined
        xt, i = work_queue.pop(0)
        if i == len(model):
            out.append(xt.unsqueeze(1))
            continue
        b = model[i]
        if isinstance(b, _UpMemBlock):
            xt_new = b(xt, xt * 0) if memory[i] is None else b(xt, memory[i])
            memory[i] = xt
            work_queue.insert(0, (xt_new, i + 1))
        elif isinstance(b, _UpTPool):
            if memory[i] is None:
                memory[i] = []
            memory[i].append(xt)
            if len(memory[i]) == b.stride:
                N, C, H, W = xt.shape
                xt = b(torch.cat(memory[i], 1).view(N * b.stride, C, H, W))
                memory[i] = []
                work_queue.insert(0, (xt, i + 1))
        elif isinstance(b, _UpTGrow):
            xt = b(xt)
            NT, C, H, W = xt.shape
            for xt_next in reversed(xt.view(NT // b.stride, b.stride * C, H, W).chunk(b.stride, 1)):
                work_queue.insert(0, (xt_next, i + 1))
        else:
            xt = b(xt)
            work_queue.insert(0, (xt, i + 1))
    return torch.cat(out, 1)


class _UpstreamTAEHV(torch.nn.Module):
    def __init__(self, e=64, n_f=(256, 128, 64, 64), encoder_time_downscale=(True, True, False),
                 decoder_time_upscale=(False, True, True), decoder_space_upscale=(True, True, True), latent_channels=16):
        super().__init__()
        nn = torch.nn
        self.encoder = nn.Sequential(
            _up_conv(3, e), nn.ReLU(inplace=True),
            _UpTPool(e, 2 if encoder_time_downscale[0] else 1), _up_conv(e, e, stride=2, bias=False), _UpMemBlock(e, e), _UpMemBlock(e, e), _UpMemBlock(e, e),
            _UpTPool(e, 2 if encoder_time_downscale[1] else 1), _up_conv(e, e, stride=2, bias=False), _UpMemBlock(e, e), _UpMemBlock(e, e), _UpMemBlock(e, e),
            _UpTPool(e, 2 if encoder_time_downscale[2] else 1), _up_conv(e, e, stride=2, bias=False), _UpMemBlock(e, e), _UpMemBlock(e, e), _UpMemBlock(e, e),
            _up_conv(e, latent_channels),
        )
        self.decoder = nn.Sequential(
            _UpClamp(), _up_conv(latent_channels, n_f[0]), nn.ReLU(inplace=True),
            _UpMemBlock(n_f[0], n_f[0]), _UpMemBlock(n_f[0], n_f[0]), _UpMemBlock(n_f[0], n_f[0]), nn.Upsample(scale_factor=2 if decoder_space_upscale[0] else 1), _UpTGrow(n_f[0], 2 if decoder_time_upscale[0] else 1), _up_conv(n_f[0], n_f[1], bias=False),
            _UpMemBlock(n_f[1], n_f[1]), _UpMemBlock(n_f[1], n_f[1]), _UpMemBlock(n_f[1], n_f[1]), nn.Upsample(scale_factor=2 if decoder_space_upscale[1] else 1), _UpTGrow(n_f[1], 2 if decoder_time_upscale[1] else 1), _up_conv(n_f[1], n_f[2], bias=False),
            _UpMemBlock(n_f[2], n_f[2]), _UpMemBlock(n_f[2], n_f[2]), _UpMemBlock(n_f[2], n_f[2]), nn.Upsample(scale_factor=2 if decoder_space_upscale[2] else 1), _UpTGrow(n_f[2], 2 if decoder_time_upscale[2] else 1), _up_conv(n_f[2], n_f[3], bias=False),
            nn.ReLU(inplace=True), _up_conv(n_f[3], 3),
        )
        self.t_downscale = 2 ** sum(t.stride == 2 for t in self.encoder if isinstance(t, _UpTPool))
        self.t_upscale = 2 ** sum(t.stride == 2 for t in self.decoder if isinstance(t, _UpTGrow))
        self.frames_to_trim = self.t_upscale - 1

    def encode_video(self, x, parallel=True):
        if x.shape[1] % self.t_downscale != 0:
            n_pad = self.t_downscale - x.shape[1] % self.t_downscale
            x = torch.cat([x, x[:, -1:].repeat_interleave(n_pad, dim=1)], 1)
        return (_up_apply_parallel if parallel else _up_apply_sequential)(self.encoder, x)

    def decode_video(self, x, parallel=True):
        x = (_up_apply_parallel if parallel else _up_apply_sequential)(self.decoder, x)
        return x.clamp_(0, 1)[:, self.frames_to_trim:]


@pytest.mark.parametrize("size", ["tiny", "taew2_1"])
@torch.no_grad()
def test_matches_the_upstream_taehv_on_shared_random_weights(size: str) -> None:
    ours = random_taehv(size, seed=4)
    cfg = ours.config
    ref = _UpstreamTAEHV(cfg.encoder_channels, cfg.decoder_channels).eval()
    ref.load_state_dict(ours.state_dict(), strict=True)
    g = torch.Generator().manual_seed(6)
    frames = torch.rand((1, 8, 3, 16, 24), generator=g)
    z = torch.randn((1, 3, 16, 2, 3), generator=g) * 1.5  # past the decoder's soft clamp too
    # rescale the last conv (in the shared state dict) so the frames land mostly inside [0, 1]:
    # random weights otherwise saturate the output clamp and hide differences
    state = ours.state_dict()
    last = f"decoder.{len(ours.decoder) - 1}"
    pre = _up_apply_parallel(ref.decoder[:-1], z).flatten(0, 1)
    pre = torch.nn.functional.conv2d(pre, state[last + ".weight"], padding=1)
    gain = 0.2 / float(pre.std())
    state[last + ".weight"] *= gain
    state[last + ".bias"].copy_(0.5 - gain * pre.mean(dim=(0, 2, 3)))
    ours.load_state_dict(state, strict=True)
    ref.load_state_dict(state, strict=True)

    latents = ours.encode_video(frames)
    for parallel in (True, False):  # upstream's two walks: all frames at once, and frame by frame
        up = ref.encode_video(frames, parallel=parallel)
        assert up.shape == latents.shape == (1, 2, 16, 2, 3)
        assert _rel(latents, up) <= 1e-5, parallel
    out = ours.decode_video(z)
    for parallel in (True, False):
        up = ref.decode_video(z, parallel=parallel)
        assert up.shape == out.shape == (1, 9, 3, 16, 24)
        assert _rel(out, up) <= 1e-5 and float((out - up).abs().max()) <= 1e-4, parallel
    # the decoded frames are not degenerate (not clamped flat), so the comparison is meaningful
    assert float(((out > 0.01) & (out < 0.99)).float().mean()) > 0.8 and float(out.std()) > 0.05
    # and every decoded frame differs from its neighbours (TGrow's frame order shows)
    assert float((out[:, 1:] - out[:, :-1]).abs().amax(dim=(2, 3, 4)).min()) > 1e-3


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.mark.gpu
@torch.no_grad()
def test_cuda_graph_chunks_equal_eager_chunks_across_a_reset() -> None:
    """The steady-state chunks replay from CUDA graphs (captured once) and give the eager frames,
    before and after ``reset`` (which zeroes the frame memory in place)."""
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    torch.manual_seed(0)
    net = TAEHV(TAEHV_CONFIGS["tiny"]).cuda().eval()
    clip = torch.rand(1, 3, 25, 32, 48, device="cuda") * 2 - 1
    outs = {}
    for graphs in (False, True):
        stream = StreamingTAEHV(net, cuda_graphs=graphs)
        got = []
        for _ in range(2):  # a reset in between: the same graphs serve the second stream
            stream.reset()
            for i, chunk in enumerate([clip[:, :, :1], *clip[:, :, 1:].split(4, dim=2)]):
                got.append(stream.decode(stream.encode(chunk)))
        outs[graphs] = torch.cat(got, 2)
        if graphs:
            assert stream.graphs is not None and stream.graphs.captures == 2 and stream.graphs.replays > 0
    torch.testing.assert_close(outs[True], outs[False], atol=1e-5, rtol=1e-5)
