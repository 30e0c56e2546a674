"""FP8 (e4m3) linear layers for the DiT blocks: ``torch._scaled_mm`` with per-tensor scales.

Opt-in (``CausalWanDiT.quantize_fp8()``, ``livestyle bench --fp8``): on Hopper the 14B is
GEMM-bound and fp8 GEMMs run at twice the bf16 rate. Each block Linear becomes an ``Fp8Linear``:

- weight: quantised once, ``w_fp8 = round_e4m3(w / s_w)`` with ``s_w = amax(|w|) / 448`` (float32
  scalar), stored ``[out, in]`` row-major (``.t()`` is the column-major operand ``_scaled_mm`` wants);
- activation: quantised per call with a device-side dynamic scale ``s_x = amax(|x|) / 448`` (no
  host sync, CUDA-graph safe);
- ``y = (x_fp8 @ w_fp8^T) · s_x · s_w + bias`` in the input dtype (bf16); on CUDA with
  ``use_fast_accum`` (Hopper's faster, slightly less exact fp8 accumulation).

Embeddings, the head, LayerNorm/RMSNorm and attention stay in bf16. The error against bf16 is
measured by ``benchmarks/gpu_suite.py`` (part ``fp8``); it is a speed option, not the default.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["FP8_MAX", "Fp8Linear", "quantize_linears_fp8"]

FP8_MAX = 448.0
"""Largest finite float8_e4m3fn value."""


class Fp8Linear(nn.Module):
    """A frozen ``nn.Linear`` with an e4m3 weight and a per-tensor scale (module docstring)."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        w = linear.weight.detach()
        if w.shape[0] % 16 or w.shape[1] % 16:
            raise ValueError(f"fp8 GEMMs need in/out features divisible by 16, got {tuple(w.shape)}")
        scale = (w.abs().amax().float() / FP8_MAX).clamp(min=1e-12)
        self.in_features = int(w.shape[1])
        self.out_features = int(w.shape[0])
        self.register_buffer("weight_fp8", (w.float() / scale).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn))
        self.register_buffer("weight_scale", scale.reshape(()))
        bias = linear.bias.detach().clone() if linear.bias is not None else None
        self.register_buffer("bias", bias)
        self.out_dtype = w.dtype
        self.fast_accum = w.is_cuda  # Hopper's fast fp8 accumulation (the CPU kernel has none)

    @torch.no_grad()
    def requantize_(self, weight: torch.Tensor) -> None:
        """Quantise a new ``[out, in]`` weight (any float dtype) into this layer's buffers in place
        (a LoRA switch: same storage, so captured CUDA graphs replay the new weight)."""
        if tuple(weight.shape) != (self.out_features, self.in_features):
            raise ValueError(f"weight must be {(self.out_features, self.in_features)}, got {tuple(weight.shape)}")
        w = weight.float()
        scale = (w.abs().amax() / FP8_MAX).clamp(min=1e-12)
        self.weight_fp8.copy_((w / scale).clamp_(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn))
        self.weight_scale.copy_(scale.reshape(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``[..., in]`` (bf16/fp16/fp32) → ``[..., out]`` in the layer's original dtype."""
        shape = x.shape
        x2 = x.reshape(-1, shape[-1])
        x_scale = (torch.linalg.vector_norm(x2, float("inf"), dtype=torch.float32) / FP8_MAX).clamp(min=1e-12)
        # clamp: e4m3fn has no inf, a value rounded past 448 would become NaN
        xq = (x2 / x_scale.to(x2.dtype)).clamp_(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn)
        bias = None if self.bias is None else self.bias.to(self.out_dtype)
        y = torch._scaled_mm(xq, self.weight_fp8.t(), scale_a=x_scale, scale_b=self.weight_scale,
                             bias=bias, out_dtype=self.out_dtype, use_fast_accum=self.fast_accum)
        return y.reshape(*shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, fp8_e4m3"


def quantize_linears_fp8(module: nn.Module) -> int:
    """Replace every ``nn.Linear`` inside ``module`` by an ``Fp8Linear`` in place; returns how many."""
    count = 0
    for name, child in list(module.named_children()):
        if isinstance(child, nn.Linear):
            setattr(module, name, Fp8Linear(child))
            count += 1
        else:
            count += quantize_linears_fp8(child)
    return count
