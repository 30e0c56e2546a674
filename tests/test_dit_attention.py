"""Attention backends agree: flex (frame-level score_mod) == SDPA (dense mask) on masked calls."""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Iterator

import pytest
import torch

from livestyle.models import attention as A
from livestyle.models.dit import DIT_CONFIGS
from livestyle.models.kv_cache import KVCache
from livestyle.models.testing.dit import random_dit

CFG = DIT_CONFIGS["tiny"]


@pytest.fixture
def restore_backend() -> Iterator[None]:
    yield
    A.set_backend(None)


def test_backend_is_chosen_once_and_can_be_overridden(restore_backend: None, monkeypatch: pytest.MonkeyPatch) -> None:
    A.set_backend(None)
    monkeypatch.delenv("LIVESTYLE_ATTENTION", raising=False)
    flash = torch.cuda.is_available() and importlib.util.find_spec("flash_attn") is not None
    assert A.get_backend() == ("flash" if flash else "sdpa")
    A.set_backend("flex")
    assert A.get_backend() == "flex"
    with pytest.raises(ValueError, match="unknown attention backend 'xformers'"):
        A.set_backend("xformers")  # type: ignore[arg-type]


@torch.no_grad()
def test_flex_equals_sdpa_for_block_causal_and_kv_bias(restore_backend: None) -> None:
    model = random_dit("tiny", seed=1)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 16, 6, 8, 8, generator=g)
    ctx = torch.randn(1, 5, CFG.text_dim, generator=g)
    nxt = torch.randn(1, 16, 2, 8, 8, generator=g)
    outs = {}
    for backend in ("sdpa", "flex"):
        A.set_backend(backend)  # type: ignore[arg-type]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # flex warns that it runs uncompiled
            causal = model(x, torch.zeros(1), ctx, causal_block_frames=3)
            cache = KVCache.allocate(CFG, batch=1, frames=8, tokens_per_frame=16, sink_frames=1)
            model(x, torch.zeros(1), ctx, cache=cache, block=cache.begin_block(6), causal_block_frames=2)
            biased = model(nxt, torch.tensor([900.0]), ctx, cache=cache, block=cache.begin_block(2), kv_bias=0.3)
        outs[backend] = (causal, biased, cache.k.clone())
    for a, b in zip(outs["sdpa"], outs["flex"]):
        assert float((a - b).norm() / b.norm()) < 1e-5
