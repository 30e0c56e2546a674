"""The Wan 2.1 video VAE (causal 3-D convolutions, z_dim 16, 4x in time, 8x in space) and its streaming wrapper.

Layouts and ranges used everywhere in this file:

- pixels: ``[B, 3, T, H, W]``, float (fp32/bf16), values in ``[-1, 1]``; ``H``, ``W`` multiples of 8.
- latents: ``[B, 16, T', H/8, W/8]``; ``T' = 1 + (T - 1) / 4`` for a clip that starts the stream.
  *Normalised* latents are ``(mu - latents_mean) / latents_std`` (the space the DiT and TAEHV use);
  *raw* latents are the encoder's posterior mean ``mu`` (StreamDiffusionV2 feeds those to its DiT).

The network itself is stateless. Streaming state lives in a :class:`CausalCache` object that is
passed to every call: one slot per temporal operation (each causal 3x3x3 convolution keeps the
last 2 frames of its input, each temporal downsample the last frame), allocated on the first call
and then updated in place, so after the first chunk every shape and address is static and the
steady-state step can be compiled or captured in a CUDA graph. Encoding frame 0 alone and then 4
frames at a time, or decoding one latent frame at a time, gives exactly what one call over the
whole clip gives (tested), because each operation sees the same input frames either way.

Checkpoints: the original ``Wan2.1_VAE.pth`` (this module uses its key names) and diffusers'
``vae/`` folder (``AutoencoderKLWan``), both read by :func:`livestyle.models.vae_loading.load_wan_vae`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn

from livestyle.errors import PipelineError

__all__ = [
    "LATENTS_MEAN",
    "LATENTS_STD",
    "VAE_CONFIGS",
    "CausalCache",
    "StreamingAutoencoder",
    "StreamingWanVAE",
    "WanVAE",
    "WanVAEConfig",
]

LATENTS_MEAN: tuple[float, ...] = (
    -0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
    0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921,
)  # fmt: skip
"""Per-channel mean of Wan 2.1 raw latents (Wan 2.1 wan/modules/vae.py, Wan-Video/Wan2.1)."""

LATENTS_STD: tuple[float, ...] = (
    2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
    3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160,
)  # fmt: skip
"""Per-channel standard deviation of Wan 2.1 raw latents."""


@dataclass(frozen=True)
class WanVAEConfig:
    """Shape of a Wan 2.1 VAE. ``dim`` 96 is the released model; 16 is the tiny test model."""

    dim: int = 96
    z_dim: int = 16
    dim_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    temporal_downsample: tuple[bool, ...] = (False, True, True)

    @property
    def spatial_factor(self) -> int:
        return 2 ** (len(self.dim_mult) - 1)

    @property
    def temporal_factor(self) -> int:
        return 2 ** sum(self.temporal_downsample)


VAE_CONFIGS: dict[str, WanVAEConfig] = {
    "wan2.1": WanVAEConfig(dim=96),
    "tiny": WanVAEConfig(dim=16),
}


# --------------------------------------------------------------------------------------------
# Streaming state
# --------------------------------------------------------------------------------------------


@dataclass
class CausalCache:
    """Streaming state of one Wan VAE encoder or decoder.

    ``tails[slot]`` holds the trailing input frames of one temporal operation, ``[B, C, k, H, W]``
    (``k`` = 2 for a causal 3x3x3 convolution or the upsampling time convolution, 1 for the
    downsampling time convolution), in the dtype/device of the activations; ``None`` until the
    first chunk has run (an empty slot reads as zeros, which is exactly the causal zero padding).
    ``started`` is False until the first chunk has passed: the first chunk treats its frame 0 as
    the start of the video (Wan's temporal resampling passes frame 0 through on its own).
    """

    tails: list[torch.Tensor | None]
    started: bool = False

    @classmethod
    def empty(cls, slots: int) -> CausalCache:
        return cls(tails=[None] * slots)

    def read(self, slot: int, like: torch.Tensor, frames: int) -> torch.Tensor:
        """The cached frames of ``slot`` (zeros shaped like ``like`` with ``frames`` frames if empty)."""
        tail = self.tails[slot]
        if tail is None:
            b, c, _, h, w = like.shape
            return like.new_zeros((b, c, frames, h, w))
        return tail

    def write(self, slot: int, tail: torch.Tensor) -> None:
        """Store ``tail`` in ``slot``: in place once allocated (static addresses), else a copy."""
        current = self.tails[slot]
        if current is not None and current.shape == tail.shape and current.dtype == tail.dtype:
            current.copy_(tail)
        else:
            self.tails[slot] = tail.clone()

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tails if t is not None)


# --------------------------------------------------------------------------------------------
# Building blocks (parameter names follow the original Wan2.1_VAE.pth)
# --------------------------------------------------------------------------------------------


def _triple(v: int | tuple[int, int, int]) -> tuple[int, int, int]:
    return (v, v, v) if isinstance(v, int) else tuple(v)  # type: ignore[return-value]


class CausalConv3d(nn.Conv3d):
    """Conv3d, causal in time: ``2 * pad_t`` frames are prepended (cached frames, or zeros at the start).

    Spatial padding is symmetric and done by the convolution itself. ``slot`` is the cache slot
    (assigned by the owning encoder/decoder; -1 for convolutions with no temporal context).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int, int],
        stride: int | tuple[int, int, int] = 1,
        padding: int | tuple[int, int, int] = 0,
    ) -> None:
        pad = _triple(padding)
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=(0, pad[1], pad[2]))
        self.time_pad = 2 * pad[0]
        self.slot = -1

    def forward(self, x: torch.Tensor, cache: CausalCache | None = None) -> torch.Tensor:  # type: ignore[override]
        if self.time_pad:
            assert cache is not None, "a causal convolution with temporal context needs a CausalCache"
            x = torch.cat([cache.read(self.slot, x, self.time_pad), x], dim=2)
            cache.write(self.slot, x[:, :, -self.time_pad :])
        return super().forward(x)


class RMSNorm(nn.Module):
    """L2-normalise over channels, times sqrt(C) and a learned gain ``gamma`` (``(C,1,1,1)``, or ``(C,1,1)`` for images)."""

    def __init__(self, dim: int, images: bool = False) -> None:
        super().__init__()
        self.scale = dim**0.5
        self.gamma = nn.Parameter(torch.ones((dim, 1, 1) if images else (dim, 1, 1, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gamma = self.gamma if self.gamma.ndim == x.ndim - 1 else self.gamma.unsqueeze(1)
        return F.normalize(x, dim=1) * (self.scale * gamma)


class ResidualBlock(nn.Module):
    """RMSNorm, SiLU, CausalConv3d 3^3, RMSNorm, SiLU, (Dropout), CausalConv3d 3^3, plus a 1^3 shortcut if C changes."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.residual = nn.Sequential(
            RMSNorm(in_dim),
            nn.SiLU(),
            CausalConv3d(in_dim, out_dim, 3, padding=1),
            RMSNorm(out_dim),
            nn.SiLU(),
            nn.Dropout(0.0),
            CausalConv3d(out_dim, out_dim, 3, padding=1),
        )
        self.shortcut: nn.Module = CausalConv3d(in_dim, out_dim, 1) if in_dim != out_dim else nn.Identity()

    def forward(self, x: torch.Tensor, cache: CausalCache) -> torch.Tensor:
        h = self.shortcut(x)
        for layer in self.residual:
            x = layer(x, cache) if isinstance(layer, CausalConv3d) else layer(x)
        return x + h


class AttentionBlock(nn.Module):
    """Single-head spatial self-attention applied to each frame on its own, with a residual."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = RMSNorm(dim, images=True)
        self.to_qkv = nn.Conv2d(dim, dim * 3, 1)
        self.proj = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor, cache: CausalCache | None = None) -> torch.Tensor:
        b, c, t, h, w = x.shape
        y = self.norm(x)
        qkv = F.conv3d(y, self.to_qkv.weight.unsqueeze(2), self.to_qkv.bias)  # [B, 3C, T, H, W]
        qkv = qkv.permute(0, 2, 3, 4, 1).reshape(b * t, 1, h * w, 3 * c)
        q, k, v = qkv.chunk(3, dim=-1)
        y = F.scaled_dot_product_attention(q, k, v)  # [B*T, 1, HW, C]
        y = y.reshape(b, t, h, w, c).permute(0, 4, 1, 2, 3)
        y = F.conv3d(y, self.proj.weight.unsqueeze(2), self.proj.bias)
        return x + y


class Resample(nn.Module):
    """Spatial x2 down/up-sampling, optionally with Wan's causal temporal x2 down/up-sampling.

    Frame 0 of a stream is special: ``downsample3d`` passes it through and then convolves
    (stride 2, no padding) over ``[previous last frame | chunk]``; ``upsample3d`` passes it through
    and turns every later frame into two with a causal (3,1,1) convolution that never sees frame 0.
    The 2-D convolutions run as (1,3,3) 3-D convolutions so activations keep one 5-D layout.
    """

    def __init__(self, dim: int, mode: str) -> None:
        super().__init__()
        if mode not in ("upsample2d", "upsample3d", "downsample2d", "downsample3d"):
            raise ValueError(f"unknown resample mode {mode!r}")
        self.mode = mode
        self.slot = -1
        if mode.startswith("upsample"):
            self.resample = nn.Sequential(nn.Identity(), nn.Conv2d(dim, dim // 2, 3, padding=1))
        else:
            self.resample = nn.Sequential(nn.Identity(), nn.Conv2d(dim, dim, 3, stride=2))
        if mode == "upsample3d":
            self.time_conv = CausalConv3d(dim, dim * 2, (3, 1, 1), padding=(1, 0, 0))
        elif mode == "downsample3d":
            self.time_conv = CausalConv3d(dim, dim, (3, 1, 1), stride=(2, 1, 1))

    def _spatial(self, x: torch.Tensor) -> torch.Tensor:
        conv: nn.Conv2d = self.resample[1]  # type: ignore[assignment]
        weight = conv.weight.unsqueeze(2)
        if self.mode.startswith("upsample"):
            x = F.interpolate(x, scale_factor=(1.0, 2.0, 2.0), mode="nearest-exact")
            return F.conv3d(x, weight, conv.bias, padding=(0, 1, 1))
        x = F.pad(x, (0, 1, 0, 1))
        return F.conv3d(x, weight, conv.bias, stride=(1, 2, 2))

    def _time_upsample(self, x: torch.Tensor, cache: CausalCache) -> torch.Tensor:
        b, c, t, h, w = x.shape
        y = self.time_conv(x, cache).reshape(b, 2, c, t, h, w)
        return torch.stack((y[:, 0], y[:, 1]), dim=3).reshape(b, c, 2 * t, h, w)

    def forward(self, x: torch.Tensor, cache: CausalCache) -> torch.Tensor:
        if self.mode == "upsample3d":
            if cache.started:
                x = self._time_upsample(x, cache)
            elif x.shape[2] > 1:
                x = torch.cat([x[:, :, :1], self._time_upsample(x[:, :, 1:], cache)], dim=2)
            else:  # frame 0 alone: allocate the (still zero) cache now so later chunks see static state
                slot = self.time_conv.slot
                cache.write(slot, cache.read(slot, x, self.time_conv.time_pad))
        x = self._spatial(x)
        if self.mode == "downsample3d":
            if cache.started:
                y = self.time_conv(torch.cat([cache.read(self.slot, x, 1), x], dim=2))
            elif x.shape[2] > 1:
                y = torch.cat([x[:, :, :1], self.time_conv(x)], dim=2)
            else:
                y = x
            cache.write(self.slot, x[:, :, -1:])
            x = y
        return x


def _assign_slots(module: nn.Module) -> int:
    """Number the temporal operations of ``module`` in call order; return how many there are."""
    slot = 0
    for m in module.modules():
        if isinstance(m, CausalConv3d) and m.time_pad or isinstance(m, Resample) and m.mode == "downsample3d":
            m.slot = slot
            slot += 1
    return slot


class Encoder3d(nn.Module):
    """Pixels ``[B, 3, T, H, W]`` -> ``[B, 2*z_dim, T', H/8, W/8]`` (mean and log-variance)."""

    def __init__(self, config: WanVAEConfig) -> None:
        super().__init__()
        dims = [config.dim * u for u in (1, *config.dim_mult)]
        self.conv1 = CausalConv3d(3, dims[0], 3, padding=1)
        blocks: list[nn.Module] = []
        for i, (in_dim, out_dim) in enumerate(zip(dims[:-1], dims[1:])):
            for _ in range(config.num_res_blocks):
                blocks.append(ResidualBlock(in_dim, out_dim))
                in_dim = out_dim
            if i != len(config.dim_mult) - 1:
                blocks.append(Resample(out_dim, "downsample3d" if config.temporal_downsample[i] else "downsample2d"))
        self.downsamples = nn.Sequential(*blocks)
        self.middle = nn.Sequential(ResidualBlock(dims[-1], dims[-1]), AttentionBlock(dims[-1]), ResidualBlock(dims[-1], dims[-1]))
        self.head = nn.Sequential(RMSNorm(dims[-1]), nn.SiLU(), CausalConv3d(dims[-1], 2 * config.z_dim, 3, padding=1))
        self.num_slots = _assign_slots(self)

    def forward(self, x: torch.Tensor, cache: CausalCache) -> torch.Tensor:
        x = self.conv1(x, cache)
        for block in self.downsamples:
            x = block(x, cache)
        for block in self.middle:
            x = block(x, cache)
        x = self.head[1](self.head[0](x))
        return self.head[2](x, cache)


class Decoder3d(nn.Module):
    """Raw latents (after ``conv2``) ``[B, z_dim, T', h, w]`` -> pixels ``[B, 3, T, 8h, 8w]`` (not clamped)."""

    def __init__(self, config: WanVAEConfig) -> None:
        super().__init__()
        mult = config.dim_mult
        dims = [config.dim * u for u in (mult[-1], *mult[::-1])]
        temporal_upsample = config.temporal_downsample[::-1]
        self.conv1 = CausalConv3d(config.z_dim, dims[0], 3, padding=1)
        self.middle = nn.Sequential(ResidualBlock(dims[0], dims[0]), AttentionBlock(dims[0]), ResidualBlock(dims[0], dims[0]))
        blocks: list[nn.Module] = []
        for i, (in_dim, out_dim) in enumerate(zip(dims[:-1], dims[1:])):
            if i > 0:
                in_dim = in_dim // 2
            for _ in range(config.num_res_blocks + 1):
                blocks.append(ResidualBlock(in_dim, out_dim))
                in_dim = out_dim
            if i != len(mult) - 1:
                blocks.append(Resample(out_dim, "upsample3d" if temporal_upsample[i] else "upsample2d"))
        self.upsamples = nn.Sequential(*blocks)
        self.head = nn.Sequential(RMSNorm(dims[-1]), nn.SiLU(), CausalConv3d(dims[-1], 3, 3, padding=1))
        self.num_slots = _assign_slots(self)

    def forward(self, x: torch.Tensor, cache: CausalCache) -> torch.Tensor:
        x = self.conv1(x, cache)
        for block in self.middle:
            x = block(x, cache)
        for block in self.upsamples:
            x = block(x, cache)
        x = self.head[1](self.head[0](x))
        return self.head[2](x, cache)


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------


class WanVAE(nn.Module):
    """Wan 2.1 VAE. Stateless: streaming state is the :class:`CausalCache` passed to each chunk call.

    ``encode``/``decode`` process a whole clip in one call; ``encode_chunk``/``decode_chunk``
    process the next piece of a stream with a cache from ``new_encoder_cache``/``new_decoder_cache``.
    """

    def __init__(self, config: WanVAEConfig = VAE_CONFIGS["wan2.1"]) -> None:
        super().__init__()
        self.config = config
        z = config.z_dim
        self.encoder = Encoder3d(config)
        self.conv1 = CausalConv3d(2 * z, 2 * z, 1)
        self.conv2 = CausalConv3d(z, z, 1)
        self.decoder = Decoder3d(config)
        self.register_buffer("latents_mean", torch.tensor(LATENTS_MEAN).view(1, z, 1, 1, 1), persistent=False)
        self.register_buffer("latents_std", torch.tensor(LATENTS_STD).view(1, z, 1, 1, 1), persistent=False)

    # -- caches ---------------------------------------------------------------------------
    def new_encoder_cache(self) -> CausalCache:
        return CausalCache.empty(self.encoder.num_slots)

    def new_decoder_cache(self) -> CausalCache:
        return CausalCache.empty(self.decoder.num_slots)

    # -- latent normalisation -------------------------------------------------------------
    def normalize(self, mu: torch.Tensor) -> torch.Tensor:
        """Raw latents -> normalised latents ``(mu - mean) / std`` (same layout and dtype)."""
        return ((mu - self.latents_mean.to(mu.dtype)) / self.latents_std.to(mu.dtype)).to(mu.dtype)

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        """Normalised latents -> raw latents ``z * std + mean``."""
        return (z * self.latents_std.to(z.dtype) + self.latents_mean.to(z.dtype)).to(z.dtype)

    # -- chunk calls ----------------------------------------------------------------------
    def _check_pixels(self, video: torch.Tensor, first: bool) -> None:
        f = self.config.spatial_factor
        if video.ndim != 5 or video.shape[1] != 3:
            raise PipelineError(f"the VAE encodes pixels shaped [B, 3, T, H, W]; got {tuple(video.shape)}")
        if video.shape[3] % f or video.shape[4] % f:
            raise PipelineError(f"frame height and width must be multiples of {f}; got {video.shape[3]}x{video.shape[4]}")
        t, k = video.shape[2], self.config.temporal_factor
        if first and t % k != 1:
            raise PipelineError(f"the first chunk of a stream must have 1 + {k}n frames (1, 5, 9, ...); got {t}")
        if not first and (t == 0 or t % k):
            raise PipelineError(f"after the first chunk, chunks must have a multiple of {k} frames; got {t}")

    def encode_chunk(self, video: torch.Tensor, cache: CausalCache, *, normalize: bool = True) -> torch.Tensor:
        """Encode the next frames of a stream.

        ``video``: ``[B, 3, T, H, W]`` in [-1, 1]; T = 1 + 4n for the first chunk, 4n later.
        Returns ``[B, 16, T', H/8, W/8]`` latents (n + 1 first, then n), normalised unless
        ``normalize=False`` (raw posterior mean). Updates ``cache`` in place.
        """
        self._check_pixels(video, first=not cache.started)
        x = self.encoder(video.to(self.conv1.weight.dtype), cache)
        mu = self.conv1(x)[:, : self.config.z_dim]
        cache.started = True
        return self.normalize(mu) if normalize else mu

    def decode_chunk(self, latents: torch.Tensor, cache: CausalCache, *, normalized: bool = True) -> torch.Tensor:
        """Decode the next latent frames of a stream.

        ``latents``: ``[B, 16, T', h, w]`` (normalised unless ``normalized=False``). Returns pixels
        ``[B, 3, T, 8h, 8w]`` in [-1, 1]: the stream's first latent frame gives 1 frame, every later one 4.
        """
        if latents.ndim != 5 or latents.shape[1] != self.config.z_dim or latents.shape[2] == 0:
            raise PipelineError(
                f"the VAE decodes latents shaped [B, {self.config.z_dim}, T, h, w] with T >= 1; got {tuple(latents.shape)}"
            )
        z = latents.to(self.conv2.weight.dtype)
        if normalized:
            z = self.denormalize(z)
        out = self.decoder(self.conv2(z), cache)
        cache.started = True
        return out.clamp_(-1.0, 1.0)

    # -- whole clips ----------------------------------------------------------------------
    def encode(self, video: torch.Tensor, *, normalize: bool = True) -> torch.Tensor:
        """Encode a whole clip ``[B, 3, 1 + 4n, H, W]`` in [-1, 1] -> latents ``[B, 16, 1 + n, H/8, W/8]``."""
        return self.encode_chunk(video, self.new_encoder_cache(), normalize=normalize)

    def decode(self, latents: torch.Tensor, *, normalized: bool = True) -> torch.Tensor:
        """Decode a whole latent clip ``[B, 16, T', h, w]`` -> pixels ``[B, 3, 1 + 4(T'-1), 8h, 8w]`` in [-1, 1]."""
        return self.decode_chunk(latents, self.new_decoder_cache(), normalized=normalized)


# --------------------------------------------------------------------------------------------
# Streaming wrapper and the interface TAEHV shares
# --------------------------------------------------------------------------------------------


@runtime_checkable
class StreamingAutoencoder(Protocol):
    """What the pipeline needs from a streaming video autoencoder (Wan VAE or TAEHV).

    Pixels are ``[B, 3, T, H, W]`` in [-1, 1]; latents ``[B, 16, T', H/8, W/8]`` in the space
    chosen at construction (normalised Wan latents by default). ``encode`` takes 1 + 4n frames
    first, then multiples of 4, and returns 1 + n then n latent frames; ``decode`` takes any
    number of latent frames and returns 1 + 4(n - 1) frames first, then 4n.
    """

    latent_channels: int
    spatial_factor: int
    temporal_factor: int

    def reset(self) -> None: ...

    def encode(self, frames: torch.Tensor) -> torch.Tensor: ...

    def decode(self, latents: torch.Tensor) -> torch.Tensor: ...


class StreamingWanVAE:
    """The Wan VAE over a live stream: ``reset()``, then ``encode(chunk)`` / ``decode(latents)`` as chunks arrive.

    Encoder and decoder keep separate caches, so encoding and decoding may interleave freely.
    ``normalize_latents=False`` makes ``encode`` return and ``decode`` expect raw latents
    (StreamDiffusionV2 encodes raw means: streamv2v/inference.py, chenfengxu714/StreamDiffusionV2). ``channels_last`` converts
    inputs to ``torch.channels_last_3d`` (use with a model moved to that format on GPU).
    """

    def __init__(self, vae: WanVAE, *, normalize_latents: bool = True, channels_last: bool = False) -> None:
        self.vae = vae
        self.normalize_latents = normalize_latents
        self.channels_last = channels_last
        self.latent_channels = vae.config.z_dim
        self.spatial_factor = vae.config.spatial_factor
        self.temporal_factor = vae.config.temporal_factor
        self.encoder_cache = vae.new_encoder_cache()
        self.decoder_cache = vae.new_decoder_cache()

    def reset(self) -> None:
        """Forget the stream: the next ``encode`` must start with 1 + 4n frames; the next ``decode`` is frame 0."""
        self.encoder_cache = self.vae.new_encoder_cache()
        self.decoder_cache = self.vae.new_decoder_cache()

    def _layout(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last_3d) if self.channels_last else x

    @torch.no_grad()
    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """``[B, 3, T, H, W]`` in [-1, 1] (T = 1 + 4n first, then 4n) -> latents ``[B, 16, n(+1), H/8, W/8]``."""
        return self.vae.encode_chunk(self._layout(frames), self.encoder_cache, normalize=self.normalize_latents)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents ``[B, 16, n, h, w]`` -> pixels ``[B, 3, 4n (first call: 4n - 3), 8h, 8w]`` in [-1, 1]."""
        return self.vae.decode_chunk(self._layout(latents), self.decoder_cache, normalized=self.normalize_latents)
