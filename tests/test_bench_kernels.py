"""Kernel names as the H100 profiles print them fall into the categories the efficiency work is judged by."""

from __future__ import annotations

import pytest

from livestyle.cli.bench_kernels import format_kernel_table, kernel_category


@pytest.mark.parametrize(("name", "category"), [
    ("cudnn_generated_fort_native_sdpa_sm90_flash_fprop_wgmma_f16_knob_7_64x128x128_4x1x1_cga1x1x1_kernel0", "attention"),
    ("flash_fwd_splitkv_kernel", "attention"),
    ("fmha_cutlassF_bf16_aligned_64x128_rf_sm80", "attention"),
    ("sm90_xmma_fprop_implicit_gemm_bf16bf16_bf16f32_f32_nhwckrsc_nhwc_tilesize256x64x32", "conv"),
    ("void cutlass__5x_cudnn::Kernel<cutlass_tensorop_bf16_s16816fprop_optimized_bf16_256x64_32x4_nhwc>", "conv"),
    ("nvjet_sm90_qqtst_128x128_128x6_2x1_v_bz_ovscale_bias_TNT", "gemm"),
    ("nvjet_sm90_tst_192x160_64x4_1x1_h_bz_coopB_bias_TNT", "gemm"),
    ("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x256x64", "gemm"),
    ("_norm_modulate_kernel", "elementwise"),
    ("void at::native::index_elementwise_kernel<128, 4, at::native::index_copy_kernel_impl<>>", "elementwise"),
    ("void at::native::reduce_kernel<128, 4, at::native::ReduceOp<c10::BFloat16, at::native::MeanOps<>>>", "elementwise"),
    ("Memcpy HtoD (Pinned -> Device)", "memcpy"),
    ("Memset (Device)", "memcpy"),
])
def test_kernel_category(name: str, category: str) -> None:
    assert kernel_category(name) == category


def test_the_table_fits_80_columns() -> None:
    prof = {"chunks": 3, "gpu_ms": 270.7,
            "by_category_ms": {"gemm": 104.6, "attention": 97.3, "elementwise": 64.1, "conv": 3.9, "memcpy": 0.8},
            "by_category_pct": {"gemm": 38.6, "attention": 35.9, "elementwise": 23.7, "conv": 1.4, "memcpy": 0.3},
            "top": [{"kernel": "cudnn_generated_fort_native_sdpa_sm90_flash_fprop_wgmma_f16_knob_7_64x128x128_4x1x1",
                     "category": "attention", "calls": 80.0, "ms": 97.28}]}
    text = format_kernel_table(prof)
    assert all(len(line) <= 80 for line in text.splitlines())
    assert "attention" in text and "97.28" in text
