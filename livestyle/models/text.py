"""Prompts to embeddings: Wan's umT5-XXL encoder (transformers ``UMT5EncoderModel``), its tokenizer and a prompt cache.

Text handling follows Wan 2.1 (Wan-Video/Wan2.1 wan/modules/t5.py and tokenizers.py): ``ftfy`` fixes, HTML is unescaped twice,
whitespace collapses; the tokenizer pads to 512 tokens (EOS appended, longer prompts truncated
with a logged warning) and the encoder's outputs past each prompt's length are set to zero.
An empty prompt is allowed (the unconditional embedding: just EOS).

Embeddings: ``[512, D]`` per prompt (``D`` = 4096 for umT5-XXL), in the encoder's dtype (bf16
for the release), zero beyond the prompt's token count.

:class:`PromptEncoder` loads the 11 GB encoder only when a prompt is not cached, on the device
the caller picks, and :meth:`PromptEncoder.unload` frees it again. Its cache lives in memory and
on disk (one safetensors file per prompt, written atomically), keyed by the encoder's identity
and the exact prompt text, so preset prompts switch instantly and survive restarts and other
processes.

Checkpoints: Wan's ``models_t5_umt5-xxl-enc-bf16.pth`` (keys mapped by :func:`wan_to_transformers`)
or a transformers/diffusers ``text_encoder/`` folder (``config.json`` + safetensors).
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import logging
import os
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

from livestyle.errors import ModelLoadError, one_line

__all__ = [
    "DISK_CACHE_BYTES",
    "TEXT_LEN",
    "PromptEmbeddingCache",
    "PromptEncoder",
    "clean_prompt",
    "default_cache_dir",
    "load_text_encoder",
    "load_tokenizer",
    "umt5_config_from_wan_state",
    "wan_to_transformers",
]

log = logging.getLogger(__name__)

TEXT_LEN = 512
"""Tokens per prompt; the DiT's cross-attention always sees exactly this many (zero-padded)."""


def clean_prompt(text: str) -> str:
    """Wan's cleaning: ``ftfy.fix_text``, HTML-unescape twice, collapse whitespace, strip."""
    import ftfy

    text = ftfy.fix_text(text)
    text = html.unescape(html.unescape(text)).strip()
    return re.sub(r"\s+", " ", text).strip()


# -- checkpoints ----------------------------------------------------------------------------------

_WAN_BLOCK_KEYS = {
    "norm1.weight": "layer.0.layer_norm.weight",
    "attn.q.weight": "layer.0.SelfAttention.q.weight",
    "attn.k.weight": "layer.0.SelfAttention.k.weight",
    "attn.v.weight": "layer.0.SelfAttention.v.weight",
    "attn.o.weight": "layer.0.SelfAttention.o.weight",
    "pos_embedding.embedding.weight": "layer.0.SelfAttention.relative_attention_bias.weight",
    "norm2.weight": "layer.1.layer_norm.weight",
    "ffn.gate.0.weight": "layer.1.DenseReluDense.wi_0.weight",
    "ffn.fc1.weight": "layer.1.DenseReluDense.wi_1.weight",
    "ffn.fc2.weight": "layer.1.DenseReluDense.wo.weight",
}


def wan_to_transformers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename Wan umT5 encoder keys to ``UMT5EncoderModel`` keys (Wan 2.1 wan/modules/t5.py, Wan-Video/Wan2.1). Unknown keys are kept."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key == "token_embedding.weight":
            out["shared.weight"] = value
            out["encoder.embed_tokens.weight"] = value
        elif key == "norm.weight":
            out["encoder.final_layer_norm.weight"] = value
        elif m := re.match(r"blocks\.(\d+)\.(.*)", key):
            idx, rest = m.groups()
            out[f"encoder.block.{idx}.{_WAN_BLOCK_KEYS.get(rest, rest)}"] = value
        else:
            out[key] = value
    return out


def umt5_config_from_wan_state(state: dict[str, torch.Tensor], where: Path | str = "checkpoint") -> Any:
    """Derive a ``UMT5Config`` from a Wan umT5 state dict's shapes (vocab, width, heads, layers, FFN)."""
    from transformers import UMT5Config

    try:
        vocab, d_model = state["token_embedding.weight"].shape
        inner = state["blocks.0.attn.q.weight"].shape[0]
        buckets, heads = state["blocks.0.pos_embedding.embedding.weight"].shape
        d_ff = state["blocks.0.ffn.fc1.weight"].shape[0]
    except KeyError:
        raise ModelLoadError(
            f"{where} is not a Wan umT5 encoder checkpoint (no token_embedding.weight / blocks.0.attn.q.weight; "
            "expected models_t5_umt5-xxl-enc-bf16.pth or a text_encoder/ folder)"
        ) from None
    layers = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"blocks\.(\d+)\.", k)))
    return UMT5Config(
        vocab_size=int(vocab),
        d_model=int(d_model),
        d_kv=int(inner // heads),
        d_ff=int(d_ff),
        num_layers=layers,
        num_heads=int(heads),
        relative_attention_num_buckets=int(buckets),
        relative_attention_max_distance=128,
        feed_forward_proj="gated-gelu",
        dropout_rate=0.0,
        layer_norm_epsilon=1e-6,
        pad_token_id=0,
        eos_token_id=1,
        is_encoder_decoder=False,
        use_cache=False,
        architectures=["UMT5EncoderModel"],
    )


def load_text_encoder(
    path: str | Path,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.bfloat16,
) -> Any:
    """Load the umT5 encoder as ``transformers.UMT5EncoderModel`` in eval mode.

    ``path``: Wan's ``models_t5_umt5-xxl-enc-bf16.pth`` (or any file with Wan keys), or a
    ``text_encoder/`` folder with ``config.json`` and (sharded) safetensors. The model is built on
    the meta device and the checkpoint tensors are assigned, so the 11 GB encoder is never
    allocated twice. Raises :class:`ModelLoadError` for unreadable or foreign checkpoints.
    """
    from transformers import UMT5Config, UMT5EncoderModel

    from livestyle.models.state_files import assign_state_dict, read_state_dict

    path = Path(path)
    if path.is_dir() and (path / "config.json").is_file():
        try:
            config = UMT5Config.from_pretrained(str(path))
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"{path / 'config.json'} is not a valid UMT5 config ({exc})") from None
        state = read_state_dict(path)
        state = {k.removeprefix("text_encoder."): v for k, v in state.items() if isinstance(v, torch.Tensor)}
        if "shared.weight" not in state and "encoder.embed_tokens.weight" in state:
            state["shared.weight"] = state["encoder.embed_tokens.weight"]
    else:
        raw = read_state_dict(path)
        raw = {k.removeprefix("model."): v for k, v in raw.items() if isinstance(v, torch.Tensor)}
        if "shared.weight" in raw:  # a transformers state dict saved as one file
            raise ModelLoadError(f"{path} holds transformers UMT5 keys; point at its folder (with config.json) instead")
        config = umt5_config_from_wan_state(raw, path)
        state = wan_to_transformers(raw)
    state.setdefault("encoder.embed_tokens.weight", state.get("shared.weight"))  # type: ignore[arg-type]
    with torch.device("meta"):
        model = UMT5EncoderModel(config)
    assign_state_dict(model, state, path, "the umT5 encoder", dtype)
    model.encoder.embed_tokens = model.shared
    return model.to(device).eval().requires_grad_(False)


_TOKENIZER_FILES = ("tokenizer.json", "spiece.model")


def load_tokenizer(folder: str | Path) -> Any:
    """Load the ``google/umt5-xxl`` tokenizer from a local folder (``tokenizer.json`` and/or ``spiece.model``)."""
    from transformers import AutoTokenizer

    folder = Path(folder)
    if not folder.is_dir():
        raise ModelLoadError(f"tokenizer folder {folder} does not exist")
    if not any((folder / name).is_file() for name in _TOKENIZER_FILES):
        raise ModelLoadError(
            f"tokenizer folder {folder} has neither tokenizer.json nor spiece.model; "
            "copy the google/umt5-xxl tokenizer files there (livestyle weights pull NAME fetches them)"
        )
    try:
        return AutoTokenizer.from_pretrained(str(folder))
    except (OSError, ValueError, ImportError) as exc:
        raise ModelLoadError(f"cannot load the tokenizer in {folder}: {str(exc).splitlines()[0]}") from None


# -- cache ----------------------------------------------------------------------------------------


def default_cache_dir() -> Path:
    """``$LIVESTYLE_CACHE_DIR/prompt_embeddings``, else ``~/.cache/livestyle/prompt_embeddings``."""
    root = os.environ.get("LIVESTYLE_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "livestyle")
    return Path(root) / "prompt_embeddings"


DISK_CACHE_BYTES = 512 * 1024 * 1024
"""Default cap of one encoder's on-disk prompt cache (about 3000 typical prompts of umT5-XXL)."""


class PromptEmbeddingCache:
    """Prompt embeddings in memory (most recent ``capacity``) and, if ``directory`` is set, on disk.

    Keys are ``(model_key, prompt)``; memory and files hold only the prompt's real tokens
    ``[L, D]`` (umT5 pads every prompt to 512 tokens with zeros: a typical prompt is ~20 real
    tokens, so 64 remembered umT5-XXL prompts take ~10 MiB instead of 256 MiB) and are re-padded
    to ``[512, D]`` with zeros on read. Files are written to a temporary name and
    renamed, so concurrent processes never read half a file; unreadable files count as misses.
    The folder is bounded: after each write the least recently used files (by mtime, which a
    disk hit refreshes) are deleted until the folder holds at most ``max_disk_bytes``.
    Prompts that are not valid UTF-8 text (lone surrogates) are kept in memory only.

    The disk write is a side effect of encoding: a full disk, a read-only or deleted folder never
    fail ``put`` (the prompt is applied from memory). The half-written temporary file is removed,
    ``write_errors``/``last_write_error`` count it (``stats()``, shown in ``/api/stats``), one
    warning is logged (then one per ``WRITE_WARN_EVERY`` failures), and the next write tries again.
    """

    WRITE_WARN_EVERY = 100
    """After the first failed write, a warning every this many (a full disk must not fill the log too)."""

    def __init__(
        self, model_key: str, directory: Path | None, *, capacity: int = 64, max_disk_bytes: int = DISK_CACHE_BYTES
    ) -> None:
        self.model_key = model_key
        self.directory = directory / model_key if directory is not None else None
        self.capacity = capacity
        self.max_disk_bytes = max_disk_bytes
        self.evicted = 0
        self._memory: OrderedDict[str, torch.Tensor] = OrderedDict()  # prompt -> its real tokens [L, D]
        self.hits = 0
        self.disk_hits = 0
        self.misses = 0
        self.write_errors = 0
        self.last_write_error: str | None = None

    @staticmethod
    def _digest(prompt: str) -> str:
        return hashlib.sha256(prompt.encode("utf-8", "surrogatepass")).hexdigest()[:32]

    def path_for(self, prompt: str) -> Path | None:
        """The prompt's file, or None (no directory, or a prompt that cannot be stored as UTF-8)."""
        if self.directory is None or not _is_utf8(prompt):
            return None
        return self.directory / f"{self._digest(prompt)}.safetensors"

    def get(self, prompt: str) -> torch.Tensor | None:
        """The cached ``[512, D]`` embedding (CPU), or None."""
        if prompt in self._memory:
            self._memory.move_to_end(prompt)
            self.hits += 1
            return _padded(self._memory[prompt])
        path = self.path_for(prompt)
        if path is not None and path.is_file():
            from safetensors import SafetensorError
            from safetensors.torch import safe_open

            try:
                with safe_open(str(path), framework="pt") as fh:
                    meta = fh.metadata() or {}
                    tokens = fh.get_tensor("embedding")
            except (SafetensorError, OSError, ValueError) as exc:
                log.warning("ignoring unreadable prompt cache file %s (%s)", path, exc)
            else:
                if meta.get("prompt") == prompt and meta.get("model") == self.model_key:
                    with contextlib.suppress(OSError):  # recency for the LRU eviction
                        os.utime(path)
                    self._remember(prompt, tokens)
                    self.hits += 1
                    self.disk_hits += 1
                    return _padded(tokens)
        self.misses += 1
        return None

    def put(self, prompt: str, embedding: torch.Tensor, length: int) -> None:
        """Store a ``[512, D]`` embedding whose first ``length`` rows are the prompt's tokens."""
        embedding = embedding.detach().to("cpu")
        self._remember(prompt, embedding[:length].clone())  # the padding rows are zeros: not kept
        path = self.path_for(prompt)
        if path is None:
            return
        from safetensors.torch import save_file

        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            save_file(
                {"embedding": embedding[:length].contiguous()},
                str(tmp),
                metadata={"prompt": prompt, "model": self.model_key, "length": str(length)},
            )
            os.replace(tmp, path)
        except Exception as exc:  # noqa: BLE001 - OSError, SafetensorError (ENOSPC), ...: the write is a side effect
            with contextlib.suppress(OSError):
                tmp.unlink()
            self.write_errors += 1
            self.last_write_error = one_line(exc)
            if self.write_errors == 1 or self.write_errors % self.WRITE_WARN_EVERY == 0:
                log.warning("the prompt cache cannot write to %s (%s); prompts are applied and kept in memory "
                            "only (%d failed writes so far)", self.directory, self.last_write_error, self.write_errors)
            return
        self._evict(keep=path)

    def stats(self) -> dict[str, Any]:
        """``write_errors`` and ``last_write_error`` (None when every write succeeded)."""
        return {"write_errors": self.write_errors, "last_write_error": self.last_write_error}

    def memory_bytes(self) -> int:
        """Bytes the embeddings kept in memory take now."""
        return sum(t.numel() * t.element_size() for t in self._memory.values())

    def disk_usage(self) -> int:
        """Bytes the cache's files take on disk now."""
        return sum(size for _, size, _ in self._files())

    def _files(self) -> list[tuple[float, int, Path]]:
        if self.directory is None or not self.directory.is_dir():
            return []
        out = []
        for f in self.directory.glob("*.safetensors"):
            with contextlib.suppress(OSError):  # another process may evict it meanwhile
                st = f.stat()
                out.append((st.st_mtime, st.st_size, f))
        return out

    def _evict(self, keep: Path) -> None:
        files = sorted(self._files())
        total = sum(size for _, size, _ in files)
        for _, size, f in files:
            if total <= self.max_disk_bytes:
                break
            if f == keep:
                continue
            with contextlib.suppress(FileNotFoundError):
                f.unlink()
                self.evicted += 1
            total -= size

    def _remember(self, prompt: str, embedding: torch.Tensor) -> None:
        self._memory[prompt] = embedding
        self._memory.move_to_end(prompt)
        while len(self._memory) > self.capacity:
            self._memory.popitem(last=False)


def _padded(tokens: torch.Tensor) -> torch.Tensor:
    """``[L, D]`` real tokens -> ``[512, D]`` with zero rows after them (a new tensor)."""
    full = tokens.new_zeros((TEXT_LEN, tokens.shape[1]))
    full[: tokens.shape[0]] = tokens
    return full


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _model_key(path: Path, dtype: torch.dtype) -> str:
    """Identity of an encoder checkpoint: its resolved path, size and mtime (files, or every file of a folder), plus dtype."""
    path = path.resolve()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    h = hashlib.sha256(str(dtype).encode())
    for f in files:
        st = f.stat()
        h.update(f"{f}|{st.st_size}|{st.st_mtime_ns}".encode())
    return f"umt5-{h.hexdigest()[:16]}"


class PromptEncoder:
    """Prompt text -> ``[512, D]`` embedding, with the encoder loaded lazily and a persistent cache.

    ``encoder_path``: Wan ``.pth`` or ``text_encoder/`` folder; ``tokenizer_path``: the tokenizer
    folder. ``device``/``dtype``: where and how the encoder runs (``"cuda"`` or ``"cpu"``; bf16).
    ``cache_dir``: on-disk cache root (``"default"``: :func:`default_cache_dir` at construction time;
    ``None`` keeps the cache in memory only). ``model_key`` overrides the encoder identity used as the cache key.
    """

    def __init__(
        self,
        encoder_path: str | Path,
        tokenizer_path: str | Path,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.bfloat16,
        cache_dir: Path | str | None = "default",
        model_key: str | None = None,
        max_length: int = TEXT_LEN,
    ) -> None:
        self.encoder_path = Path(encoder_path)
        self.tokenizer_path = Path(tokenizer_path)
        if not self.encoder_path.exists():
            raise ModelLoadError(f"text encoder checkpoint {self.encoder_path} does not exist")
        self.device = torch.device(device)
        self.dtype = dtype
        self.max_length = max_length
        self.model_key = model_key or _model_key(self.encoder_path, dtype)
        root = default_cache_dir() if cache_dir == "default" else (Path(cache_dir) if cache_dir is not None else None)
        self.cache = PromptEmbeddingCache(self.model_key, root)
        self._tokenizer: Any = None
        self._model: Any = None

    @property
    def loaded(self) -> bool:
        """Whether the encoder weights are in memory."""
        return self._model is not None

    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.tokenizer_path)
        return self._tokenizer

    def load(self) -> None:
        """Load the encoder onto ``device`` now (otherwise it loads at the first cache miss)."""
        if self._model is None:
            self._model = load_text_encoder(self.encoder_path, device=self.device, dtype=self.dtype)

    def unload(self) -> None:
        """Free the encoder (the tokenizer and cached embeddings stay)."""
        self._model = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def tokenize(self, prompts: list[str], *, pad_to_max: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Clean and tokenize: ``input_ids``, ``attention_mask`` ``[B, 512]`` (int64; ``pad_to_max=False``:
        ``[B, n]``, padded only to the longest prompt). Warns about truncated prompts."""
        texts = [clean_prompt(p) for p in prompts]
        tok = self.tokenizer
        for text, ids in zip(texts, tok(texts, add_special_tokens=True)["input_ids"]):
            if len(ids) > self.max_length:
                log.warning(
                    "prompt has %d tokens; only the first %d are used: %.60s...", len(ids), self.max_length, text
                )
        batch = tok(
            texts,
            padding="max_length" if pad_to_max else "longest",
            truncation=True,
            max_length=self.max_length,
            add_special_tokens=True,
            return_tensors="pt",
        )
        return batch["input_ids"], batch["attention_mask"]

    @torch.no_grad()
    def _run(self, prompts: list[str]) -> list[tuple[torch.Tensor, int]]:
        """Encode only the real tokens: umT5 masks its padding out of every attention (the
        relative position bias depends only on token distances), so a prompt's real tokens get the
        same embeddings at any padded length; ~20-40 tokens instead of 512 is about a tenth of the
        work (tests/test_text.py holds it to transformers' UMT5EncoderModel on 512-token input).
        The rows after the real tokens are zeros, as Wan's ``T5EncoderModel`` leaves them."""
        self.load()
        ids, mask = self.tokenize(prompts, pad_to_max=False)
        hidden = self._model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).last_hidden_state
        lengths = mask.sum(dim=1).tolist()
        out = []
        for row, length in zip(hidden, lengths):
            full = torch.zeros(self.max_length, row.shape[-1], dtype=self.dtype)
            full[: int(length)] = row[: int(length)].to(device="cpu", dtype=self.dtype)
            out.append((full, int(length)))
        return out

    def encode(self, prompt: str, *, device: str | torch.device | None = None) -> torch.Tensor:
        """One prompt -> ``[512, D]`` embedding (encoder dtype) on ``device`` (default CPU), from cache when possible."""
        return self.encode_batch([prompt], device=device)[0]

    def encode_batch(self, prompts: list[str], *, device: str | torch.device | None = None) -> torch.Tensor:
        """Prompts -> ``[B, 512, D]``; only uncached prompts reach the encoder (in one batch)."""
        found: dict[str, torch.Tensor] = {}
        todo: list[str] = []
        for p in prompts:
            hit = self.cache.get(p) if p not in found else found[p]
            if hit is None:
                if p not in todo:
                    todo.append(p)
            else:
                found[p] = hit
        if todo:
            for p, (emb, length) in zip(todo, self._run(todo)):
                self.cache.put(p, emb, length)
                found[p] = emb
        stacked = torch.stack([found[p] for p in prompts])
        return stacked.to(device) if device is not None else stacked

    def __repr__(self) -> str:
        return f"PromptEncoder({self.encoder_path.name}, device={self.device}, loaded={self.loaded}, key={self.model_key})"
