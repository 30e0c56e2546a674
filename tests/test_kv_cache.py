"""KV-cached block-by-block generation equals one block-causal masked pass; ring/sink semantics."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from livestyle.models.dit import DIT_CONFIGS, CausalWanDiT
from livestyle.models.kv_cache import KVCache
from livestyle.models.testing.dit import random_dit

CFG = DIT_CONFIGS["tiny"]
T = 16  # tokens per latent frame for an 8x8 latent


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def _inputs(frames: int, seed: int = 0, batch: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 16, frames, 8, 8, generator=g), torch.randn(1, 9, CFG.text_dim, generator=g)


@pytest.fixture(scope="module")
def model() -> CausalWanDiT:
    return random_dit("tiny", seed=0)


@torch.no_grad()
def test_cached_blocks_with_clean_reruns_equal_block_causal_pass(model: CausalWanDiT) -> None:
    """Self-Forcing: each block is denoised with noisy K/V in the cache, then re-run clean at t=0."""
    k, blocks = 3, 3
    clean, ctx = _inputs(k * blocks, seed=1)
    cache = KVCache.allocate(CFG, batch=1, frames=k * blocks, tokens_per_frame=T)
    for b in range(blocks):
        blk = cache.begin_block(k)
        noisy = torch.randn(1, 16, k, 8, 8, generator=torch.Generator().manual_seed(100 + b))
        cached = [model(noisy, torch.tensor([t]), ctx, cache=cache, block=blk) for t in (1000.0, 625.0)]
        model(clean[:, :, b * k:(b + 1) * k], torch.zeros(1), ctx, cache=cache, block=blk)
        for t, out in zip((1000.0, 625.0), cached):
            x = torch.cat([clean[:, :, : b * k], noisy], 2)
            ts = torch.cat([torch.zeros(1, b * k), torch.full((1, k), t)], 1)
            ref = model(x, ts, ctx, causal_block_frames=k)[:, :, b * k:]
            assert _rel(out, ref) <= 1e-5, (b, t)
    # and the cache really changes the result (not a bidirectional pass on the block alone)
    assert _rel(cached[0], model(noisy, torch.tensor([1000.0]), ctx)) > 1e-3


@torch.no_grad()
def test_full_block_causal_pass_fills_the_cache_like_block_by_block(model: CausalWanDiT) -> None:
    k, blocks = 3, 3
    clean, ctx = _inputs(k * blocks, seed=2)
    step = KVCache.allocate(CFG, batch=1, frames=12, tokens_per_frame=T)
    for b in range(blocks):
        model(clean[:, :, b * k:(b + 1) * k], torch.zeros(1), ctx, cache=step, block=step.begin_block(k))
    full = KVCache.allocate(CFG, batch=1, frames=12, tokens_per_frame=T)
    model(clean, torch.zeros(1), ctx, cache=full, block=full.begin_block(k * blocks), causal_block_frames=k)
    n = k * blocks * T
    assert torch.allclose(step.k[:, :, :n], full.k[:, :, :n], atol=1e-5)
    assert torch.allclose(step.v[:, :, :n], full.v[:, :, :n], atol=1e-5)
    assert torch.equal(step.slot_frame, full.slot_frame) and torch.equal(step.next_pos, full.next_pos)
    # the next block sees the same cache either way
    nxt = torch.randn(1, 16, k, 8, 8, generator=torch.Generator().manual_seed(5))
    a = model(nxt, torch.tensor([937.5]), ctx, cache=step, block=step.begin_block(k))
    b = model(nxt, torch.tensor([937.5]), ctx, cache=full, block=full.begin_block(k))
    assert _rel(a, b) <= 1e-5


@torch.no_grad()
def test_rolling_eviction_equals_attention_over_the_retained_frames() -> None:
    """One layer: K/V of a frame depend only on that frame, so the cached output must equal a
    block-causal pass over exactly [sink frames] + [most recent ring frames] at their positions."""
    model = random_dit(dataclasses.replace(CFG, num_layers=1), seed=7)
    frames, sink, total = 4, 1, 9
    clean, ctx = _inputs(total, seed=3)
    cache = KVCache.allocate(model.config, batch=1, frames=frames, tokens_per_frame=T, sink_frames=sink)
    for f in range(total):
        out = model(clean[:, :, f:f + 1], torch.zeros(1), ctx, cache=cache, block=cache.begin_block(1))
    retained = [0, 6, 7, 8]
    assert sorted(cache.slot_frame[0].tolist()) == retained
    ref = model(clean[:, :, retained], torch.zeros(1), ctx, causal_block_frames=1,
                frame_positions=torch.tensor([retained]))[:, :, -1:]
    assert _rel(out, ref) <= 1e-5
    # a pass that (wrongly) kept every frame differs
    everything = model(clean, torch.zeros(1), ctx, causal_block_frames=1)[:, :, -1:]
    assert _rel(out, everything) > 1e-3


@torch.no_grad()
def test_sink_frames_never_move(model: CausalWanDiT) -> None:
    clean, ctx = _inputs(12, seed=4)
    cache = KVCache.allocate(CFG, batch=1, frames=5, tokens_per_frame=T, sink_frames=2)
    for f in range(2):
        model(clean[:, :, f:f + 1], torch.zeros(1), ctx, cache=cache, block=cache.begin_block(1))
    sink_k = cache.k[:, :, : 2 * T].clone()
    sink_v = cache.v[:, :, : 2 * T].clone()
    for f in range(2, 12):
        model(clean[:, :, f:f + 1], torch.zeros(1), ctx, cache=cache, block=cache.begin_block(1))
        assert cache.slot_frame[0, :2].tolist() == [0, 1]
        assert cache.slot_pos[0, :2].tolist() == [0, 1]
    assert torch.equal(cache.k[:, :, : 2 * T], sink_k) and torch.equal(cache.v[:, :, : 2 * T], sink_v)
    assert sorted(cache.slot_frame[0].tolist()) == [0, 1, 9, 10, 11]


def test_ring_slots_follow_the_oldest_frame_and_reruns_reuse_slots() -> None:
    cache = KVCache.allocate(CFG, batch=1, frames=6, tokens_per_frame=T, sink_frames=3)
    slots = [cache.begin_block(1).slots.item() for _ in range(9)]
    assert slots == [0, 1, 2, 3, 4, 5, 3, 4, 5]
    blk = cache.begin_block(1)
    assert blk is cache.begin_block(1)  # one handle per block size: fixed addresses
    big = KVCache.allocate(CFG, batch=1, frames=9, tokens_per_frame=T)
    first = big.begin_block(3)
    assert first.slots.tolist() == [[0, 1, 2]] and first.write_index[:3].tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="does not fit the 3-frame ring"):
        cache.begin_block(4)


def test_positions_stay_bounded_over_thousands_of_blocks() -> None:
    plain = KVCache.allocate(CFG, batch=1, frames=21, tokens_per_frame=T)
    sdv2 = KVCache.allocate(CFG, batch=1, frames=6, tokens_per_frame=T, sink_frames=3, rope_refresh=50)
    seen_plain, seen_sdv2 = [], []
    for _ in range(3000):
        seen_plain.append(plain.begin_block(3).positions.clone())
        seen_sdv2.append(sdv2.begin_block(1).positions.clone())
    p = torch.cat(seen_plain, 1)
    s = torch.cat(seen_sdv2, 1)
    assert int(p.max()) <= 1023 and int(p.min()) >= 0
    assert p[0, :6].tolist() == [0, 1, 2, 3, 4, 5]
    assert int(s.max()) == 49 and s[0, :52].tolist() == list(range(50)) + [5, 6]
    assert int(plain.slot_pos.max()) <= 1023 and int(sdv2.slot_pos.max()) <= 49
    # the sink keeps its original positions through every re-base
    assert sdv2.slot_pos[0, :3].tolist() == [0, 1, 2]


@torch.no_grad()
def test_krea_recompute_places_the_new_block_after_the_context(model: CausalWanDiT) -> None:
    ctx_frames, ctx = _inputs(3, seed=5)
    cache = KVCache.allocate(CFG, batch=1, frames=6, tokens_per_frame=T, sink_frames=1)
    for _ in range(4):  # a stream far along: positions would be large without the recompute
        cache.begin_block(3)
    cache.reset()
    model(ctx_frames, torch.zeros(1), ctx, cache=cache, block=cache.begin_block(3), causal_block_frames=3)
    blk = cache.begin_block(3)
    assert blk.positions.tolist() == [[3, 4, 5]]
    noisy = torch.randn(1, 16, 3, 8, 8, generator=torch.Generator().manual_seed(9))
    out = model(noisy, torch.tensor([1000.0]), ctx, cache=cache, block=blk)
    ref = model(torch.cat([ctx_frames, noisy], 2), torch.tensor([[0.0] * 3 + [1000.0] * 3]), ctx, causal_block_frames=3)
    assert _rel(out, ref[:, :, 3:]) <= 1e-5


@torch.no_grad()
def test_kv_bias_weights_only_past_non_sink_frames(model: CausalWanDiT) -> None:
    cache = KVCache.allocate(CFG, batch=1, frames=6, tokens_per_frame=T, sink_frames=1)
    cache.begin_block(3)
    blk = cache.begin_block(2)
    mask = cache.key_mask(blk, kv_bias=0.3)
    per_frame = mask.bias[0, 0, 0, ::T].tolist()
    assert per_frame[:5] == [0.0, pytest.approx(math.log(0.3)), pytest.approx(math.log(0.3)), 0.0, 0.0]
    assert per_frame[5] == float("-inf") and mask.prefix_len is None
    plain = cache.key_mask(blk)
    assert plain.prefix_len.tolist() == [5 * T] and torch.equal(cache.key_mask(blk, kv_bias=1.0).bias, plain.bias)
    x, ctx = _inputs(2, seed=6)
    a = model(x, torch.tensor([500.0]), ctx, cache=cache, block=blk)
    b = model(x, torch.tensor([500.0]), ctx, cache=cache, block=blk, kv_bias=0.3)
    assert _rel(a, b) > 1e-4
    with pytest.raises(ValueError, match=r"kv_bias must be in \(0, 1\]"):
        cache.key_mask(blk, kv_bias=0.0)


@torch.no_grad()
def test_cross_attention_cache_fills_once_and_resets(model: CausalWanDiT) -> None:
    x, ctx = _inputs(1, seed=7)
    other = torch.randn(1, 4, CFG.text_dim, generator=torch.Generator().manual_seed(1))
    cache = KVCache.allocate(CFG, batch=1, frames=4, tokens_per_frame=T)
    blk = cache.begin_block(1)
    a = model(x, torch.tensor([500.0]), ctx, cache=cache, block=blk)
    assert cache.cross.filled
    assert torch.equal(model(x, torch.tensor([500.0]), None, cache=cache, block=blk), a)
    assert torch.equal(model(x, torch.tensor([500.0]), other, cache=cache, block=blk), a)  # filled: ignored
    cache.cross.reset()
    b = model(x, torch.tensor([500.0]), other, cache=cache, block=blk)
    assert _rel(a, b) > 1e-3
    fresh = KVCache.allocate(CFG, batch=1, frames=4, tokens_per_frame=T)
    model.encode_prompt(other, fresh)
    assert torch.equal(fresh.cross.k, cache.cross.k)


@torch.no_grad()
def test_stream_batch_rows_are_independent_caches(model: CausalWanDiT) -> None:
    """SDV2: the warmed-up cache is replicated per denoising step; each row then evolves alone."""
    x, ctx = _inputs(4, seed=8, batch=2)
    warm = KVCache.allocate(CFG, batch=1, frames=6, tokens_per_frame=T, sink_frames=3)
    model(x[:1, :, :2], torch.zeros(1), ctx, cache=warm, block=warm.begin_block(2))
    single = [KVCache.allocate(CFG, batch=1, frames=6, tokens_per_frame=T, sink_frames=3) for _ in range(2)]
    for c in single:
        model(x[:1, :, :2], torch.zeros(1), ctx, cache=c, block=c.begin_block(2))
    batched = warm.expand_batch(2)
    assert batched.batch == 2 and batched.cross.filled
    ts = torch.tensor([700.0, 500.0])
    for f in (2, 3):
        out = model(x[:, :, f:f + 1], ts, ctx, cache=batched, block=batched.begin_block(1))
        for row in range(2):
            ref = model(x[row:row + 1, :, f:f + 1], ts[row:row + 1], ctx, cache=single[row], block=single[row].begin_block(1))
            assert _rel(out[row:row + 1], ref) <= 1e-5


@torch.no_grad()
def test_recent_block_rewrites_the_last_frames_at_their_positions(model: CausalWanDiT) -> None:
    """LongLive re-cache: re-running the last frames in place with the same prompt changes nothing;
    with a new prompt only those slots change and the sink is untouched."""
    clean, ctx = _inputs(9, seed=9)
    cache = KVCache.allocate(CFG, batch=1, frames=6, tokens_per_frame=T, sink_frames=3)
    for b in range(3):
        model(clean[:, :, 3 * b:3 * b + 3], torch.zeros(1), ctx, cache=cache, block=cache.begin_block(3))
    before_k = cache.k.clone()
    blk = cache.recent_block(3)
    assert blk.frames.tolist() == [[6, 7, 8]] and blk.positions.tolist() == [[6, 7, 8]]
    model(clean[:, :, 6:9], torch.zeros(1), ctx, cache=cache, block=blk, causal_block_frames=3)
    assert torch.allclose(cache.k, before_k, atol=1e-5)
    cache.cross.reset()
    new_prompt = torch.randn(1, 5, CFG.text_dim, generator=torch.Generator().manual_seed(3))
    model(clean[:, :, 6:9], torch.zeros(1), new_prompt, cache=cache, block=cache.recent_block(3), causal_block_frames=3)
    assert torch.equal(cache.k[:, :, : 3 * T], before_k[:, :, : 3 * T])
    assert not torch.allclose(cache.k[:, :, 3 * T:], before_k[:, :, 3 * T:])
    with pytest.raises(ValueError, match="must name frames still in the 3-frame ring"):
        cache.recent_block(4)


class _EvictListLayer:
    """One layer of the reference's ring-buffer cache with the adaptive sink, transcribed from
    ``CausalWanSelfAttention.forward`` (streamdiffusionv2 0.1.1 ``models/wan/causal_model.py``,
    the ``kv_cache is not None`` branch, minus RoPE and attention): per-row evict lists of slot end
    offsets, sink slots pushed on the front when unlike the new frame, ``current_step`` for batch 1.
    ``tests/test_pipeline_parity.py`` runs the real code; this copy lets the unit tests drive the
    cache with chosen K/V."""

    def __init__(self, batch: int, frames: int, t: int, sink: int, thr: float, total_steps: int) -> None:
        self.k = torch.zeros(batch, frames * t, CFG.num_heads, CFG.head_dim)
        self.v = torch.zeros_like(self.k)
        self.size, self.t, self.sink, self.thr = frames * t, t, sink, thr
        self.global_end = [0] * batch
        self.local_end = [0] * batch
        self.total_steps = self.current_step = total_steps
        self.evict_idx: list[list[int]] = [[]]
        self.refreshes = 0

    def __call__(self, starts: list[int], k: torch.Tensor, v: torch.Tensor) -> None:
        fs, cache_bs = self.t, self.k.shape[0]
        if len(self.evict_idx) < cache_bs:
            self.evict_idx = [self.evict_idx[0].copy() for _ in range(cache_bs)]
        for i, c_start in enumerate(starts):
            num_new = k.shape[1]
            current_end = c_start + num_new
            sink_tokens = self.sink * fs
            if sink_tokens > 0 and num_new <= fs:
                k_sink_mean = self.k[i:i + 1, :sink_tokens].reshape(self.sink, fs, -1).mean(1)
                k_cos = torch.cosine_similarity(k_sink_mean, k[i:i + 1].reshape(1, fs, -1).mean(1), dim=-1)
                v_sink_mean = self.v[i:i + 1, :sink_tokens].reshape(self.sink, fs, -1).mean(1)
                v_cos = torch.cosine_similarity(v_sink_mean, v[i:i + 1].reshape(1, fs, -1).mean(1), dim=-1)
                avg = (k_cos + v_cos) / 2
                if avg.min() < self.thr:
                    self.evict_idx[i].insert(0, (int(torch.argmin(avg)) + 1) * fs)
            if current_end > self.size or self.local_end[i] >= self.size:
                self.global_end[i] = c_start
                self.local_end[i] = self.size
                target_end = self.evict_idx[i][0]
                if cache_bs == 1 and self.current_step > 1:
                    self.current_step -= 1
                else:
                    popped = self.evict_idx[i].pop(0)
                    if popped > sink_tokens:
                        self.evict_idx[i].append(popped)
                    else:
                        self.refreshes += 1
                    self.current_step = self.total_steps
                self.k[i, target_end - num_new:target_end] = k[i]
                self.v[i, target_end - num_new:target_end] = v[i]
                local_end = self.local_end[i]
            else:
                local_end = self.local_end[i] + current_end - self.global_end[i]
                rolling_end = current_end + num_new
                if sink_tokens < rolling_end <= self.size and (not self.evict_idx[i] or self.evict_idx[i][-1] != rolling_end):
                    self.evict_idx[i].append(rolling_end)
                self.k[i, local_end - num_new:local_end] = k[i]
                self.v[i, local_end - num_new:local_end] = v[i]
            self.global_end[i] = current_end
            self.local_end[i] = local_end


def _scene_kv(g: torch.Generator, scenes: torch.Tensor, scene: int, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """K/V ``[B, T, h, d]`` around one of a few scene directions: same scene → similar frame means
    (cosine near 1), another scene → near 0, so the 0.2 threshold fires only on scene changes."""
    h, d = CFG.num_heads, CFG.head_dim
    base = scenes[scene].reshape(1, 1, h, d)
    k = base + 0.3 * torch.randn(batch, T, h, d, generator=g)
    v = base.flip(-1) + 0.3 * torch.randn(batch, T, h, d, generator=g)
    return k, v


SCENES = [0] * 7 + [1] * 5 + [2] * 2 + [0] * 4 + [3] * 6 + [1] * 3 + [2] * 4 + [0] * 5


def test_adaptive_sink_stream_batch_matches_the_reference_evict_lists() -> None:
    """SDV2 stream batch: a 2-frame warm-up on batch 1, then one call per chunk with every row
    advancing one frame, rows that hold no chunk yet repeating the warm-up's next frame."""
    steps, frames, sink = 3, 6, 3
    g = torch.Generator().manual_seed(5)
    scenes = torch.randn(4, CFG.num_heads * CFG.head_dim, generator=g)
    ref = _EvictListLayer(1, frames, T, sink, 0.2, total_steps=steps)
    warm = KVCache.allocate(CFG, batch=1, frames=frames, tokens_per_frame=T, sink_frames=sink, adaptive_sink_threshold=0.2)
    blk = warm.begin_block(2)
    for _ in range(steps):  # prepare(): every denoising step on the 2-frame warm-up chunk
        k, v = _scene_kv(g, scenes, 0, 1)
        k2, v2 = torch.cat([k, k], 1), torch.cat([v, v], 1)
        warm.write(0, blk, k2, v2)
        ref([0], k2, v2)
    cache = warm.expand_batch(steps)
    ref.k, ref.v = ref.k.repeat(steps, 1, 1, 1), ref.v.repeat(steps, 1, 1, 1)
    ref.global_end, ref.local_end = ref.global_end * steps, ref.local_end * steps
    starts = [2 * T] * steps  # kv_cache_starts after prepare
    for call, scene in enumerate(SCENES):
        starts = [(2 + call) * T] + starts[:-1]
        blk = cache.begin_block(1)
        if call + 1 < steps:
            cache.next_frame[call + 1:].fill_(2)
            cache.next_pos[call + 1:].fill_(2)
        assert blk.frames[:, 0].tolist() == [s // T for s in starts]
        k, v = _scene_kv(g, scenes, scene, steps)
        cache.write(0, blk, k, v)
        ref(starts, k, v)
        assert torch.equal(cache.k[0], ref.k) and torch.equal(cache.v[0], ref.v), f"chunk {call}"
    assert ref.refreshes >= 2 * steps  # the scene changes did refresh the sink, on every row
    assert int(cache.sink_refresh_count()[0].sum()) == ref.refreshes
    assert int(cache.sink_refresh_count()[1:].sum()) == 0  # layers that were never written


def test_adaptive_sink_batch1_multistep_matches_the_reference_current_step_rule() -> None:
    """Batch 1, several denoising calls per one-frame block once the cache is full: every call
    writes the front slot, only the block's last call pops it (``current_step``); repeated calls
    may queue more. The frames that fill the cache get one call each: upstream, a repeated call on
    the frame that completes the fill takes the "full" branch (``local_end_index >= size``) and
    writes the oldest ring slot, a fill-boundary quirk of its batch-1 path (``inference_wo_batch``)
    that livestyle does not copy (SDV2 streams with the stream batch, one call per block)."""
    steps, frames, sink = 3, 5, 2
    g = torch.Generator().manual_seed(6)
    scenes = torch.randn(4, CFG.num_heads * CFG.head_dim, generator=g)
    ref = _EvictListLayer(1, frames, T, sink, 0.2, total_steps=steps)
    cache = KVCache.allocate(CFG, batch=1, frames=frames, tokens_per_frame=T, sink_frames=sink, adaptive_sink_threshold=0.2)
    for f, scene in enumerate(SCENES):
        blk = cache.begin_block(1)
        for step in range(steps if f >= frames else 1):
            k, v = _scene_kv(g, scenes, scene, 1)
            cache.write(0, blk, k, v)
            ref([f * T], k, v)
            assert torch.equal(cache.k[0], ref.k) and torch.equal(cache.v[0], ref.v), f"frame {f} step {step}"
    assert ref.refreshes > 3
    assert int(cache.sink_refresh_count()[0, 0]) == ref.refreshes


def test_adaptive_sink_off_or_on_similar_frames_keeps_the_plain_ring() -> None:
    """Frames like the sink never refresh it: placement equals the plain ring, on or off."""
    g = torch.Generator().manual_seed(7)
    scenes = torch.randn(1, CFG.num_heads * CFG.head_dim, generator=g)
    on = KVCache.allocate(CFG, batch=1, frames=5, tokens_per_frame=T, sink_frames=2, adaptive_sink_threshold=0.2)
    off = KVCache.allocate(CFG, batch=1, frames=5, tokens_per_frame=T, sink_frames=2)
    for f in range(12):
        k, v = _scene_kv(g, scenes, 0, 1)
        if f == 0:  # the first frame meets an all-zero sink (cosine 0) and queues slot 0: give
            continue  # both caches two frames at once, which never compares (as upstream)
        for cache in (on, off):
            blk = cache.begin_block(2 if f == 1 else 1)
            cache.write(0, blk, *((torch.cat([k, k], 1), torch.cat([v, v], 1)) if f == 1 else (k, v)))
        assert torch.equal(on.k, off.k)
    assert int(on.sink_refresh_count().sum()) == 0


def test_adaptive_sink_refuses_placement_dependent_calls() -> None:
    cache = KVCache.allocate(CFG, batch=1, frames=4, tokens_per_frame=T, sink_frames=1, adaptive_sink_threshold=0.2)
    blk = cache.begin_block(2)
    with pytest.raises(ValueError, match="cannot be used with the adaptive sink"):
        cache.recent_block(1)
    with pytest.raises(ValueError, match="not with the adaptive sink"):
        cache.key_mask(blk, causal_block_frames=1)
    with pytest.raises(ValueError, match="sink_queue_capacity must be positive"):
        KVCache.allocate(CFG, batch=1, frames=4, tokens_per_frame=T, sink_frames=1, sink_queue_capacity=0)


# ------------------------------------------------------------------ t_refresh / RoPE re-base


def _expected_positions(blocks: int, n: int, refresh: int | None, rebase: int | None, frames: int) -> list[int]:
    """The re-base rule written out: a block whose start position has reached ``refresh`` (default
    and cap ``1024 - n``) starts at ``rebase`` (default ``frames - n``) instead; positions then run on."""
    limit = min(1024 if refresh is None else refresh, 1024 - n)
    restart = frames - n if rebase is None else rebase
    out, pos = [], 0
    for _ in range(blocks):
        start = restart if pos >= limit else pos
        out += list(range(start, start + n))
        pos = start + n
    return out


REBASE_CASES = [
    # (cache frames, sink frames, block frames, rope_refresh, rope_rebase)
    (6, 3, 1, 50, None),  # SDV2: one-frame blocks re-based to 5 at 50
    (6, 3, 1, 8, None),  # a short period: many re-bases in one run
    (9, 0, 3, 12, None),  # no sink, three-frame blocks, refresh a multiple of the block
    (8, 2, 2, 9, None),  # refresh between two block starts: the block at 10 is the one re-based
    (6, 1, 1, 20, 2),  # an explicit re-base position
    (5, 1, 2, None, None),  # the default refresh, 1024 - n: positions stay inside the RoPE table
]


@pytest.mark.parametrize(("frames", "sink", "n", "refresh", "rebase"), REBASE_CASES)
def test_block_positions_follow_the_rebase_rule(frames: int, sink: int, n: int, refresh: int | None,
                                                rebase: int | None) -> None:
    cache = KVCache.allocate(CFG, batch=1, frames=frames, tokens_per_frame=T, sink_frames=sink,
                             rope_refresh=refresh, rope_rebase=rebase)
    blocks = 600 if refresh is None else 120
    got: list[int] = []
    for _ in range(blocks):
        blk = cache.begin_block(n)
        got += blk.positions[0].tolist()
    expected = _expected_positions(blocks, n, refresh, rebase, frames)
    assert got == expected
    assert max(got) <= 1023 and got.count(0) == 1
    assert len(set(got)) < len(got)  # a re-base did happen in the run
    assert cache.next_frame.tolist() == [blocks * n]  # frames count on; only positions restart
    # the sink keeps the positions it was written at
    assert cache.slot_pos[0, :sink].tolist() == list(range(sink))


@pytest.mark.parametrize(("frames", "sink", "n", "refresh", "rebase"), REBASE_CASES[:5])
@torch.no_grad()
def test_rebased_blocks_attend_to_the_cached_keys_at_their_stored_positions(
        frames: int, sink: int, n: int, refresh: int, rebase: int | None) -> None:
    """One layer (K/V of a frame depend only on the frame and its position): after re-bases, a
    block's cached output equals a plain pass over the retained frames at the positions the cache
    holds for them, with the new block at its re-based positions."""
    model = random_dit(dataclasses.replace(CFG, num_layers=1), seed=11)
    blocks = (refresh + 2 * frames) // n + 1
    clean, ctx = _inputs(blocks * n, seed=12)
    cache = KVCache.allocate(model.config, batch=1, frames=frames, tokens_per_frame=T, sink_frames=sink,
                             rope_refresh=refresh, rope_rebase=rebase)
    expected = _expected_positions(blocks, n, refresh, rebase, frames)
    rebased = 0
    for b in range(blocks):
        blk = cache.begin_block(n)
        assert blk.positions[0].tolist() == expected[b * n:(b + 1) * n]
        rebased += int(blk.positions[0, 0]) != b * n
        out = model(clean[:, :, b * n:(b + 1) * n], torch.tensor([300.0]), ctx, cache=cache, block=blk)
    assert rebased >= 2, rebased  # the run crossed refresh more than once
    order = torch.argsort(cache.slot_frame[0])
    kept, pos = cache.slot_frame[0, order], cache.slot_pos[0, order]
    assert kept[-n:].tolist() == list(range((blocks - 1) * n, blocks * n))
    ref = model(clean[:, :, kept], torch.tensor([300.0]), ctx, frame_positions=pos[None])[:, :, -n:]
    assert _rel(out, ref) <= 1e-5
    # the positions matter: the same frames at their unrebased (absolute) positions differ
    plain = model(clean[:, :, kept], torch.tensor([300.0]), ctx, frame_positions=kept[None])[:, :, -n:]
    assert _rel(out, plain) > 1e-4


def test_stream_batch_rows_rebase_on_their_own_positions() -> None:
    """SDV2 stream batch: rows held back (``next_pos`` written) cross t_refresh on their own blocks."""
    cache = KVCache.allocate(CFG, batch=3, frames=6, tokens_per_frame=T, sink_frames=3, rope_refresh=10)
    cache.next_pos.copy_(torch.tensor([0, 2, 7]))
    cache.next_frame.copy_(torch.tensor([0, 2, 7]))
    starts = [cache.begin_block(1).positions[:, 0].tolist() for _ in range(12)]
    for row, first in enumerate((0, 2, 7)):
        rule, pos = [], first
        for _ in range(12):
            pos = 5 if pos >= 10 else pos
            rule.append(pos)
            pos += 1
        assert [s[row] for s in starts] == rule, row
    assert cache.next_frame.tolist() == [12, 14, 19]


def test_adaptive_sink_slot_means_follow_every_write() -> None:
    """The per-slot token means the adaptive sink compares with are those of the K/V stored in
    each slot, after fills, ring wrap-around and sink refreshes (they replace re-averaging the
    sink's K/V in every layer of every chunk)."""
    from livestyle.models.testing.dit import random_dit

    model = random_dit("tiny", seed=3)
    cache = KVCache.allocate(model.config, batch=2, frames=4, tokens_per_frame=20, sink_frames=2,
                             adaptive_sink_threshold=0.99)  # refreshes often
    gen = torch.Generator().manual_seed(4)
    ctx = torch.randn(1, 8, model.config.text_dim, generator=gen)
    with torch.no_grad():
        for step in range(9):
            x = torch.randn(2, 16, 1, 8, 10, generator=gen) * (1 + step)
            model(x, torch.full((2,), 800.0), ctx, cache=cache, block=cache.begin_block(1))
    assert int(cache.sink_refresh_count().sum()) > 0  # the refresh path ran
    b, t = 2, 20
    for layer in range(model.config.num_layers):
        for buf, means in ((cache.k[layer], cache.slot_mean_k[layer]), (cache.v[layer], cache.slot_mean_v[layer])):
            torch.testing.assert_close(means, buf.reshape(b, 4, t, -1).mean(2), rtol=1e-6, atol=1e-6)
    copy = cache.expand_batch(3)
    torch.testing.assert_close(copy.slot_mean_k[:, 2], cache.slot_mean_k[:, 0])
    cache.reset()
    assert not cache.slot_mean_k.any()
