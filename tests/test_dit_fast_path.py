"""The DiT's fast path: unmasked attention once the cache is full, fp8 linears, CUDA-graph replay."""

from __future__ import annotations

import pytest
import torch

from livestyle.models.fp8 import Fp8Linear, quantize_linears_fp8
from livestyle.models.kv_cache import KVCache
from livestyle.models.testing.dit import random_dit


def _cache(model: torch.nn.Module, **kw: object) -> KVCache:
    return KVCache.allocate(model.config, batch=1, frames=4, tokens_per_frame=16, sink_frames=1, **kw)  # type: ignore[arg-type]


def test_full_flag_turns_on_when_every_slot_filled_and_off_on_reset() -> None:
    model = random_dit("tiny", seed=0)
    cache = _cache(model)
    seen = []
    for _ in range(5):
        cache.begin_block(1)
        seen.append(cache.full)
    assert seen == [False, False, False, True, True]
    assert cache.expand_batch(3).full
    cache.reset()
    assert not cache.full


@torch.no_grad()
def test_full_cache_runs_unmasked_with_the_same_result() -> None:
    """Once full, the forward skips the (all-zero) key mask: same velocity as the masked path."""
    model = random_dit("tiny", seed=0).fuse_qkv()
    cache = _cache(model)
    ctx = torch.randn(1, 8, model.config.text_dim)
    x = torch.randn(1, 16, 1, 8, 8)
    t = torch.full((1,), 600.0)
    for _ in range(5):
        blk = cache.begin_block(1)
        model(x, t, ctx, cache=cache, block=blk)
    assert cache.full
    fast = model(x, t, cache=cache, block=blk)
    cache._full = False  # force the masked path on the same state
    masked = model(x, t, cache=cache, block=blk)
    torch.testing.assert_close(fast, masked, rtol=1e-5, atol=1e-6)


@torch.no_grad()
def test_fp8_linears_stay_close_to_the_original() -> None:
    torch.manual_seed(0)
    lin = torch.nn.Linear(64, 48)
    x = torch.randn(3, 10, 64)
    q = Fp8Linear(lin)
    rel = (q(x) - lin(x)).norm() / lin(x).norm()
    assert q(x).shape == (3, 10, 48) and 0 < rel < 0.05
    model = random_dit("tiny", seed=0).fuse_qkv()
    ref = model(torch.randn(1, 16, 1, 8, 8, generator=torch.Generator().manual_seed(1)), torch.full((1,), 500.0),
                torch.randn(1, 8, model.config.text_dim, generator=torch.Generator().manual_seed(2)))
    assert quantize_linears_fp8(model.blocks) == 7 * model.config.num_layers  # qkv, o; q, kv, o; ffn x2
    out = model(torch.randn(1, 16, 1, 8, 8, generator=torch.Generator().manual_seed(1)), torch.full((1,), 500.0),
                torch.randn(1, 8, model.config.text_dim, generator=torch.Generator().manual_seed(2)))
    assert 0 < float((out - ref).norm() / ref.norm()) < 0.05


def test_fp8_refuses_odd_feature_counts() -> None:
    with pytest.raises(ValueError, match="divisible by 16"):
        Fp8Linear(torch.nn.Linear(10, 16))


@pytest.mark.gpu
@torch.no_grad()
def test_cuda_graph_replay_matches_eager_and_never_syncs() -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    dev = torch.device("cuda")
    model = random_dit("tiny", seed=0).to(dev, torch.bfloat16).fuse_qkv()
    cache = _cache(model, device=dev, dtype=torch.bfloat16)
    model.encode_prompt(torch.randn(1, 8, model.config.text_dim, device=dev), cache)
    x = torch.randn(1, 16, 1, 8, 8, device=dev, dtype=torch.bfloat16)
    t = torch.full((1,), 500.0, device=dev)
    model.enable_cuda_graphs(warmup_calls=1)
    for _ in range(10):
        model(x, t, cache=cache, block=cache.begin_block(1))
    graphs = model._graphs
    assert graphs is not None and graphs.captures == 1 and graphs.replays > 0 and not graphs.failed
    blk = cache.begin_block(1)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        replayed = model(x, t, cache=cache, block=blk)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    model.disable_cuda_graphs()
    eager = model(x, t, cache=cache, block=blk)
    torch.testing.assert_close(replayed, eager)
