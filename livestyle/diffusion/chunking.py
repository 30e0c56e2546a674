"""Chunk assembly: how many frames each chunk takes, and frames ↔ pixel tensors.

The first chunk of a stream takes ``1 + 4*(first_chunk_latents-1)`` frames (SDV2 5, the
Self-Forcing family 9), every later one ``4*latents_per_chunk`` (SDV2 4, others 12), because the
Wan VAE encodes the first frame alone and every later group of 4 frames into one latent frame.

Pixel tensors are ``[1, 3, T, H, W]`` in ``[-1, 1]`` at the pipeline's working size; frames are
``uint8 [H, W, 3]`` RGB at the source size. Resizing (bilinear, antialiased), ``uint8`` ↔ float
conversion and normalisation happen on the device; the host only copies ``uint8`` frames
(:mod:`livestyle.diffusion.transfer`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from livestyle.errors import PipelineError
from livestyle.diffusion.family import FamilyConfig
from livestyle.engine.frames import Frame
from livestyle.diffusion.transfer import ChunkTransfer

__all__ = ["ChunkPlan", "fit_working_size", "frames_to_pixels", "pixels_to_images", "pixels_to_uint8"]


@dataclass(frozen=True)
class ChunkPlan:
    """The geometry of one stream: working size, chunk lengths, latent and token sizes."""

    width: int
    height: int
    first_frames: int
    frames: int
    first_latents: int
    latents: int

    @classmethod
    def for_family(cls, family: FamilyConfig, width: int, height: int) -> ChunkPlan:
        if width % 16 or height % 16 or width <= 0 or height <= 0:
            raise PipelineError(f"working size {width}x{height} is not a positive multiple of 16; use e.g. 832x480")
        return cls(
            width=width,
            height=height,
            first_frames=family.first_chunk_frames,
            frames=family.chunk_frames,
            first_latents=family.first_chunk_latents,
            latents=family.latents_per_chunk,
        )

    @property
    def latent_hw(self) -> tuple[int, int]:
        """Latent height and width (pixels / 8)."""
        return self.height // 8, self.width // 8

    @property
    def tokens_per_frame(self) -> int:
        """Transformer tokens per latent frame ((H/16)*(W/16))."""
        return (self.height // 16) * (self.width // 16)

    def frames_needed(self, first: bool) -> int:
        return self.first_frames if first else self.frames


def fit_working_size(width: int, height: int, bound: tuple[int, int] | None) -> tuple[int, int]:
    """The largest multiple-of-16 size within ``bound`` (``(w, h)``) with about ``width:height``'s
    aspect ratio; ``(width, height)`` itself when it already fits or there is no bound."""
    if bound is None or (width <= bound[0] and height <= bound[1]):
        return width, height
    scale = min(bound[0] / width, bound[1] / height)
    return max(16, int(width * scale) // 16 * 16), max(16, int(height * scale) // 16 * 16)


def frames_to_pixels(frames: Sequence[Frame], width: int, height: int, device: torch.device, dtype: torch.dtype,
                     transfer: ChunkTransfer | None = None) -> torch.Tensor:
    """Stack frames into ``[1, 3, T, height, width]`` pixels in ``[-1, 1]`` (``dtype``, ``device``).

    All frames must share one size; they are resized to the working size when it differs. The
    ``uint8`` frames go to the device in one copy (``transfer``: the stream's pinned staging, see
    :mod:`livestyle.diffusion.transfer`); conversion, normalisation and resizing run there.
    """
    if not frames:
        raise PipelineError("a chunk needs at least one frame")
    h0, w0 = frames[0].height, frames[0].width
    if any(f.height != h0 or f.width != w0 for f in frames):
        raise PipelineError("frames of one chunk differ in size; the runner must re-plan between chunks")
    x = (transfer or ChunkTransfer(device)).upload([f.image for f in frames])  # [T, H, W, 3] uint8
    x = x.permute(0, 3, 1, 2).float()  # [T, 3, H, W]
    if (h0, w0) != (height, width):
        x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
    x = x / 127.5 - 1.0
    return x.permute(1, 0, 2, 3).unsqueeze(0).to(dtype)


def pixels_to_uint8(pixels: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """``[1, 3, T, h, w]`` pixels in ``[-1, 1]`` → ``uint8 [T, height, width, 3]`` (contiguous), on
    their device: everything but the copy to the host."""
    x = pixels[0].permute(1, 0, 2, 3).float()  # [T, 3, h, w]
    if x.shape[-2:] != (height, width):
        x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
    x = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).contiguous()


def pixels_to_images(pixels: torch.Tensor, width: int, height: int, transfer: ChunkTransfer | None = None) -> list[np.ndarray]:
    """``[1, 3, T, h, w]`` pixels in ``[-1, 1]`` → ``T`` ``uint8 [height, width, 3]`` arrays: one
    copy to the host (into pinned memory on CUDA), the arrays are views of it."""
    arr, _ = (transfer or ChunkTransfer(pixels.device)).download(pixels_to_uint8(pixels, width, height))
    return list(arr)
