"""CUDA-only: the compiled cached step does not recompile across chunks and never syncs the host."""

from __future__ import annotations

import pytest
import torch

from livestyle.models.kv_cache import KVCache
from livestyle.models.testing.dit import random_dit

pytestmark = pytest.mark.gpu


@torch.no_grad()
def test_no_recompiles_and_no_host_syncs_across_chunks() -> None:
    import torch._dynamo

    dev = torch.device("cuda")
    model = random_dit("tiny", seed=0).to(dev, torch.bfloat16).fuse_qkv()
    cache = KVCache.allocate(model.config, batch=1, frames=6, tokens_per_frame=16, sink_frames=3,
                             device=dev, dtype=torch.bfloat16, rope_refresh=50)
    ctx = torch.randn(1, 8, model.config.text_dim, device=dev)
    model.encode_prompt(ctx, cache)
    torch._dynamo.reset()
    step = torch.compile(model, dynamic=False)
    x = torch.randn(1, 16, 1, 8, 8, device=dev, dtype=torch.bfloat16)
    t = torch.full((1,), 700.0, device=dev)

    def chunk() -> torch.Tensor:
        blk = cache.begin_block(1)
        step(x, t, cache=cache, block=blk)
        return step(x, torch.zeros_like(t), cache=cache, block=blk)

    for _ in range(8):  # warm-up: compile the filling-cache (masked) and the full-cache (unmasked) step
        chunk()
    torch.cuda.synchronize()
    torch.compiler.set_stance("fail_on_recompile")
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(60):  # past the ring, the sink and a RoPE re-base at 50
            out = chunk()
    finally:
        torch.cuda.set_sync_debug_mode("default")
        torch.compiler.set_stance("default")
    torch.cuda.synchronize()
    assert torch.isfinite(out).all()
    assert int(cache.next_pos.max()) < 50
