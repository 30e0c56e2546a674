"""GPU profiles for the cards streamers own, how they are derived, and local-GPU matching (issue 13)."""

from __future__ import annotations

import pytest

from livestyle.planning.budget import Target, list_profiles, load_profile, plan
from livestyle.planning.gpu import match_profile

CARDS = ("rtx3060", "rtx4070", "rtx4080", "rtx4090", "rtx5090", "l4", "a10g", "h100", "h200", "b200")


def test_every_card_streamers_own_has_a_profile_that_states_its_method() -> None:
    assert set(CARDS) <= set(list_profiles())
    h100 = load_profile("h100")
    for name in CARDS:
        p = load_profile(name)
        assert p.measured == (name == "h100"), name
        if not p.measured:  # derived: the method is printed with the plan (--explain)
            assert p.source.startswith("derived") and any("stage times = h100 /" in n for n in p.notes), p.notes
            assert p.dit_ms("1.3b", 1) >= h100.dit_ms("1.3b", 1) or p.bf16_tflops > h100.bf16_tflops


def test_derivation_takes_the_smaller_of_compute_and_bandwidth() -> None:
    h100, l4, rtx4090 = load_profile("h100"), load_profile("l4"), load_profile("rtx4090")
    # L4: 121/989 compute but 0.3/3.35 bandwidth: bandwidth-bound, so the bandwidth ratio is used
    assert h100.dit_ms("1.3b", 1) / l4.dit_ms("1.3b", 1) == pytest.approx(0.3 / 3.35, rel=1e-6)
    assert h100.dit_ms("1.3b", 1) / rtx4090.dit_ms("1.3b", 1) == pytest.approx(165 / 989, rel=1e-6)


def test_a_12_gb_card_plans_a_1_3b_model_and_no_14b() -> None:
    best = plan(load_profile("rtx3060"), Target(fps=8, latency_ms=1500))
    assert best.candidate.model.endswith("1.3b") and best.memory_gib <= 12


@pytest.mark.parametrize(("device", "profile"), [
    ("NVIDIA GeForce RTX 4090", "rtx4090"),
    ("NVIDIA GeForce RTX 3060", "rtx3060"),
    ("NVIDIA GeForce RTX 4070 Ti SUPER", "rtx4070"),
    ("NVIDIA H100 80GB HBM3", "h100"),
    ("NVIDIA H200", "h200"),
    ("NVIDIA L4", "l4"),
    ("NVIDIA L40S", None),
    ("NVIDIA A10G", "a10g"),
    ("NVIDIA B200", "b200"),
    ("Tesla T4", None),
])
def test_local_gpu_names_match_profiles(device: str, profile: str | None) -> None:
    assert match_profile(device) == profile
