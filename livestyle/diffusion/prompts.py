"""Prompt state and transitions: which text embedding conditions each chunk.

A prompt change never lands mid-chunk: :meth:`PromptState.set_target` records it between chunks
and :meth:`PromptState.advance` returns the embedding for the next chunk, blending from the mix
in effect when the change arrived to the new embedding over ``chunks`` chunks (linear or slerp).
A change that arrives while a blend is running restarts the blend *from the current mix*, so the
picture never jumps back to the older prompt.

Embeddings are ``[1, L, text_dim]`` tensors (umT5 output, padded positions zero), on the
pipeline's device and dtype; blending runs in float32 and is cast back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from livestyle.errors import ControlError

__all__ = ["BlendMode", "PromptState", "blend", "slerp"]

BlendMode = Literal["linear", "slerp"]


def slerp(a: torch.Tensor, b: torch.Tensor, w: float, eps: float = 1e-6) -> torch.Tensor:
    """Spherical interpolation per token vector (last dim), ``w`` in ``[0, 1]``.

    Token vectors whose norms are (near) zero or whose directions are (near) parallel fall back to
    linear interpolation. Magnitudes are interpolated linearly, directions spherically.
    """
    a32, b32 = a.float(), b.float()
    na = a32.norm(dim=-1, keepdim=True)
    nb = b32.norm(dim=-1, keepdim=True)
    ua = a32 / na.clamp_min(eps)
    ub = b32 / nb.clamp_min(eps)
    cos = (ua * ub).sum(-1, keepdim=True).clamp(-1 + 1e-7, 1 - 1e-7)
    theta = torch.acos(cos)
    sin = torch.sin(theta)
    direction = (torch.sin((1 - w) * theta) * ua + torch.sin(w * theta) * ub) / sin.clamp_min(eps)
    spherical = direction * ((1 - w) * na + w * nb)
    linear = (1 - w) * a32 + w * b32
    degenerate = (sin < 1e-4) | (na < eps) | (nb < eps)
    return torch.where(degenerate, linear, spherical).to(a.dtype)


def blend(a: torch.Tensor, b: torch.Tensor, w: float, mode: BlendMode) -> torch.Tensor:
    """``a`` → ``b`` at weight ``w`` (0 gives ``a``, 1 gives ``b``) by ``mode``."""
    if w <= 0:
        return a
    if w >= 1:
        return b
    if mode == "slerp":
        return slerp(a, b, w)
    return (a.float() * (1 - w) + b.float() * w).to(a.dtype)


@dataclass
class _Transition:
    start: torch.Tensor
    target: torch.Tensor
    chunks: int
    done: int = 0


class PromptState:
    """The prompt a stream is conditioned on, and the transition towards a new one.

    Args:
        text: the initial prompt's text.
        embedding: its embedding ``[1, L, text_dim]``.
        mode: ``"linear"`` or ``"slerp"``.
        default_chunks: chunks a change blends over when the command does not say.
    """

    def __init__(self, text: str, embedding: torch.Tensor, *, mode: BlendMode = "linear", default_chunks: int = 4) -> None:
        if mode not in ("linear", "slerp"):
            raise ControlError(f"prompt transition {mode!r} is unknown; use linear or slerp")
        self.text = text
        self.mode: BlendMode = mode
        self.default_chunks = default_chunks
        self._current = embedding
        self._transition: _Transition | None = None
        self.version = 0
        """Counts changes of the conditioning; a new value means cross-attention caches are stale."""

    @property
    def current(self) -> torch.Tensor:
        """The embedding the last chunk used (the blend's present mix while one runs)."""
        return self._current

    @property
    def transitioning(self) -> bool:
        return self._transition is not None

    @property
    def progress(self) -> tuple[int, int] | None:
        """``(chunks done, chunks total)`` of the running blend, or ``None``."""
        t = self._transition
        return None if t is None else (t.done, t.chunks)

    def set_target(self, text: str, embedding: torch.Tensor, chunks: int | None = None) -> None:
        """Start moving to ``embedding``; takes effect from the next :meth:`advance`.

        ``chunks`` 0 (or a default of 0) switches at the next chunk without blending. A change
        during a blend restarts it from the current mix.
        """
        n = self.default_chunks if chunks is None else chunks
        if n < 0:
            raise ControlError(f"prompt transition length {n} is negative; use 0 or more chunks")
        if embedding.shape != self._current.shape:
            raise ControlError(
                f"prompt embedding shape {tuple(embedding.shape)} does not match the stream's {tuple(self._current.shape)}"
            )
        self.text = text
        self._transition = _Transition(start=self._current, target=embedding.to(self._current), chunks=max(n, 1))

    def reset_to(self, text: str, embedding: torch.Tensor) -> None:
        """Jump to a prompt at once (no blend), e.g. after a stream reset."""
        self.text = text
        self._current = embedding
        self._transition = None
        self.version += 1

    def advance(self) -> torch.Tensor:
        """The embedding for the next chunk (moves a running blend one chunk forward)."""
        t = self._transition
        if t is None:
            return self._current
        t.done += 1
        w = t.done / t.chunks
        self._current = t.target if t.done >= t.chunks else blend(t.start, t.target, w, self.mode)
        if t.done >= t.chunks:
            self._transition = None
        self.version += 1
        return self._current
