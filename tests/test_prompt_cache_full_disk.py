"""Issue 28, point 3: a full prompt-cache disk never drops a prompt. The embedding is computed and
kept in memory; only the file write fails, which is counted and warned about once, and the stream
takes the new prompt. Real full tmpfs; the tiny model in a real process with the control API."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch
from host_helpers import can_mount_tmpfs, free_tcp_port, full_tmpfs
from test_cli_controls import Proc, http, wait_for

from livestyle.models.text import TEXT_LEN, PromptEmbeddingCache

pytestmark = pytest.mark.skipif(not can_mount_tmpfs(), reason="needs root to mount a tmpfs")


def _embedding(length: int = 8, dim: int = 64) -> torch.Tensor:
    full = torch.zeros(TEXT_LEN, dim)
    full[:length] = torch.randn(length, dim, generator=torch.Generator().manual_seed(0))
    return full


def test_a_write_to_a_full_disk_is_counted_and_the_embedding_kept(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with full_tmpfs(tmp_path / "full") as full:
        cache = PromptEmbeddingCache("m", full)
        for i in range(3):
            cache.put(f"prompt {i}", _embedding(), 8)  # raised SafetensorError (ENOSPC) through the encoder
        assert torch.equal(cache.get("prompt 2"), _embedding())  # from memory
        assert cache.stats()["write_errors"] == 3 and "No space left" in cache.stats()["last_write_error"]
        assert [p.name for p in full.rglob("*") if p.is_file()] == ["fill"]  # no half-written temporary file
    warnings = [r for r in caplog.records if "prompt cache cannot write" in r.getMessage()]
    assert len(warnings) == 1  # once, not per prompt


def test_the_tiny_model_takes_every_prompt_with_its_cache_disk_full(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    weights = Path(os.environ.get("LIVESTYLE_CACHE_DIR") or Path.home() / ".cache" / "livestyle") / "weights" / "tiny"
    if weights.is_dir():  # reuse the tiny TEST model's random weights instead of writing them again
        shutil.copytree(weights, cache / "weights" / "tiny")
    with full_tmpfs(cache / "prompt_embeddings"):
        port = free_tcp_port()
        proc = Proc(["-i", "pattern", "-o", "null", "--model", "tiny", "--size", "64x48", "--set", "model.device=cpu",
                     "--no-keys", "-q", "--api", "--api-port", str(port)], extra_env={"LIVESTYLE_CACHE_DIR": str(cache)})
        try:
            proc.read_until("livestyle: control API on", timeout=120)
            base = f"http://127.0.0.1:{port}"
            for i in range(3):
                text = f"a castle made of glass, take {i}"
                assert http("POST", base + "/api/prompt", body={"prompt": text})[0] == 200
                assert wait_for(lambda t=text: http("GET", base + "/api/stats")[1]["generator"]["prompt"] == t, 60), \
                    http("GET", base + "/api/stats")[1]
            stats = http("GET", base + "/api/stats")[1]
        finally:
            code, err = proc.finish()
    assert stats["command_errors"] == 0, stats
    assert stats["prompt_cache"]["write_errors"] >= 3 and "No space left" in stats["prompt_cache"]["last_write_error"]
    assert code == 130 and "Traceback" not in err and "could not be encoded" not in err, err
    assert err.count("prompt cache cannot write") == 1, err
