"""umT5 prompts: Wan key mapping checked against an independent Wan-style forward, transformers parity,
Wan text cleaning, padding/truncation, the embedding cache across processes, bad input."""

from __future__ import annotations

import logging
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from livestyle.errors import ModelLoadError
from livestyle.models.testing.stack import (
    TINY_TEXT_DIM,
    random_umt5_wan_state,
    write_tokenizer,
    write_umt5_transformers,
    write_umt5_wan_pth,
)
from livestyle.models.text import (
    TEXT_LEN,
    PromptEncoder,
    clean_prompt,
    load_text_encoder,
    load_tokenizer,
)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("umt5")
    return {
        "pth": write_umt5_wan_pth(root / "models_t5_umt5-xxl-enc-bf16.pth", seed=5),
        "folder": write_umt5_transformers(root / "text_encoder", seed=5),
        "tokenizer": write_tokenizer(root / "google" / "umt5-xxl"),
    }


def _wan_reference(state: dict[str, torch.Tensor], ids: torch.Tensor, mask: torch.Tensor, heads: int) -> torch.Tensor:
    """Wan's umT5 encoder written out from its definition (Wan 2.1 wan/modules/t5.py, Wan-Video/Wan2.1), in fp32."""
    s = {k: v.float() for k, v in state.items()}

    def norm(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * w

    def buckets(length: int, num: int, max_dist: int = 128) -> torch.Tensor:
        pos = torch.arange(length)
        rel = pos[None, :] - pos[:, None]
        half = num // 2
        out = (rel > 0).long() * half
        rel = rel.abs()
        exact = half // 2
        large = exact + (torch.log(rel.float().clamp(min=1) / exact) / math.log(max_dist / exact) * (half - exact)).long()
        large = large.clamp(max=half - 1)
        return out + torch.where(rel < exact, rel, large)

    b, n = ids.shape
    x = s["token_embedding.weight"][ids]
    layers = 1 + max(int(k.split(".")[1]) for k in s if k.startswith("blocks."))
    bias_mask = torch.zeros(b, 1, 1, n).masked_fill(mask[:, None, None, :] == 0, torch.finfo(torch.float32).min)
    for i in range(layers):
        p = f"blocks.{i}."
        h = norm(x, s[p + "norm1.weight"])
        q, k, v = (h @ s[p + f"attn.{c}.weight"].T for c in "qkv")
        q, k, v = (t.view(b, n, heads, -1) for t in (q, k, v))
        table = s[p + "pos_embedding.embedding.weight"]
        pos_bias = table[buckets(n, table.shape[0])].permute(2, 0, 1)[None]
        logits = torch.einsum("binc,bjnc->bnij", q, k) + pos_bias + bias_mask  # no 1/sqrt(d)
        att = torch.einsum("bnij,bjnc->binc", logits.softmax(-1), v).reshape(b, n, -1)
        x = x + att @ s[p + "attn.o.weight"].T
        h = norm(x, s[p + "norm2.weight"])
        gate = torch.nn.functional.gelu(h @ s[p + "ffn.gate.0.weight"].T, approximate="tanh")
        x = x + (gate * (h @ s[p + "ffn.fc1.weight"].T)) @ s[p + "ffn.fc2.weight"].T
    return norm(x, s["norm.weight"])


@torch.no_grad()
def test_wan_keys_match_an_independent_wan_forward(files: dict[str, Path]) -> None:
    state = random_umt5_wan_state(seed=5)
    model = load_text_encoder(files["pth"], dtype=torch.float32)
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 140, (2, 40), generator=gen)
    mask = torch.ones_like(ids)
    mask[1, 25:] = 0
    ours = model(input_ids=ids, attention_mask=mask).last_hidden_state
    ref = _wan_reference({k: v.to(torch.bfloat16) for k, v in state.items()}, ids, mask, heads=4)
    torch.testing.assert_close(ours[0], ref[0], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(ours[1, :25], ref[1, :25], atol=1e-4, rtol=1e-4)


@torch.no_grad()
def test_both_layouts_equal_transformers_own_loader(files: dict[str, Path]) -> None:
    from transformers import UMT5EncoderModel

    ref = UMT5EncoderModel.from_pretrained(str(files["folder"]), dtype=torch.float32).eval()
    ids = torch.randint(3, 140, (1, 30))
    mask = torch.ones_like(ids)
    expected = ref(input_ids=ids, attention_mask=mask).last_hidden_state
    for path in (files["pth"], files["folder"]):
        model = load_text_encoder(path, dtype=torch.float32)
        assert model.encoder.embed_tokens.weight is model.shared.weight
        torch.testing.assert_close(model(input_ids=ids, attention_mask=mask).last_hidden_state, expected, atol=1e-6, rtol=1e-6)
    assert load_text_encoder(files["pth"]).shared.weight.dtype == torch.bfloat16


def test_clean_prompt_follows_wan() -> None:
    assert clean_prompt("  a &amp;amp; b\n\t c  ") == "a & b c"
    assert clean_prompt("doesnâ€™t") == "doesn't"
    assert clean_prompt("") == ""


def test_tokenizer_pads_to_512_and_appends_eos(files: dict[str, Path], tmp_path: Path) -> None:
    enc = PromptEncoder(files["pth"], files["tokenizer"], cache_dir=None)
    ids, mask = enc.tokenize(["a watercolor painting", ""])
    assert ids.shape == mask.shape == (2, TEXT_LEN)
    n = int(mask[0].sum())
    assert ids[0, n - 1] == 1 and (ids[0, n:] == 0).all()  # </s> then <pad>
    assert mask[1].sum() == 1 and ids[1, 0] == 1  # empty prompt: just </s>
    assert not enc.loaded  # tokenizing never loads the encoder


@torch.no_grad()
def test_encode_zeroes_padding_and_truncates_with_warning(files: dict[str, Path], caplog: pytest.LogCaptureFixture) -> None:
    enc = PromptEncoder(files["pth"], files["tokenizer"], cache_dir=None, dtype=torch.float32)
    emb = enc.encode("a watercolor painting")
    _, mask = enc.tokenize(["a watercolor painting"])
    n = int(mask.sum())
    assert emb.shape == (TEXT_LEN, TINY_TEXT_DIM)
    assert emb[:n].abs().sum(-1).gt(0).all() and emb[n:].eq(0).all()
    empty = enc.encode("")
    assert empty[:1].abs().sum() > 0 and empty[1:].eq(0).all()
    with caplog.at_level(logging.WARNING, logger="livestyle.models.text"):
        long = enc.encode("watercolor " * 700)
    assert long.abs().sum(-1).gt(0).all()
    assert any("only the first 512 are used" in r.getMessage() for r in caplog.records)
    batch = enc.encode_batch(["a watercolor painting", "", "a watercolor painting"])
    assert torch.equal(batch[0], emb) and torch.equal(batch[2], emb) and torch.equal(batch[1], empty)
    enc.unload()
    assert not enc.loaded
    assert torch.equal(enc.encode("a watercolor painting"), emb) and not enc.loaded  # memory cache


_SECOND_PROCESS = """
import sys, torch
from livestyle.models.text import PromptEncoder
enc = PromptEncoder(sys.argv[1], sys.argv[2], cache_dir=sys.argv[3])
emb = enc.encode("neon cyberpunk street")
print(enc.cache.disk_hits, enc.loaded)
torch.save(emb, sys.argv[4])
"""


@torch.no_grad()
def test_disk_cache_hits_in_another_process(files: dict[str, Path], tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    enc = PromptEncoder(files["pth"], files["tokenizer"], cache_dir=cache)
    emb = enc.encode("neon cyberpunk street")
    assert enc.cache.misses == 1 and enc.loaded
    stored = list(cache.rglob("*.safetensors"))
    assert len(stored) == 1 and stored[0].parent.name == enc.model_key
    out = tmp_path / "emb.pt"
    proc = subprocess.run(  # noqa: PLW1510 - the return code is asserted below
        [sys.executable, "-c", textwrap.dedent(_SECOND_PROCESS), str(files["pth"]), str(files["tokenizer"]), str(cache), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["1", "False"]  # a disk hit, and the encoder was never loaded
    assert torch.equal(torch.load(out), emb)
    # another encoder (different file) does not see these entries
    other = PromptEncoder(files["folder"], files["tokenizer"], cache_dir=cache)
    assert other.model_key != enc.model_key and other.cache.get("neon cyberpunk street") is None
    # a damaged cache file is a miss, not a crash
    stored[0].write_bytes(b"garbage")
    fresh = PromptEncoder(files["pth"], files["tokenizer"], cache_dir=cache)
    assert fresh.cache.get("neon cyberpunk street") is None


def test_bad_input(files: dict[str, Path], tmp_path: Path) -> None:
    empty = tmp_path / "tok"
    empty.mkdir()
    (empty / "tokenizer_config.json").write_text("{}")
    with pytest.raises(ModelLoadError, match=r"tokenizer folder .*tok has neither tokenizer.json nor spiece.model"):
        load_tokenizer(empty)
    with pytest.raises(ModelLoadError, match=r"tokenizer folder .*missing does not exist"):
        load_tokenizer(tmp_path / "missing")
    with pytest.raises(ModelLoadError, match="text encoder checkpoint .*nope.pth does not exist"):
        PromptEncoder(tmp_path / "nope.pth", files["tokenizer"])
    truncated = tmp_path / "t5.pth"
    truncated.write_bytes(files["pth"].read_bytes()[:300])
    with pytest.raises(ModelLoadError, match="is not a readable PyTorch checkpoint"):
        load_text_encoder(truncated)
    foreign = tmp_path / "foreign.pth"
    torch.save({"weight": torch.zeros(1)}, foreign)
    with pytest.raises(ModelLoadError, match="is not a Wan umT5 encoder checkpoint"):
        load_text_encoder(foreign)


@torch.no_grad()
def test_real_token_encoding_equals_transformers_on_512_padded_input(files: dict[str, Path]) -> None:
    """The encoder runs on the real tokens only; transformers' own UMT5EncoderModel on the
    512-token padded input gives the same rows for the real tokens (the padding is masked)."""
    from transformers import UMT5EncoderModel

    ref = UMT5EncoderModel.from_pretrained(str(files["folder"]), dtype=torch.float32).eval()
    enc = PromptEncoder(files["folder"], files["tokenizer"], cache_dir=None, dtype=torch.float32)
    prompts = ["a watercolor painting of a fox in the snow", "neon", ""]
    ids, mask = enc.tokenize(prompts)  # [3, 512]
    want = ref(input_ids=ids, attention_mask=mask).last_hidden_state
    calls: list[tuple[int, ...]] = []
    enc.load()
    hook = enc._model.register_forward_pre_hook(lambda _m, _a, kwargs: calls.append(tuple(kwargs["input_ids"].shape)),
                                                with_kwargs=True)
    got = enc.encode_batch(prompts)
    hook.remove()
    for i, n in enumerate(mask.sum(1).tolist()):
        torch.testing.assert_close(got[i, :n], want[i, :n], atol=1e-5, rtol=1e-5)
        assert got[i, n:].eq(0).all()
    assert got.shape == (3, TEXT_LEN, TINY_TEXT_DIM)
    assert calls == [(3, int(mask.sum(1).max()))] and calls[0][1] < TEXT_LEN  # one pass over the real tokens
