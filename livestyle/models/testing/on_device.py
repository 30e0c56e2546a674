"""Random-weight models at their real sizes, built directly on the device in the compute dtype.

For benchmarks: throughput and memory do not depend on weight values, so a 14B transformer is built
in bf16 on the GPU (it never exists in fp32 or on the host) with PyTorch's default init drawn from a
seeded generator. Nothing here loads a checkpoint, and nothing it builds produces a meaningful
picture. (The tiny random models for tests, written in the real file formats, are
``livestyle.models.testing.dit`` and ``livestyle.models.testing.stack``;
``livestyle.diffusion.random_models`` assembles the builders here into a stream's model stack.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

from livestyle.errors import ConfigError
from livestyle.models.dit import DIT_CONFIGS, CausalWanDiT
from livestyle.models.taehv import TAEHV, TAEHV_CONFIGS
from livestyle.models.vae import VAE_CONFIGS, WanVAE

__all__ = [
    "build_on",
    "random_codecs_on",
    "random_dit_on",
    "random_prompt_encoder",
    "random_umt5_xxl_on",
]


@contextmanager
def build_on(device: torch.device | str, dtype: torch.dtype, seed: int) -> Iterator[None]:
    """Construct modules directly on ``device`` in ``dtype`` with a seeded init."""
    dev = torch.device(device)
    old = torch.get_default_dtype()
    torch.manual_seed(seed)
    if dev.type == "cuda":
        torch.cuda.manual_seed(seed)
    torch.set_default_dtype(dtype)
    try:
        with torch.device(dev):
            yield
    finally:
        torch.set_default_dtype(old)


def random_dit_on(model: str, device: torch.device | str, dtype: torch.dtype, *, seed: int = 0,
                  fuse_qkv: bool = True) -> CausalWanDiT:
    """A random-weight ``CausalWanDiT`` of ``DIT_CONFIGS[model]`` built on ``device`` in ``dtype`` (eval mode)."""
    if model not in DIT_CONFIGS:
        raise ConfigError(f"unknown DiT size {model!r}; use one of {', '.join(DIT_CONFIGS)}")
    with build_on(device, dtype, seed):
        dit = CausalWanDiT(DIT_CONFIGS[model])
    if fuse_qkv:
        dit.fuse_qkv()
    return dit.requires_grad_(False).eval()  # after fuse_qkv: its new Linears start with requires_grad=True


def random_codecs_on(vae_config: str, taehv_config: str, device: torch.device | str, dtype: torch.dtype, *,
                     seed: int = 0) -> tuple[WanVAE, TAEHV]:
    """A random-weight Wan VAE of ``VAE_CONFIGS[vae_config]`` and TAEHV of ``TAEHV_CONFIGS[taehv_config]``,
    built on ``device`` in ``dtype`` (eval mode), drawn in that order from one seeded generator."""
    with build_on(device, dtype, seed):
        vae = WanVAE(VAE_CONFIGS[vae_config]).eval().requires_grad_(False)
        taehv = TAEHV(TAEHV_CONFIGS[taehv_config]).eval().requires_grad_(False)
    return vae, taehv


def random_prompt_encoder(text_dim: int, device: torch.device | str, dtype: torch.dtype, *, seed: int = 0,
                          tokens: int = 24) -> Callable[[str], torch.Tensor]:
    """A stand-in for umT5: every prompt maps to one seeded random embedding ``[1, tokens, text_dim]``."""
    gen = torch.Generator().manual_seed(seed)
    emb = (0.5 * torch.randn(1, tokens, text_dim, generator=gen)).to(device=device, dtype=dtype)

    def encode(text: str) -> torch.Tensor:
        return emb

    return encode


def random_umt5_xxl_on(device: torch.device | str, dtype: torch.dtype) -> Any:
    """umT5-XXL-shaped encoder (transformers ``UMT5EncoderModel``, Wan 2.1's config) with random
    weights, built on ``device`` in ``dtype`` (eval mode)."""
    from transformers import UMT5Config, UMT5EncoderModel

    cfg = UMT5Config(vocab_size=256384, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
                     relative_attention_num_buckets=32, relative_attention_max_distance=128,
                     feed_forward_proj="gated-gelu", dropout_rate=0.0)
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            return UMT5EncoderModel(cfg).eval()
    finally:
        torch.set_default_dtype(old)
