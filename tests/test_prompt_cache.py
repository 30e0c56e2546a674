"""The on-disk prompt cache is bounded (LRU by use) and survives prompts that are not UTF-8."""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch

from livestyle.models.text import TEXT_LEN, PromptEmbeddingCache


def _embedding(seed: int, length: int = 8, dim: int = 64) -> torch.Tensor:
    full = torch.zeros(TEXT_LEN, dim)
    full[:length] = torch.randn(length, dim, generator=torch.Generator().manual_seed(seed))
    return full


def _age(path: Path, seconds_ago: float) -> None:
    t = time.time() - seconds_ago
    os.utime(path, (t, t))


def test_disk_cache_stays_under_its_cap_and_evicts_the_least_recently_used(tmp_path: Path) -> None:
    probe = PromptEmbeddingCache("m", tmp_path / "probe")
    probe.put("probe", _embedding(0), 8)
    one_file = probe.disk_usage()
    cache = PromptEmbeddingCache("m", tmp_path, max_disk_bytes=int(3.5 * one_file))
    for i in range(3):
        cache.put(f"prompt {i}", _embedding(i), 8)
        _age(cache.path_for(f"prompt {i}"), 100 - i)  # prompt 0 oldest
    reader = PromptEmbeddingCache("m", tmp_path, max_disk_bytes=int(3.5 * one_file))
    assert reader.get("prompt 0") is not None  # a disk hit makes prompt 0 the most recent
    reader.put("prompt 3", _embedding(3), 8)
    assert reader.disk_usage() <= int(3.5 * one_file)
    assert reader.evicted == 1
    assert not reader.path_for("prompt 1").exists()  # the least recently used went
    for kept in ("prompt 0", "prompt 2", "prompt 3"):
        assert reader.path_for(kept).exists(), kept
    for i in range(20):  # a flood of distinct prompts never grows the folder past the cap
        reader.put(f"flood {i}", _embedding(100 + i), 8)
    assert reader.disk_usage() <= int(3.5 * one_file)
    assert len(list((tmp_path / "m").glob("*.safetensors"))) == 3


def test_a_prompt_with_a_lone_surrogate_is_cached_in_memory_only(tmp_path: Path) -> None:
    cache = PromptEmbeddingCache("m", tmp_path)
    prompt = "x\ud800y"
    assert cache.path_for(prompt) is None
    cache.put(prompt, _embedding(1), 8)  # used to raise UnicodeEncodeError in the digest
    assert torch.equal(cache.get(prompt), _embedding(1))
    assert list(tmp_path.rglob("*.safetensors")) == []


def test_memory_keeps_only_the_real_tokens_and_gives_back_the_padded_embedding() -> None:
    """A streamer typing a new prompt every few seconds must not grow the process: 64 remembered
    umT5-XXL prompts of ~20 tokens are ~10 MiB, not 64 x [512, 4096] (the soak found ~300 MiB)."""
    cache = PromptEmbeddingCache("m", None, capacity=64)
    dim, length = 4096, 20
    for k in range(100):
        emb = torch.zeros(TEXT_LEN, dim, dtype=torch.bfloat16)
        emb[:length] = torch.randn(length, dim).to(torch.bfloat16) + k
        cache.put(f"prompt {k}", emb, length)
    assert cache.memory_bytes() == 64 * length * dim * 2
    got = cache.get("prompt 99")
    assert got is not None and got.shape == (TEXT_LEN, dim) and got.dtype == torch.bfloat16
    assert torch.all(got[length:] == 0) and float(got[:length].float().mean()) > 90
    assert cache.get("prompt 0") is None  # evicted: least recently used
