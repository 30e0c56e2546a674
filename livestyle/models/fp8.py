"""FP8 (e4m3) linear layers for the DiT blocks: ``torch._scaled_mm`` with row-wise scales.

Opt-in (``CausalWanDiT.quantize_fp8()``, ``livestyle bench --fp8``): on Hopper the 14B is
GEMM-bound and fp8 GEMMs run at twice the bf16 rate. Each block Linear becomes an ``Fp8Linear``:

- weight: quantised once per output channel, ``w_fp8 = round_e4m3(w / s_w)`` with
  ``s_w = amax(|w_row|) / 448`` (``weight_scale`` ``[out, 1]`` float32), stored ``[out, in]``
  row-major (``.t()`` is the column-major operand ``_scaled_mm`` wants);
- activation: quantised per token (row) with a device-side dynamic scale ``s_x = amax(|x_row|) / 448``
  (``livestyle.models.kernels.quant.quantize_rows``: no host sync, CUDA-graph safe). On the fused
  path the kernel that produces the GEMM input (the block's LayerNorm + modulation, the FFN's
  GELU) writes it in fp8 with its scales directly, and ``forward`` takes that
  :class:`~livestyle.models.kernels.quant.QuantizedRows` as is;
- ``y = (x_fp8 @ w_fp8^T) · s_x · s_w + bias`` in the input dtype (bf16); on CUDA ``_scaled_mm``'s
  row-wise mode (``scale_a [M, 1]``, ``scale_b [1, N]``) with ``use_fast_accum`` (Hopper's faster,
  slightly less exact fp8 accumulation); on the CPU the same product on the dequantised operands.

Row-wise scales replace the earlier per-tensor ones: a whole-tensor amax needs a separate reduce
kernel before the cast (four kernels per Linear), a per-row amax fits in the producing kernel's
row program, and it is more exact (a token with large activations no longer coarsens the others).
Embeddings, the head, LayerNorm/RMSNorm and attention stay in bf16. The error against bf16 is
measured by ``benchmarks/gpu_suite.py`` (part ``fp8``); it is a speed option, not the default.
"""

from __future__ import annotations

import torch
from torch import nn

from livestyle.models.kernels.quant import quantize_rows
from livestyle.models.kernels.rows import FP8_MAX, QuantizedRows

__all__ = ["FP8_MAX", "Fp8Linear", "quantize_linears_fp8"]


def _weight_scales(w: torch.Tensor) -> torch.Tensor:
    """Per-output-channel scales ``[out, 1]`` float32 of an ``[out, in]`` weight."""
    return (w.float().abs().amax(dim=1, keepdim=True) / FP8_MAX).clamp(min=1e-12)


class Fp8Linear(nn.Module):
    """A frozen ``nn.Linear`` with an e4m3 weight and per-channel scales (module docstring)."""

    takes_quantized = True
    """Marks layers whose ``forward`` accepts :class:`QuantizedRows` (the fused path's fp8 inputs)."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        w = linear.weight.detach()
        if w.shape[0] % 16 or w.shape[1] % 16:
            raise ValueError(f"fp8 GEMMs need in/out features divisible by 16, got {tuple(w.shape)}")
        scale = _weight_scales(w)
        self.in_features = int(w.shape[1])
        self.out_features = int(w.shape[0])
        self.register_buffer("weight_fp8", (w.float() / scale).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn))
        self.register_buffer("weight_scale", scale)
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
        scale = _weight_scales(w)
        self.weight_fp8.copy_((w / scale).clamp_(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn))
        self.weight_scale.copy_(scale)

    def forward(self, x: torch.Tensor | QuantizedRows) -> torch.Tensor:
        """``x`` ``[..., in]`` (bf16/fp16/fp32), or already quantised rows → ``[..., out]`` in the
        layer's original dtype."""
        xq = x if isinstance(x, QuantizedRows) else quantize_rows(x)
        bias = None if self.bias is None else self.bias.to(self.out_dtype)
        if xq.data.is_cuda:
            y = torch._scaled_mm(xq.data, self.weight_fp8.t(), scale_a=xq.scale, scale_b=self.weight_scale.t(),
                                 bias=bias, out_dtype=self.out_dtype, use_fast_accum=self.fast_accum)
        else:  # no row-wise fp8 GEMM on the CPU: the same product on the dequantised operands
            y = (xq.data.float() * xq.scale) @ (self.weight_fp8.float() * self.weight_scale).t()
            if bias is not None:
                y = y + bias.float()
            y = y.to(self.out_dtype)
        return y.reshape(*xq.lead, self.out_features)

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
