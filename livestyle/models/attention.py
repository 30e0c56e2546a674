"""Scaled dot-product attention with one backend chosen once per process.

Backends:

- ``"sdpa"`` — ``torch.nn.functional.scaled_dot_product_attention`` (default; every device;
  takes the additive key mask, so it serves masked, biased and block-causal calls).
- ``"flex"`` — ``torch.nn.attention.flex_attention`` for masked calls (block-causal recompute,
  Krea's KV bias): the mask stays frame-level (``KeyMask.frame_bias``) and is applied as a
  ``score_mod``, never expanded to a dense token mask. Opt-in (``set_backend("flex")``): it is fast
  only inside ``torch.compile``; unmasked calls still use SDPA.
- ``"fp8"`` / ``"int8"`` — 8-bit inputs to the products (``livestyle.models.kernels.fp8_attention``,
  SageAttention's recipe): Q·Kᵀ in int8 per block, and P·V in e4m3 with per-channel V scales
  (``fp8``) or in bf16 (``int8``: the more exact), for calls where every key is visible (the full
  KV cache, cross-attention), on CUDA through Triton; other calls use SDPA. Opt-in
  (``LIVESTYLE_ATTENTION=fp8``) until measured faster than cuDNN's bf16 kernel within the parity
  bounds.
- ``"flash"`` — FlashAttention 2/3 (``flash_attn`` package) on CUDA in fp16/bf16. Used only for
  calls whose mask is "every key valid" or "a valid prefix of the key buffer" (the KV-cache fast
  path, via ``flash_attn_with_kvcache(cache_seqlens=...)``); calls that need an arbitrary mask or
  a bias fall back to SDPA.

The backend is resolved once (first call, or ``set_backend``); the ``LIVESTYLE_ATTENTION``
environment variable (``sdpa`` / ``flash`` / ``flex`` / ``fp8`` / ``int8``) or ``set_backend`` override the automatic choice,
e.g. in tests. A missing ``flash_attn`` is logged at INFO, never swallowed silently.

Layouts: ``q`` ``[B, Lq, heads, head_dim]``, ``k``/``v`` ``[B, Lk, heads, head_dim]`` (Wan's
token-major layout), output ``[B, Lq, heads, head_dim]`` in ``q``'s dtype.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F

__all__ = ["Backend", "KeyMask", "attention", "get_backend", "set_backend"]

log = logging.getLogger(__name__)

Backend = Literal["sdpa", "flash", "flex", "fp8", "int8"]
_BACKENDS: tuple[str, ...] = ("sdpa", "flash", "flex", "fp8", "int8")
_backend: str | None = None
_flash: Any = None


@dataclass(frozen=True)
class KeyMask:
    """Which keys a query may see.

    ``bias``: additive float mask broadcastable to ``[B, heads, Lq, Lk]`` (``0`` allowed, ``-inf``
    masked, ``log(b)`` down-weighted), usually ``[B, 1, 1, Lk]`` or ``[B, 1, Lq, Lk]``; ``None``
    means every key is visible.
    ``prefix_len``: ``[B]`` int32 number of valid keys when the mask is exactly "a valid prefix"
    (lets FlashAttention skip the mask); ``None`` when the mask is anything else.
    ``frame_bias``: the same mask at frame granularity, ``[B, 1 or Fq, Fk]`` (query frame, key
    frame), with ``tokens_per_frame`` tokens per frame — what the flex backend uses.
    """

    bias: torch.Tensor | None = None
    prefix_len: torch.Tensor | None = None
    frame_bias: torch.Tensor | None = None
    tokens_per_frame: int = 0


def _load_flash() -> Any:
    try:
        import flash_attn  # type: ignore[import-not-found]
    except ImportError as exc:
        log.info("flash_attn not available (%s); attention uses PyTorch SDPA", exc)
        return None
    return flash_attn


def set_backend(name: Backend | None) -> None:
    """Force a backend (``"sdpa"``/``"flash"``), or ``None`` to choose automatically again."""
    global _backend, _flash
    if name is not None and name not in _BACKENDS:
        raise ValueError(f"unknown attention backend {name!r}; expected one of {_BACKENDS}")
    if name == "flash":
        _flash = _load_flash()
        if _flash is None:
            raise ImportError("attention backend 'flash' needs the flash_attn package (pip install flash-attn)")
    _backend = name


def get_backend() -> str:
    """The backend in use, resolving the automatic choice on first use."""
    global _backend, _flash
    if _backend is None:
        wanted = os.environ.get("LIVESTYLE_ATTENTION", "").strip().lower()
        if wanted:
            set_backend(wanted)  # type: ignore[arg-type]
        else:
            _flash = _load_flash() if torch.cuda.is_available() else None
            _backend = "flash" if _flash is not None else "sdpa"
        log.info("attention backend: %s", _backend)
    assert _backend is not None
    return _backend


def _sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: KeyMask) -> torch.Tensor:
    bias = None if mask.bias is None else mask.bias.to(q.dtype)
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=bias)
    return out.transpose(1, 2)


def _flex(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: KeyMask) -> torch.Tensor:
    from torch.nn.attention.flex_attention import flex_attention

    fb = mask.frame_bias
    assert fb is not None
    t = mask.tokens_per_frame
    per_query = fb.shape[1] > 1

    def score_mod(score: torch.Tensor, b: torch.Tensor, h: torch.Tensor, qi: torch.Tensor, ki: torch.Tensor) -> torch.Tensor:
        qf = qi // t if per_query else qi * 0
        return score + fb[b, qf, ki // t].to(score.dtype)

    out = flex_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), score_mod=score_mod)
    return out.transpose(1, 2)  # type: ignore[union-attr]


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: KeyMask | None = None) -> torch.Tensor:
    """Softmax(q k^T / sqrt(head_dim) + mask) v for ``[B, L, heads, head_dim]`` tensors."""
    mask = mask or KeyMask()
    backend = get_backend()
    if (
        backend == "flash"
        and q.is_cuda
        and q.dtype in (torch.float16, torch.bfloat16)
        and (mask.bias is None or mask.prefix_len is not None)
    ):
        if mask.prefix_len is None:
            return _flash.flash_attn_func(q, k, v)
        return _flash.flash_attn_with_kvcache(q, k, v, cache_seqlens=mask.prefix_len)
    if backend == "flex" and mask.frame_bias is not None:
        return _flex(q, k, v, mask)
    if backend in ("fp8", "int8") and mask.bias is None:
        from livestyle.models.kernels.fp8_attention import fp8_attention, fp8_attention_supported

        if fp8_attention_supported(q, k, v):
            return fp8_attention(q, k, v, pv="fp8" if backend == "fp8" else "bf16")
    return _sdpa(q, k, v, mask)
