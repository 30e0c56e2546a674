"""The fp8 attention backend: the Triton kernels (CPU interpreter) equal their PyTorch reference of
the same algorithm, and both stay within the quantisation's error of exact attention."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("triton")
if os.environ.get("TRITON_INTERPRET") != "1" and not torch.cuda.is_available():
    pytest.skip("Triton needs TRITON_INTERPRET=1 on a CPU-only machine", allow_module_level=True)

from livestyle.models.attention import attention, get_backend, set_backend  # noqa: E402
from livestyle.models.kernels import set_fused  # noqa: E402
from livestyle.models.kernels.fp8_attention import (  # noqa: E402
    fp8_attention,
    fp8_attention_reference,
    fp8_attention_supported,
)


@pytest.fixture
def fused() -> Iterator[None]:
    set_fused("interpret" if not torch.cuda.is_available() else "auto")
    yield
    set_fused(None)


def _exact(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)).transpose(1, 2)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm())


def _qkv(b: int, lq: int, lk: int, h: int, d: int, seed: int) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(b, lq, h, d, generator=gen)
    k = torch.randn(b, lk, h, d, generator=gen) + 0.3 * torch.randn(1, 1, h, d, generator=gen)  # a shared key offset
    v = torch.randn(b, lk, h, d, generator=gen) * torch.linspace(0.2, 3.0, d)  # channels of different ranges
    return q, k, v


@pytest.mark.parametrize("pv", ["fp8", "bf16"])
@pytest.mark.parametrize(("lq", "lk"), [(40, 72), (16, 16), (7, 100)])  # ragged blocks both ways
def test_the_kernel_equals_its_reference_and_both_are_close_to_exact_attention(fused: None, lq: int, lk: int,
                                                                               pv: str) -> None:
    q, k, v = _qkv(2, lq, lk, 3, 32, seed=lq + lk)
    got = fp8_attention(q, k, v, pv=pv)
    want = fp8_attention_reference(q, k, v, block_m=16, block_n=16, pv=pv)
    exact = _exact(q, k, v)
    assert got.shape == q.shape and got.dtype == q.dtype
    assert _rel(got, want) < 2e-3  # the same algorithm; P's e4m3 rounding ties may differ (up vs to even)
    err = _rel(want, exact)
    # really quantised, and within what 8 bits allow on the worst case for them (random data: a
    # flat softmax, whose small output carries every key's rounding): int8 Q·Kᵀ ~1 %, e4m3 P·V ~4 %
    assert 1e-4 < err < (0.06 if pv == "fp8" else 0.02), err


def test_peaked_attention_keeps_its_peak(fused: None) -> None:
    """A query that matches one key strongly must still pick that key's value (the softmax max)."""
    q, k, v = _qkv(1, 16, 64, 2, 32, seed=5)
    k[0, 37] = q[0, 3] * 4  # query 3 points at key 37
    got = fp8_attention(q, k, v)
    torch.testing.assert_close(got[0, 3], v[0, 37], atol=0.15 * float(v.abs().max()), rtol=0.05)


def test_the_backend_serves_unmasked_calls_and_leaves_the_rest_to_sdpa(fused: None) -> None:
    from livestyle.models.attention import KeyMask

    q, k, v = _qkv(1, 20, 40, 2, 32, seed=7)
    assert fp8_attention_supported(q, k, v) and not fp8_attention_supported(q[..., :24], k[..., :24], v[..., :24])
    with pytest.raises(ValueError, match=r"^pv must be fp8 or bf16, got 'int4'$"):
        fp8_attention(q, k, v, pv="int4")
    before = get_backend()
    set_backend("int8")  # type: ignore[arg-type]
    try:
        torch.testing.assert_close(attention(q, k, v), fp8_attention(q, k, v, pv="bf16"))
        set_backend("fp8")  # type: ignore[arg-type]
        assert get_backend() == "fp8"
        torch.testing.assert_close(attention(q, k, v), fp8_attention(q, k, v))
        bias = torch.zeros(1, 1, 1, 40)
        bias[..., 30:] = float("-inf")
        masked = attention(q, k, v, KeyMask(bias=bias))  # a masked call: SDPA, exactly
        torch.testing.assert_close(masked, _exact(q, k[:, :30], v[:, :30]))
        odd = attention(q[..., :24], k[..., :24], v[..., :24])  # head_dim 24: not a power of two
        torch.testing.assert_close(odd, _exact(q[..., :24], k[..., :24], v[..., :24]))
    finally:
        set_backend(before)  # type: ignore[arg-type]


@pytest.mark.gpu
@pytest.mark.parametrize("pv", ["fp8", "bf16"])
def test_the_compiled_kernel_on_the_gpu_equals_the_reference(pv: str) -> None:
    """On a GPU the real int8/e4m3 casts and tensor-core products run (the interpreter cannot)."""
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    set_fused("auto")
    try:
        q, k, v = (t.to("cuda", torch.bfloat16) for t in _qkv(2, 300, 700, 4, 128, seed=3))
        got = fp8_attention(q, k, v, pv=pv)
        want = fp8_attention_reference(q.cpu(), k.cpu(), v.cpu(), block_m=128, block_n=128, pv=pv)
        assert _rel(got.cpu(), want) < 5e-3  # rounding ties and bf16 output rounding
        assert _rel(got.float().cpu(), _exact(q.float(), k.float(), v.float()).cpu()) < (0.06 if pv == "fp8" else 0.02)
    finally:
        set_fused(None)
