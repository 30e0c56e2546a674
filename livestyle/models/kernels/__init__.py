"""Fused elementwise kernels for the DiT blocks (Triton), each beside its unfused PyTorch reference.

Every op here has two implementations that compute the same function:

- the *reference*: the PyTorch ops the block ran before these kernels existed (same kernels,
  same intermediate roundings), used on the CPU and whenever fusion is off;
- the *fused* Triton kernel: one program per token row, reads its inputs once, does every
  step in float32 registers and writes each output once (rounded once, to the output dtype).

Ops (``livestyle.models.kernels.norm``, ``.qk_rope``, ``.quant``):

- ``norm_modulate``: optional residual add ``x + y · gate`` (per-frame gate), LayerNorm (optional
  affine), optional per-frame modulation ``h · (1 + scale) + shift``, output bf16 or fp8 with a
  per-row scale (the next GEMM's input, written once);
- ``qk_norm_rope``: Wan's q/k RMSNorm over the full model dim, 3-D RoPE, and the K/V written
  straight into the KV cache's slots (no ``index_copy_`` of a temporary);
- ``quantize_rows``: per-row e4m3 quantisation of a GEMM input (optionally through GELU-tanh).

When the fused path runs (``fused_enabled``): on CUDA tensors when Triton imports, unless
``LIVESTYLE_FUSED=0`` (or ``set_fused(False)``) turns it off — the switch benchmarks use to
measure before/after in one process. ``set_fused("interpret")`` runs the Triton kernels on CPU
tensors under ``TRITON_INTERPRET=1`` (the CPU tests that hold each kernel to its reference).
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Callable
from typing import Literal, TypeVar

import torch

__all__ = ["FusedMode", "fused_enabled", "fused_mode", "run_fused", "set_fused", "triton_available"]

log = logging.getLogger(__name__)
R = TypeVar("R")

FusedMode = Literal["auto", "off", "interpret"]
_mode: FusedMode | None = None
_triton: bool | None = None


def triton_available() -> bool:
    """Whether the ``triton`` package can be imported (checked once)."""
    global _triton
    if _triton is None:
        _triton = importlib.util.find_spec("triton") is not None
    return _triton


def set_fused(mode: FusedMode | bool | None) -> None:
    """``True``/``"auto"``: fused on CUDA; ``False``/``"off"``: reference everywhere;
    ``"interpret"``: also on CPU tensors (needs ``TRITON_INTERPRET=1`` before Triton is imported);
    ``None``: back to the ``LIVESTYLE_FUSED`` environment variable."""
    global _mode
    if mode is True:
        mode = "auto"
    elif mode is False:
        mode = "off"
    if mode is not None and mode not in ("auto", "off", "interpret"):
        raise ValueError(f"unknown fused-kernel mode {mode!r}; expected auto, off or interpret")
    if mode == "interpret" and os.environ.get("TRITON_INTERPRET") != "1":
        raise RuntimeError("set_fused('interpret') needs TRITON_INTERPRET=1 in the environment before triton is imported")
    _mode = mode


def fused_mode() -> FusedMode:
    """The mode in force (``set_fused``, else ``LIVESTYLE_FUSED``: ``0``/``off``, ``1``/``auto``, or
    ``interpret`` with ``TRITON_INTERPRET=1``: the whole test suite through the kernels on the CPU)."""
    if _mode is not None:
        return _mode
    env = os.environ.get("LIVESTYLE_FUSED", "").strip().lower()
    if env in ("0", "off", "false", "no"):
        return "off"
    if env == "interpret" and os.environ.get("TRITON_INTERPRET") == "1":
        return "interpret"
    return "auto"


def fused_enabled(t: torch.Tensor) -> bool:
    """Whether ops on ``t`` take the fused Triton kernels (module docstring)."""
    mode = fused_mode()
    if mode == "off" or not triton_available():
        return False
    if t.is_cuda:
        return True
    return mode == "interpret" and t.device.type == "cpu"


def run_fused(name: str, fused: Callable[[], R], reference: Callable[[], R]) -> R:
    """``fused()``, or — if it raises (a GPU or Triton build that cannot compile a kernel) — one
    warning naming the op and the error, fusion off for the rest of the process, and ``reference()``.

    A kernel runs for the first time in the warm-up, outside any CUDA-graph capture, so a failing
    compile never leaves a half-captured graph; the stream keeps running on the PyTorch ops."""
    try:
        return fused()
    except Exception as exc:  # noqa: BLE001 - any compile/launch failure falls back, loudly
        if os.environ.get("LIVESTYLE_FUSED_STRICT") == "1":
            raise
        log.warning("fused kernel %s failed (%s: %s); using the PyTorch ops from now on (LIVESTYLE_FUSED=0 "
                    "silences this)", name, type(exc).__name__, str(exc).splitlines()[0][:200] if str(exc) else "")
        set_fused(False)
        return reference()
