"""TAEHV: the tiny autoencoder in Wan 2.1 latent space (madebyollin/taehv, weights ``taew2_1.pth``).

A stack of 2-D convolutions with three kinds of temporal layers: ``MemBlock`` (each frame sees
the same layer's input at the previous frame), ``TPool`` (concatenate ``s`` consecutive frames
on channels, 1x1 conv; time / s) and ``TGrow`` (1x1 conv to ``s`` frames' worth of channels;
time x s). Everything is exactly causal, so a clip can be processed all at once or chunk by
chunk with one remembered frame per ``MemBlock``: the streaming state is a :class:`TAEHVCache`
passed to each call, O(1) in the length of the stream, and chunked output equals whole-clip
output (tested).

Native conventions (this module): frames ``[B, T, 3, H, W]`` in [0, 1]; latents
``[B, T', 16, H/8, W/8]`` in *normalised* Wan latent space (no mean/std to apply). The encoder
turns every 4 frames into one latent; the decoder turns each latent into 4 frames and the
first 3 frames of a stream are startup frames that are dropped. Following the Wan alignment
(latent 0 = frame 0 alone), a stream's first chunk of 1 + 4n frames is preceded by 3 copies of
its frame 0. :class:`StreamingTAEHV` wraps all this in the same ``reset / encode / decode``
interface, layouts and ranges as :class:`livestyle.models.vae.StreamingWanVAE`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from livestyle.errors import ModelLoadError, PipelineError
from livestyle.models.cuda_graphs import CallGraphs
from livestyle.models.vae import LATENTS_MEAN, LATENTS_STD

__all__ = [
    "TAEHV",
    "TAEHV_CONFIGS",
    "StreamingTAEHV",
    "TAEHVCache",
    "TAEHVConfig",
    "load_taehv",
]


@dataclass(frozen=True)
class TAEHVConfig:
    """Shape of a TAEHV model. ``taew2_1`` is the released Wan 2.1 model; ``tiny`` is for tests."""

    latent_channels: int = 16
    image_channels: int = 3
    patch_size: int = 1
    encoder_channels: int = 64
    decoder_channels: tuple[int, int, int, int] = (256, 128, 64, 64)
    encoder_time_downscale: tuple[bool, bool, bool] = (True, True, False)
    decoder_time_upscale: tuple[bool, bool, bool] = (False, True, True)
    decoder_space_upscale: tuple[bool, bool, bool] = (True, True, True)

    @property
    def t_downscale(self) -> int:
        return 2 ** sum(self.encoder_time_downscale)

    @property
    def t_upscale(self) -> int:
        return 2 ** sum(self.decoder_time_upscale)

    @property
    def frames_to_trim(self) -> int:
        """Startup frames the decoder emits before the stream's frame 0."""
        return self.t_upscale - 1

    @property
    def spatial_factor(self) -> int:
        return 8 * self.patch_size


TAEHV_CONFIGS: dict[str, TAEHVConfig] = {
    "taew2_1": TAEHVConfig(),
    "tiny": TAEHVConfig(encoder_channels=16, decoder_channels=(32, 16, 16, 16)),
}


@dataclass
class TAEHVCache:
    """Streaming state of a TAEHV encoder or decoder.

    ``memory[i]`` is the input of ``MemBlock`` number ``i`` (index into the ``nn.Sequential``) at
    the previous frame, ``[B, C, H, W]``; ``None`` before the first chunk (reads as zeros, as does
    a memory of another frame size: a reset stream that changed size).
    ``started`` is False until the first chunk has passed (the first chunk gets frame-0 padding on
    encode and loses its startup frames on decode).
    """

    memory: list[torch.Tensor | None]
    started: bool = False

    @classmethod
    def empty(cls, layers: int) -> TAEHVCache:
        return cls(memory=[None] * layers)

    def write(self, index: int, frame: torch.Tensor) -> None:
        """Remember ``frame`` for layer ``index``: in place once allocated (static addresses)."""
        current = self.memory[index]
        if current is not None and current.shape == frame.shape and current.dtype == frame.dtype:
            current.copy_(frame)
        else:
            self.memory[index] = frame.clone()


def _conv(n_in: int, n_out: int, *, stride: int = 1, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(n_in, n_out, 3, stride=stride, padding=1, bias=bias)


class Clamp(nn.Module):
    """Soft clamp to (-3, 3): ``3 * tanh(x / 3)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x / 3) * 3


class MemBlock(nn.Module):
    """Residual 3-conv block over ``cat(frame, previous frame's input)``; ReLU after the sum."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            _conv(n_in * 2, n_out), nn.ReLU(inplace=True), _conv(n_out, n_out), nn.ReLU(inplace=True), _conv(n_out, n_out)
        )
        self.skip: nn.Module = nn.Conv2d(n_in, n_out, 1, bias=False) if n_in != n_out else nn.Identity()

    def forward(self, x: torch.Tensor, past: torch.Tensor) -> torch.Tensor:
        """``x``, ``past``: ``[N, C, H, W]`` (``past[i]`` is the input of the frame before ``x[i]``)."""
        return F.relu(self.conv(torch.cat([x, past], 1)) + self.skip(x))


class TPool(nn.Module):
    """Merge ``stride`` consecutive frames (concatenated on channels, earliest first) with a 1x1 conv."""

    def __init__(self, n_f: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.conv = nn.Conv2d(n_f * stride, n_f, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nt, c, h, w = x.shape
        return self.conv(x.reshape(nt // self.stride, self.stride * c, h, w))


class TGrow(nn.Module):
    """Split each frame into ``stride`` frames with a 1x1 conv (output channel groups, earliest first)."""

    def __init__(self, n_f: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.conv = nn.Conv2d(n_f, n_f * stride, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nt, c, h, w = x.shape
        return self.conv(x).reshape(nt * self.stride, c, h, w)


def _run(seq: nn.Sequential, x: torch.Tensor, cache: TAEHVCache) -> torch.Tensor:
    """Apply ``seq`` to the next frames ``x`` ``[B, T, C, H, W]`` of a stream; all frames of a layer at once."""
    b, t = x.shape[:2]
    h = x.reshape(b * t, *x.shape[2:])
    for i, layer in enumerate(seq):
        if isinstance(layer, MemBlock):
            frames = h.reshape(b, t, *h.shape[1:])
            previous = cache.memory[i]
            if previous is None or previous.shape != frames[:, 0].shape:  # a fresh stream (or of another size)
                first = torch.zeros_like(frames[:, 0])
            else:
                first = previous
            past = torch.cat([first.unsqueeze(1), frames[:, :-1]], dim=1).reshape(h.shape)
            cache.write(i, frames[:, -1])
            h = layer(h, past)
        else:
            h = layer(h)
            if isinstance(layer, TPool):
                t //= layer.stride
            elif isinstance(layer, TGrow):
                t *= layer.stride
    return h.reshape(b, t, *h.shape[1:])


class TAEHV(nn.Module):
    """Tiny Wan 2.1 autoencoder; parameter names match ``taew2_1.pth`` (``encoder.N.*``, ``decoder.N.*``)."""

    def __init__(self, config: TAEHVConfig = TAEHV_CONFIGS["taew2_1"]) -> None:
        super().__init__()
        self.config = config
        e = config.encoder_channels
        p2 = config.patch_size**2
        enc: list[nn.Module] = [_conv(config.image_channels * p2, e), nn.ReLU(inplace=True)]
        for down in config.encoder_time_downscale:
            enc += [TPool(e, 2 if down else 1), _conv(e, e, stride=2, bias=False), MemBlock(e, e), MemBlock(e, e), MemBlock(e, e)]
        enc.append(_conv(e, config.latent_channels))
        self.encoder = nn.Sequential(*enc)
        n = config.decoder_channels
        dec: list[nn.Module] = [Clamp(), _conv(config.latent_channels, n[0]), nn.ReLU(inplace=True)]
        for k in range(3):
            dec += [
                MemBlock(n[k], n[k]),
                MemBlock(n[k], n[k]),
                MemBlock(n[k], n[k]),
                nn.Upsample(scale_factor=2 if config.decoder_space_upscale[k] else 1),
                TGrow(n[k], 2 if config.decoder_time_upscale[k] else 1),
                _conv(n[k], n[k + 1], bias=False),
            ]
        dec += [nn.ReLU(inplace=True), _conv(n[3], config.image_channels * p2)]
        self.decoder = nn.Sequential(*dec)

    def new_encoder_cache(self) -> TAEHVCache:
        return TAEHVCache.empty(len(self.encoder))

    def new_decoder_cache(self) -> TAEHVCache:
        return TAEHVCache.empty(len(self.decoder))

    def encode_chunk(self, frames: torch.Tensor, cache: TAEHVCache) -> torch.Tensor:
        """Frames ``[B, T, 3, H, W]`` in [0, 1] (T a multiple of 4; the caller aligns the stream start) -> latents ``[B, T/4, 16, H/8, W/8]``."""
        cfg = self.config
        if frames.ndim != 5 or frames.shape[2] != cfg.image_channels:
            raise PipelineError(f"TAEHV encodes frames shaped [B, T, {cfg.image_channels}, H, W]; got {tuple(frames.shape)}")
        if frames.shape[1] % cfg.t_downscale or frames.shape[1] == 0:
            raise PipelineError(f"TAEHV encodes chunks of a multiple of {cfg.t_downscale} frames; got {frames.shape[1]}")
        if frames.shape[3] % cfg.spatial_factor or frames.shape[4] % cfg.spatial_factor:
            raise PipelineError(f"frame height and width must be multiples of {cfg.spatial_factor}; got {frames.shape[3]}x{frames.shape[4]}")
        x = frames.to(self.encoder[0].weight.dtype)
        if cfg.patch_size > 1:
            b, t = x.shape[:2]
            x = F.pixel_unshuffle(x.flatten(0, 1), cfg.patch_size).unflatten(0, (b, t))
        out = _run(self.encoder, x, cache)
        cache.started = True
        return out

    def decode_chunk(self, latents: torch.Tensor, cache: TAEHVCache) -> torch.Tensor:
        """Latents ``[B, T', 16, h, w]`` -> frames ``[B, 4T' (first chunk: 4T' - 3), 3, 8h, 8w]`` in [0, 1]."""
        cfg = self.config
        if latents.ndim != 5 or latents.shape[2] != cfg.latent_channels or latents.shape[1] == 0:
            raise PipelineError(
                f"TAEHV decodes latents shaped [B, T, {cfg.latent_channels}, h, w] with T >= 1; got {tuple(latents.shape)}"
            )
        out = _run(self.decoder, latents.to(self.decoder[1].weight.dtype), cache)
        if cfg.patch_size > 1:
            b, t = out.shape[:2]
            out = F.pixel_shuffle(out.flatten(0, 1), cfg.patch_size).unflatten(0, (b, t))
        if not cache.started:
            out = out[:, cfg.frames_to_trim :]
        cache.started = True
        return out.clamp(0.0, 1.0)

    def encode_video(self, frames: torch.Tensor) -> torch.Tensor:
        """Whole clip ``[B, T, 3, H, W]`` in [0, 1], T a multiple of 4 -> latents ``[B, T/4, 16, H/8, W/8]``."""
        return self.encode_chunk(frames, self.new_encoder_cache())

    def decode_video(self, latents: torch.Tensor) -> torch.Tensor:
        """Whole latent clip ``[B, T', 16, h, w]`` -> frames ``[B, 4T' - 3, 3, 8h, 8w]`` in [0, 1]."""
        return self.decode_chunk(latents, self.new_decoder_cache())


class StreamingTAEHV:
    """TAEHV with the interface, layouts and ranges of :class:`~livestyle.models.vae.StreamingWanVAE`.

    Pixels ``[B, 3, T, H, W]`` in [-1, 1]; latents ``[B, 16, T', H/8, W/8]``, normalised Wan
    latents by default or raw Wan latents with ``normalize_latents=False``. ``encode`` takes
    1 + 4n frames first (frame 0 is padded to a full group, matching the Wan VAE's frame-0
    latent), then multiples of 4; ``decode`` takes any number of latent frames. For a GPU fast
    path move the model to bf16 and ``memory_format=torch.channels_last`` (its convolutions are 2-D).

    ``cuda_graphs`` (default on): on CUDA, steady-state chunks (after a stream's first) replay from
    CUDA graphs (``CallGraphs``), captured on the third chunk of each shape. The frame memory is
    written in place and ``reset`` zeroes it in place (zeros are what a fresh stream reads), so the
    graphs stay valid across resets of this object.
    """

    def __init__(self, taehv: TAEHV, *, normalize_latents: bool = True, cuda_graphs: bool = True) -> None:
        self.taehv = taehv
        self.normalize_latents = normalize_latents
        self.latent_channels = taehv.config.latent_channels
        self.spatial_factor = taehv.config.spatial_factor
        self.temporal_factor = taehv.config.t_downscale
        self.encoder_cache = taehv.new_encoder_cache()
        self.decoder_cache = taehv.new_decoder_cache()
        self.graphs = CallGraphs("the tiny codec's chunk") if cuda_graphs else None

    def reset(self) -> None:
        """Forget the stream: the next ``encode`` must start with 1 + 4n frames; the next ``decode`` is frame 0."""
        for cache in (self.encoder_cache, self.decoder_cache):
            for memory in cache.memory:
                if memory is not None:
                    memory.zero_()
            cache.started = False

    def _chunk(self, name: str, step: Callable[[torch.Tensor, TAEHVCache], torch.Tensor], x: torch.Tensor,
               cache: TAEHVCache) -> torch.Tensor:
        """``step(x, cache)``, from a CUDA graph once the stream is past its first chunk."""
        if self.graphs is None or not cache.started:
            return step(x, cache)
        return self.graphs.run((name,), lambda inp: step(inp, cache), x)

    def _stats(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = torch.tensor(LATENTS_MEAN, device=like.device, dtype=like.dtype).view(1, -1, 1, 1, 1)
        std = torch.tensor(LATENTS_STD, device=like.device, dtype=like.dtype).view(1, -1, 1, 1, 1)
        return mean, std

    @torch.no_grad()
    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """``[B, 3, T, H, W]`` in [-1, 1] (T = 1 + 4n first, then 4n) -> latents ``[B, 16, n(+1), H/8, W/8]``."""
        if frames.ndim != 5 or frames.shape[1] != 3:
            raise PipelineError(f"encode takes pixels shaped [B, 3, T, H, W]; got {tuple(frames.shape)}")
        t, k = frames.shape[2], self.temporal_factor
        first = not self.encoder_cache.started
        if first and t % k != 1:
            raise PipelineError(f"the first chunk of a stream must have 1 + {k}n frames (1, 5, 9, ...); got {t}")
        if not first and (t == 0 or t % k):
            raise PipelineError(f"after the first chunk, chunks must have a multiple of {k} frames; got {t}")
        x = frames.permute(0, 2, 1, 3, 4).mul(0.5).add(0.5)  # [B, T, 3, H, W] in [0, 1]
        if first:
            x = torch.cat([x[:, :1].expand(-1, k - 1, -1, -1, -1), x], dim=1)
        z = self._chunk("encode", self.taehv.encode_chunk, x, self.encoder_cache).permute(0, 2, 1, 3, 4)
        if not self.normalize_latents:
            mean, std = self._stats(z)
            z = z * std + mean
        return z

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents ``[B, 16, n, h, w]`` -> pixels ``[B, 3, 4n (first call: 4n - 3), 8h, 8w]`` in [-1, 1]."""
        if latents.ndim != 5 or latents.shape[1] != self.latent_channels:
            raise PipelineError(f"decode takes latents shaped [B, {self.latent_channels}, T, h, w]; got {tuple(latents.shape)}")
        z = latents
        if not self.normalize_latents:
            mean, std = self._stats(z)
            z = (z - mean) / std
        z = z.permute(0, 2, 1, 3, 4)
        frames = self._chunk("decode", self.taehv.decode_chunk, z, self.decoder_cache)
        return frames.permute(0, 2, 1, 3, 4).mul(2.0).sub(1.0)


def _config_from_state(state: dict[str, torch.Tensor], where: Path) -> TAEHVConfig:
    try:
        enc0 = state["encoder.0.weight"]
        dec = [state[f"decoder.{i}.weight"] for i in (1, 8, 14, 20)]
        latent = state["encoder.17.weight"].shape[0]
    except KeyError:
        raise ModelLoadError(
            f"{where} is not a TAEHV checkpoint (no encoder.0.weight / decoder.1.weight; expected taew2_1.pth or .safetensors)"
        ) from None
    patch = int(round((enc0.shape[1] / 3) ** 0.5))
    return TAEHVConfig(
        latent_channels=int(latent),
        patch_size=patch,
        encoder_channels=int(enc0.shape[0]),
        decoder_channels=(int(dec[0].shape[0]), int(dec[1].shape[0]), int(dec[2].shape[0]), int(dec[3].shape[0])),
    )


def load_taehv(
    path: str | Path,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> TAEHV:
    """Load TAEHV from ``taew2_1.pth`` or ``taew2_1.safetensors``.

    Checkpoints whose ``TGrow`` convolutions carry more output channels than the configured
    temporal stride needs (the released stride-1 layer) keep the last-timestep channels, as
    upstream does. Raises :class:`ModelLoadError` for unreadable or foreign files.
    """
    from livestyle.models.state_files import assign_state_dict, read_state_dict

    path = Path(path)
    state = {k: v for k, v in read_state_dict(path).items() if isinstance(v, torch.Tensor)}
    config = _config_from_state(state, path)
    with torch.device("meta"):
        model = TAEHV(config)
    expected = model.state_dict()
    for i, layer in enumerate(model.decoder):
        key = f"decoder.{i}.conv.weight"
        if isinstance(layer, TGrow) and key in state and state[key].shape[0] > expected[key].shape[0]:
            state[key] = state[key][-expected[key].shape[0] :]
    assign_state_dict(model, state, path, "TAEHV", dtype)
    return model.to(device).eval().requires_grad_(False)
