"""Prompt state and transitions: blends land per chunk, restart from the current mix, bad input."""

from __future__ import annotations

import pytest
import torch

from livestyle.errors import ControlError
from livestyle.diffusion.prompts import PromptState, blend, slerp


def _emb(seed: int) -> torch.Tensor:
    return torch.randn(1, 6, 8, generator=torch.Generator().manual_seed(seed))


def test_linear_blend_takes_n_chunks_and_starts_at_the_next_chunk() -> None:
    a, b = _emb(0), _emb(1)
    state = PromptState("a", a, mode="linear", default_chunks=4)
    assert torch.equal(state.advance(), a)
    state.set_target("b", b)
    assert torch.equal(state.current, a)  # nothing changes until the next chunk
    got = [state.advance() for _ in range(5)]
    for i, w in enumerate([0.25, 0.5, 0.75, 1.0]):
        torch.testing.assert_close(got[i], a * (1 - w) + b * w)
    assert torch.equal(got[3], b) and torch.equal(got[4], b)
    assert not state.transitioning


def test_change_during_a_blend_restarts_from_the_current_mix() -> None:
    a, b, c = _emb(0), _emb(1), _emb(2)
    state = PromptState("a", a, default_chunks=4)
    state.set_target("b", b)
    state.advance()
    mid = state.advance()  # halfway a -> b
    state.set_target("c", c, chunks=2)
    assert state.progress == (0, 2)
    first = state.advance()
    torch.testing.assert_close(first, mid * 0.5 + c * 0.5)  # from the mix, not from a or b
    assert torch.equal(state.advance(), c)
    assert state.text == "c"


def test_zero_chunks_switches_at_the_next_chunk_and_version_counts_changes() -> None:
    a, b = _emb(0), _emb(1)
    state = PromptState("a", a, default_chunks=3)
    v0 = state.version
    state.advance()
    assert state.version == v0  # no change, no cache invalidation
    state.set_target("b", b, chunks=0)
    assert torch.equal(state.advance(), b)
    assert state.version == v0 + 1


def test_slerp_endpoints_and_norms() -> None:
    a, b = _emb(0), _emb(1)
    torch.testing.assert_close(slerp(a, b, 0.0), a)
    torch.testing.assert_close(slerp(a, b, 1.0), b)
    mid = slerp(a, b, 0.5)
    torch.testing.assert_close(mid.norm(dim=-1), (a.norm(dim=-1) + b.norm(dim=-1)) / 2)
    # spherical, not linear: the midpoint direction is the normalised bisector
    bis = a / a.norm(dim=-1, keepdim=True) + b / b.norm(dim=-1, keepdim=True)
    torch.testing.assert_close(mid / mid.norm(dim=-1, keepdim=True), bis / bis.norm(dim=-1, keepdim=True))
    # zero (padding) tokens fall back to linear, never NaN
    z = torch.zeros_like(a)
    assert torch.isfinite(slerp(z, b, 0.3)).all()
    torch.testing.assert_close(blend(z, b, 0.3, "slerp"), 0.3 * b)


def test_slerp_transition_mode() -> None:
    a, b = _emb(0), _emb(1)
    state = PromptState("a", a, mode="slerp", default_chunks=2)
    state.set_target("b", b)
    torch.testing.assert_close(state.advance(), slerp(a, b, 0.5))
    assert torch.equal(state.advance(), b)


def test_bad_input_is_a_control_error() -> None:
    a = _emb(0)
    with pytest.raises(ControlError, match="prompt transition 'cubic' is unknown; use linear or slerp"):
        PromptState("a", a, mode="cubic")  # type: ignore[arg-type]
    state = PromptState("a", a)
    with pytest.raises(ControlError, match="prompt transition length -1 is negative"):
        state.set_target("b", _emb(1), chunks=-1)
    with pytest.raises(ControlError, match=r"prompt embedding shape \(1, 3, 8\) does not match the stream's \(1, 6, 8\)"):
        state.set_target("b", torch.zeros(1, 3, 8))
    assert not state.transitioning
