"""Each fused Triton kernel equals its unfused PyTorch reference (fp32 on the CPU, Triton's interpreter).

On a machine without a GPU, tests/conftest.py sets ``TRITON_INTERPRET=1`` before Triton is imported,
and ``set_fused("interpret")`` routes CPU tensors through the real kernels. The final float32 → e4m3
cast is PyTorch's there (the interpreter's is not faithful); the GPU parity part of
``benchmarks/gpu_suite.py`` (``fused``) checks the in-register cast on the device.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import torch

pytest.importorskip("triton")
if os.environ.get("TRITON_INTERPRET") != "1" and not torch.cuda.is_available():
    pytest.skip("Triton needs TRITON_INTERPRET=1 on a CPU-only machine", allow_module_level=True)

from livestyle.models.kernels import fused_enabled, set_fused  # noqa: E402
from livestyle.models.kernels.kv_write import (  # noqa: E402
    frame_means,
    frame_means_reference,
    scatter_rows,
    scatter_rows_reference,
)
from livestyle.models.kernels.norm import norm_modulate, norm_modulate_reference  # noqa: E402
from livestyle.models.kernels.qk_rope import qk_norm_rope, qk_norm_rope_reference  # noqa: E402
from livestyle.models.kernels.quant import quantize_rows, quantize_rows_reference  # noqa: E402
from livestyle.models.kv_cache import KVCache  # noqa: E402
from livestyle.models.rope import build_rope_tables, rope_cos_sin  # noqa: E402
from livestyle.models.testing.dit import random_dit  # noqa: E402

B, F, T, D, HEADS = 2, 3, 5, 96, 4  # D / HEADS = 24: RoPE pairs 4 / 4 / 4; D not a power of two


@pytest.fixture
def fused() -> Iterator[None]:
    set_fused("interpret" if not torch.cuda.is_available() else "auto")
    yield
    set_fused(None)


def _per_frame(gen: torch.Generator, scale: float = 1.0) -> torch.Tensor:
    """A ``[B, F, 1, D]`` view with the strides of the model's stacked modulations (one of 6 rows)."""
    mods = torch.randn(B, F, 6, 1, D, generator=gen) * scale
    return mods[:, :, 2]


def _close(a: torch.Tensor, b: torch.Tensor, tol: float = 2e-6) -> None:
    torch.testing.assert_close(a, b, rtol=tol, atol=tol)


def test_fusion_is_off_by_default_on_cpu_and_on_in_interpret_mode(fused: None) -> None:
    x = torch.zeros(2)
    assert fused_enabled(x)
    set_fused(False)
    assert not fused_enabled(x)
    set_fused(None)
    assert not fused_enabled(x)  # auto: CUDA tensors only
    with pytest.raises(ValueError, match="unknown fused-kernel mode"):
        set_fused("fast")  # type: ignore[arg-type]


@pytest.mark.parametrize("case", ["modulate", "gated_affine", "residual_modulate", "gated_only", "affine_plain"])
def test_norm_modulate_matches_reference(fused: None, case: str) -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(B, F * T, D, generator=gen) * 3 + 1
    y = torch.randn(B, F * T, D, generator=gen)
    kw: dict = {}
    if case in ("gated_affine", "residual_modulate", "gated_only"):
        kw["y"] = y
    if case in ("gated_affine", "gated_only"):
        kw["gate"] = _per_frame(gen)
    if case in ("gated_affine", "affine_plain"):
        kw["weight"] = 1 + 0.1 * torch.randn(D, generator=gen)
        kw["bias"] = 0.1 * torch.randn(D, generator=gen)
    if case in ("modulate", "residual_modulate"):
        kw["shift"], kw["scale1"] = _per_frame(gen), 1 + _per_frame(gen, 0.1)
    if case == "gated_only":
        kw["norm"] = False
    want_r, want_h = norm_modulate_reference(x, F, 1e-6, **kw)
    got_r, got_h = norm_modulate(x, F, 1e-6, **kw)
    _close(got_r, want_r)
    if case == "gated_only":
        assert got_h is None and want_h is None
    else:
        assert isinstance(got_h, torch.Tensor) and want_h is not None
        _close(got_h, want_h, 1e-5)


def _assert_same_fp8(got: object, want: object) -> None:
    """Same scales; e4m3 codes equal except where float32 rounding order flips a tie (≤ 1 step)."""
    gd, gs, glead = got  # type: ignore[misc]
    wd, ws, wlead = want  # type: ignore[misc]
    assert glead == wlead and gd.dtype == wd.dtype == torch.float8_e4m3fn
    _close(gs, ws, 1e-6)
    codes_g, codes_w = gd.view(torch.uint8).int(), wd.view(torch.uint8).int()
    assert (codes_g - codes_w).abs().max() <= 1
    assert (codes_g != codes_w).float().mean() < 0.01


def test_norm_modulate_writes_the_fp8_rows_of_its_output(fused: None) -> None:
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(B, F * T, D, generator=gen)
    shift, scale1 = _per_frame(gen), 1 + _per_frame(gen, 0.1)
    _, h = norm_modulate_reference(x, F, 1e-6, shift=shift, scale1=scale1)
    _, q = norm_modulate(x, F, 1e-6, shift=shift, scale1=scale1, quantize=True)
    assert h is not None
    _assert_same_fp8(q, quantize_rows_reference(h))


@pytest.mark.parametrize("gelu", [False, True])
def test_quantize_rows_matches_reference(fused: None, gelu: bool) -> None:
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(B, F * T, 3 * D, generator=gen) * 2
    x[0, 0] = 0  # an all-zero row: the scale floor, zeros out
    got = quantize_rows(x, gelu=gelu)
    _assert_same_fp8(got, quantize_rows_reference(x, gelu=gelu))
    assert torch.equal(got.data[0].float(), torch.zeros(3 * D))


def _rope(positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    tables = build_rope_tables(D // HEADS, 64)
    return rope_cos_sin(tables, positions, 1, T)


def test_qk_norm_rope_matches_reference_and_writes_the_cache_slots(fused: None) -> None:
    gen = torch.Generator().manual_seed(4)
    qkv = torch.randn(B, F * T, 3 * D, generator=gen) * 2
    q, k, v = qkv.chunk(3, dim=-1)  # strided views, as the fused qkv GEMM gives them
    wq, wk = 1 + 0.1 * torch.randn(D, generator=gen), 1 + 0.1 * torch.randn(D, generator=gen)
    cos, sin = _rope(torch.tensor([[3, 4, 5], [7, 8, 9]]))
    slots = 5 * T
    index = (torch.arange(B)[:, None] * slots + 2 * T + torch.arange(F * T)[None]).reshape(-1)
    caches = [torch.randn(2, B, slots, HEADS, D // HEADS, generator=gen) for _ in range(2)]
    got_k, got_v = caches[0].clone(), caches[0].clone()
    want_k, want_v = caches[1].clone(), caches[1].clone()
    got_k.copy_(want_k)
    got_v.copy_(want_v)
    gq, gk, gv = qk_norm_rope(q, k, v, wq, wk, cos, sin, 1e-6, HEADS, k_out=got_k[1], v_out=got_v[1], index=index)
    wq_, wk_, wv_ = qk_norm_rope_reference(q, k, v, wq, wk, cos, sin, 1e-6, HEADS, k_out=want_k[1], v_out=want_v[1], index=index)
    _close(gq, wq_, 1e-5)
    _close(got_k, want_k, 1e-5)  # the written slots, and every other slot untouched
    _close(got_v, want_v, 0)
    assert gk is not None and gk.data_ptr() == got_k[1].data_ptr() and gv is not None


def test_qk_norm_rope_without_cache_and_for_the_cross_attention_query(fused: None) -> None:
    gen = torch.Generator().manual_seed(5)
    q, k, v = (torch.randn(B, F * T, D, generator=gen) for _ in range(3))
    wq, wk = 1 + 0.1 * torch.randn(D, generator=gen), 1 + 0.1 * torch.randn(D, generator=gen)
    cos, sin = _rope(torch.tensor([[0, 1, 2], [0, 1, 2]]))
    for got, want in zip(qk_norm_rope(q, k, v, wq, wk, cos, sin, 1e-6, HEADS),
                         qk_norm_rope_reference(q, k, v, wq, wk, cos, sin, 1e-6, HEADS), strict=True):
        _close(got, want, 1e-5)  # type: ignore[arg-type]
    gq, none_k, none_v = qk_norm_rope(q, None, None, wq, None, None, None, 1e-6, HEADS)
    _close(gq, qk_norm_rope_reference(q, None, None, wq, None, None, None, 1e-6, HEADS)[0], 1e-5)
    assert none_k is None and none_v is None
    with pytest.raises(ValueError, match="together"):
        qk_norm_rope(q, k, v, wq, wk, cos, sin, 1e-6, HEADS, index=torch.zeros(1, dtype=torch.long))


@pytest.mark.parametrize("tokens", [T, 70])  # 70: several loop steps and token splits per program
def test_frame_means_match_reference(fused: None, tokens: int) -> None:
    gen = torch.Generator().manual_seed(11)
    k, v = (torch.randn(B, F * tokens, HEADS, D // HEADS, generator=gen) + 0.5 for _ in range(2))
    for got, want in zip(frame_means(k, v, tokens, torch.float32),
                         frame_means_reference(k, v, tokens, torch.float32), strict=True):
        assert got.shape == (B, F, D)
        _close(got, want, 1e-5)
    with pytest.raises(ValueError, match="n\\*T"):
        frame_means(k, v[:, :-1], tokens, torch.float32)


def test_scatter_rows_writes_only_the_given_rows(fused: None) -> None:
    gen = torch.Generator().manual_seed(12)
    k, v = (torch.randn(B, F * T, HEADS, D // HEADS, generator=gen) for _ in range(2))
    slots = 4 * T
    index = torch.randperm(B * slots, generator=gen)[: B * F * T]
    start = [torch.randn(B, slots, HEADS, D // HEADS, generator=gen) for _ in range(2)]
    got, want = [t.clone() for t in start], [t.clone() for t in start]
    scatter_rows(k, v, got[0], got[1], index)
    scatter_rows_reference(k, v, want[0], want[1], index)
    _close(got[0], want[0], 0)
    _close(got[1], want[1], 0)


def test_the_fused_adaptive_sink_forward_equals_the_reference() -> None:
    """SDV2's adaptive sink through the fused means and scatter: the same slots and velocities."""
    def run() -> tuple[list[torch.Tensor], torch.Tensor]:
        model = random_dit("tiny", seed=9).fuse_qkv()
        gen = torch.Generator().manual_seed(10)
        ctx = torch.randn(1, 8, model.config.text_dim, generator=gen)
        cache = KVCache.allocate(model.config, batch=1, frames=3, tokens_per_frame=20, sink_frames=1,
                                 adaptive_sink_threshold=0.98)
        out = []
        with torch.no_grad():
            for step in range(6):  # fills, then refreshes the sink or rolls the ring per layer
                x = torch.randn(1, 16, 1, 8, 10, generator=gen) * (1 + step)
                out.append(model(x, torch.full((1,), 900.0 - 100 * step), ctx, cache=cache, block=cache.begin_block(1)))
        return out, cache.sink_refreshes.clone()

    set_fused(False)
    want, want_refresh = run()
    set_fused("interpret" if not torch.cuda.is_available() else "auto")
    try:
        got, got_refresh = run()
    finally:
        set_fused(None)
    assert torch.equal(got_refresh, want_refresh) and int(want_refresh.sum()) > 0  # the sink was refreshed
    for g, w in zip(got, want, strict=True):
        assert ((g - w).norm() / w.norm()).item() < 1e-5


def _velocities(fp8: bool, cached: bool) -> list[torch.Tensor]:
    model = random_dit("tiny", seed=7).fuse_qkv()
    if fp8:
        model.quantize_fp8()
    gen = torch.Generator().manual_seed(8)
    ctx = torch.randn(1, 8, model.config.text_dim, generator=gen)
    x = torch.randn(1, 16, 1, 8, 10, generator=gen)
    out = []
    with torch.no_grad():
        if cached:
            cache = KVCache.allocate(model.config, batch=1, frames=3, tokens_per_frame=20, sink_frames=1)
            for step in range(5):  # fills, then rolls the ring
                blk = cache.begin_block(1)
                out.append(model(x + step, torch.full((1,), 900.0 - 100 * step), ctx, cache=cache, block=blk))
        else:
            out.append(model(torch.randn(1, 16, 3, 8, 10, generator=gen), torch.tensor([[500.0, 400.0, 300.0]]), ctx))
    return out


@pytest.mark.parametrize(("fp8", "cached"), [(False, True), (False, False), (True, True)])
def test_the_fused_dit_forward_equals_the_reference(fp8: bool, cached: bool) -> None:
    """The whole tiny DiT, every kernel fused (interpreter) against the reference ops, fp32."""
    set_fused(False)
    want = _velocities(fp8, cached)
    set_fused("interpret" if not torch.cuda.is_available() else "auto")
    try:
        got = _velocities(fp8, cached)
    finally:
        set_fused(None)
    for g, w in zip(got, want, strict=True):
        err = ((g - w).norm() / w.norm()).item()
        # fp32: rounding order only; fp8 too (the same float32 values are cast), bar a rare tie
        assert err < (1e-4 if fp8 else 1e-5), err


def test_a_kernel_that_fails_falls_back_to_the_reference_once_and_loudly(monkeypatch: pytest.MonkeyPatch,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    """A GPU or Triton build that cannot compile a kernel must not take the stream down."""
    import triton
    import triton.language as tl

    from livestyle.models.kernels import fused_mode, run_fused

    @triton.jit
    def bad(x_ptr, BLOCK: tl.constexpr):  # noqa: ANN001, ANN202
        tl.store(x_ptr + tl.arange(0, BLOCK), tl.load(x_ptr + tl.arange(0, BLOCK)) + undefined_name)  # noqa: F821

    monkeypatch.delenv("LIVESTYLE_FUSED_STRICT")
    set_fused("interpret" if not torch.cuda.is_available() else "auto")
    x = torch.zeros(4)
    try:
        with caplog.at_level("WARNING", logger="livestyle.models.kernels"):
            got = run_fused("bad", lambda: bad[(1,)](x, BLOCK=4), lambda: "reference")
        assert got == "reference"
        assert fused_mode() == "off" and not fused_enabled(x)
        assert "fused kernel bad failed" in caplog.text and "using the PyTorch ops" in caplog.text
        monkeypatch.setenv("LIVESTYLE_FUSED_STRICT", "1")
        set_fused("interpret" if not torch.cuda.is_available() else "auto")
        with pytest.raises(Exception, match="undefined_name"):
            run_fused("bad", lambda: bad[(1,)](x, BLOCK=4), lambda: "reference")
    finally:
        set_fused(None)


@pytest.mark.gpu
def test_the_compiled_kernels_on_the_gpu_equal_the_reference_ops() -> None:
    """On a GPU: the compiled q/k, means and scatter kernels (not the interpreter) at a real row
    width (5120 channels, 40 heads), fp32, against the reference ops on the same device."""
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    dev, d, heads, t = "cuda", 5120, 40, 60
    gen = torch.Generator(device=dev).manual_seed(4)
    q, k, v = torch.randn(2, t, 3 * d, device=dev, generator=gen).chunk(3, dim=-1)
    wq, wk = 1 + 0.1 * torch.randn(d, device=dev, generator=gen), 1 + 0.1 * torch.randn(d, device=dev, generator=gen)
    tables = build_rope_tables(d // heads, 64)
    cos, sin = (x.to(dev) for x in rope_cos_sin(tables, torch.tensor([[3], [7]]), 6, 10))
    set_fused("auto")
    try:
        got = qk_norm_rope(q, k, v, wq, wk, cos, sin, 1e-6, heads)
        means = frame_means(got[1], got[2], 20, torch.float32)
        index = torch.randperm(2 * 4 * t, device=dev)[: 2 * t]
        out = [torch.zeros(2, 4 * t, heads, d // heads, device=dev) for _ in range(2)]
        scatter_rows(got[1], got[2], out[0], out[1], index)
    finally:
        set_fused(None)
    want = qk_norm_rope_reference(q, k, v, wq, wk, cos, sin, 1e-6, heads)
    for g, w in zip(got, want, strict=True):
        _close(g, w, 1e-5)  # type: ignore[arg-type]
    for g, w in zip(means, frame_means_reference(want[1], want[2], 20, torch.float32), strict=True):
        _close(g, w, 1e-5)
    ref = [torch.zeros_like(out[0]) for _ in range(2)]
    scatter_rows_reference(got[1], got[2], ref[0], ref[1], index)
    _close(out[0], ref[0], 0)
    _close(out[1], ref[1], 0)
