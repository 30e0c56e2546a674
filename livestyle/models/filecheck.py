"""What ``livestyle weights verify`` can check in a model file without a published hash.

For each file role it reads only the file's header and tensor table — the safetensors JSON header,
or a PyTorch zip pickle opened memory-mapped (no tensor data is read) — and checks the container,
tensor names and shapes against the model the registry entry names (``dit: 1.3b`` → the 1.3B
transformer, its Wan VAE, umT5-XXL and TAEHV; ``dit: tiny`` → the tiny test stack). A file that
does not fit raises :class:`~livestyle.errors.WeightsError` with one line naming the role and what
is wrong; a file that fits returns the list of checks it passed. What could not be checked is
listed by the caller (``livestyle.models.weights_verify.verify``) as "unverified".
"""

from __future__ import annotations

import json
import re
import struct
import zipfile
from pathlib import Path
from typing import Protocol

import torch

from livestyle.errors import ModelLoadError, WeightsError

__all__ = ["STRUCTURE_ROLES", "CheckedModel", "check_structure", "file_kind", "tensor_index", "umt5_wan_shapes"]


class CheckedModel(Protocol):
    """What the checks read of a registry entry (``livestyle.models.weights.ModelSpec`` has it all);
    a protocol so this module does not import the registry that calls it."""

    @property
    def name(self) -> str: ...
    @property
    def dit(self) -> str | None: ...
    @property
    def container(self) -> str | None: ...
    @property
    def adapter(self) -> dict[str, float]: ...


#: Roles whose tensor names and shapes :func:`check_structure` knows.
STRUCTURE_ROLES = ("dit", "lora", "vae", "text_encoder", "taehv", "tokenizer")

_ST_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool, "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2,
}
#: umT5-XXL encoder as Wan ships it (Wan 2.1 wan/modules/t5.py, Wan-Video/Wan2.1): vocab, d_model, heads, d_kv, d_ff, layers, buckets.
UMT5_XXL = (256384, 4096, 64, 64, 10240, 24, 32)


def file_kind(path: Path) -> str:
    """``"safetensors"``, ``"index"`` (sharded safetensors), ``"zip-pickle"`` or ``"pickle"`` from the
    file's first bytes; anything else raises a one-line :class:`WeightsError`."""
    if path.name.endswith(".safetensors.index.json"):
        return "index"
    with path.open("rb") as fh:
        head = fh.read(16)
    if head[:4] == b"PK\x03\x04":
        return "zip-pickle"
    if len(head) >= 9 and head[8:9] == b"{":
        return "safetensors"
    if head[:1] == b"\x80":  # pickle protocol opcode: torch.save's legacy (non-zip) format
        return "pickle"
    shown = head[:8].hex() or "empty"
    raise WeightsError(f"{path.name} is neither safetensors nor a PyTorch checkpoint (first bytes {shown}); "
                       "it is not a model file — download it again")


def _safetensors_header(path: Path) -> dict[str, torch.Tensor]:
    size = path.stat().st_size
    with path.open("rb") as fh:
        raw = fh.read(8)
        (length,) = struct.unpack("<Q", raw) if len(raw) == 8 else (size,)
        if length > min(size - 8, 100 << 20):
            raise WeightsError(f"{path.name}: safetensors header length {length} does not fit a {size}-byte file; truncated or not safetensors")
        try:
            header = json.loads(fh.read(length))
        except ValueError as exc:
            raise WeightsError(f"{path.name}: safetensors header is not valid JSON ({exc}); truncated or corrupt") from None
    tensors: dict[str, torch.Tensor] = {}
    end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = _ST_DTYPES.get(info.get("dtype", ""), torch.uint8)
        tensors[name] = torch.empty(info["shape"], dtype=dtype, device="meta")
        end = max(end, int(info["data_offsets"][1]))
    if 8 + length + end != size:
        raise WeightsError(f"{path.name} is {size} bytes but its safetensors header describes {8 + length + end}; truncated or padded — download it again")
    return tensors


def _zip_pickle(path: Path) -> dict:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise WeightsError(f"{path.name} has a broken PyTorch zip structure ({exc}); truncated — download it again") from None
    if not any(n.endswith("/data.pkl") or n == "data.pkl" for n in names):
        raise WeightsError(f"{path.name} is a zip file without data.pkl; not a PyTorch checkpoint")
    return _torch_load(path, mmap=True)


def _torch_load(path: Path, *, mmap: bool) -> dict:
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for corrupt pickles
        raise WeightsError(f"{path.name} cannot be read as a PyTorch checkpoint ({type(exc).__name__}: {str(exc)[:120]})") from None
    if not isinstance(obj, dict):
        raise WeightsError(f"{path.name} holds a {type(obj).__name__}, expected a dict of tensors")
    return obj


def tensor_index(path: Path) -> tuple[str, dict]:
    """``(kind, dict)`` of a checkpoint without reading its tensor data: safetensors headers become
    meta tensors; zip pickles are memory-mapped; legacy pickles are read whole."""
    kind = file_kind(path)
    if kind == "safetensors":
        return kind, _safetensors_header(path)
    if kind == "index":
        try:
            weight_map: dict[str, str] = json.loads(path.read_text())["weight_map"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise WeightsError(f"{path.name} is not a valid shard index ({exc})") from None
        out: dict[str, torch.Tensor] = {}
        for shard in sorted(set(weight_map.values())):
            if not (path.parent / shard).is_file():
                raise WeightsError(f"shard {shard} listed in {path.name} is missing")
            out.update(_safetensors_header(path.parent / shard))
        return kind, out
    if kind == "zip-pickle":
        return kind, _zip_pickle(path)
    return kind, _torch_load(path, mmap=False)


def _checkpoint_file(path: Path) -> Path:
    if not path.is_dir():
        return path
    folder = path / "transformer" if (path / "transformer").is_dir() else path
    candidates = sorted(folder.glob("*.safetensors.index.json")) or sorted(folder.glob("*.safetensors")) or sorted(
        p for p in folder.iterdir() if p.suffix in (".pt", ".pth"))
    if len(candidates) != 1 and not (candidates and candidates[0].name.endswith(".index.json")):
        raise WeightsError(f"{path} holds {len(candidates)} checkpoint files; expected one")
    return candidates[0]


def _match(state: dict, expected: dict[str, torch.Size], what: str, *, wider: tuple[str, ...] = ()) -> None:
    missing = [k for k in expected if k not in state]
    extra = [k for k in state if k not in expected]
    if missing or extra:
        raise WeightsError(f"does not match {what}: {len(missing)} missing tensors (e.g. {missing[:2]}), "
                           f"{len(extra)} unexpected (e.g. {extra[:2]})")
    for key, shape in expected.items():
        got = tuple(state[key].shape)
        if got != tuple(shape) and not (key in wider and got[1:] == tuple(shape)[1:] and got[0] >= shape[0]):
            raise WeightsError(f"{key} has shape {got}, {what} has {tuple(shape)}")


def _meta_shapes(module_factory: object) -> dict[str, torch.Size]:
    with torch.device("meta"):
        module = module_factory()  # type: ignore[operator]
    return {k: v.shape for k, v in module.state_dict().items()}


def _dit_config(model: CheckedModel):  # type: ignore[no-untyped-def]
    from livestyle.models.dit import DIT_CONFIGS

    if model.dit not in DIT_CONFIGS:
        raise WeightsError(f"model {model.name!r} names transformer size {model.dit!r}; known: {', '.join(DIT_CONFIGS)}")
    return DIT_CONFIGS[model.dit]


def _describe(cfg) -> str:  # type: ignore[no-untyped-def]
    return f"dim {cfg.dim}, {cfg.num_layers} layers, ffn {cfg.ffn_dim}, text_dim {cfg.text_dim}"


def _check_dit(path: Path, model: CheckedModel) -> list[str]:
    from livestyle.models.checkpoints import dit_state_dict_from, infer_dit_config
    from livestyle.models.dit import CausalWanDiT

    kind, obj = tensor_index(_checkpoint_file(path))
    try:
        fmt, state = dit_state_dict_from(obj, path, model.container)
        found = infer_dit_config(state)
    except ModelLoadError as exc:
        raise WeightsError(str(exc)) from None
    want = _dit_config(model)
    if (found.dim, found.num_layers, found.ffn_dim, found.text_dim) != (want.dim, want.num_layers, want.ffn_dim, want.text_dim):
        raise WeightsError(f"holds a transformer with {_describe(found)}, but {model.name} needs the {model.dit} one "
                           f"({_describe(want)}); wrong model size — get the right file")
    _match(state, _meta_shapes(lambda: CausalWanDiT(want)), f"the {model.dit} transformer")
    taken = f", weights '{model.container}'" if model.container and isinstance(obj.get(model.container), dict) else ""
    return [f"{kind} header", f"{len(state)} tensors fit the {model.dit} transformer ({fmt} layout{taken})"]


def _check_lora(path: Path, model: CheckedModel) -> list[str]:
    from livestyle.models.checkpoints import read_lora

    _, _ = tensor_index(path)  # format header first: one clear line for junk
    try:
        pairs, alpha = read_lora(path)
    except ModelLoadError as exc:
        raise WeightsError(str(exc)) from None
    from livestyle.models.dit import CausalWanDiT

    want = _dit_config(model)
    shapes = _meta_shapes(lambda: CausalWanDiT(want))
    ranks = {int(a.shape[0]) for a, _ in pairs.values()}
    rank = model.adapter.get("rank") if model.adapter else None
    if rank is not None and ranks != {rank}:
        raise WeightsError(f"LoRA rank {sorted(ranks)} but the registry's adapter says rank {rank}")
    for module, (a, b) in pairs.items():
        w = shapes.get(f"{module}.weight")
        if w is None:
            raise WeightsError(f"LoRA targets {module}, which the {model.dit} transformer does not have")
        if (int(b.shape[0]), int(a.shape[1])) != tuple(w):
            raise WeightsError(f"LoRA {module} is {(int(b.shape[0]), int(a.shape[1]))}, the {model.dit} transformer has {tuple(w)}")
    source = f"alpha {alpha:g} from the file" if alpha is not None else (
        f"alpha {model.adapter['alpha']:g} from the registry (the file has none)" if model.adapter and "alpha" in model.adapter
        else "no alpha anywhere: scale 1")
    return ["zip-pickle header", f"{len(pairs)} LoRA modules of rank {'/'.join(map(str, sorted(ranks)))} fit the {model.dit} transformer; {source}"]


def _check_vae(path: Path, model: CheckedModel) -> list[str]:
    from livestyle.models.vae import VAE_CONFIGS, WanVAE

    kind, obj = tensor_index(path)
    state = {k.removeprefix("vae.").removeprefix("model."): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    name = "tiny" if model.dit == "tiny" else "wan2.1"
    _match(state, _meta_shapes(lambda: WanVAE(VAE_CONFIGS[name])), f"the {name} VAE")
    return [f"{kind} header", f"{len(state)} tensors fit the {name} VAE"]


def umt5_wan_shapes(vocab: int, d_model: int, heads: int, d_kv: int, d_ff: int, layers: int, buckets: int) -> dict[str, torch.Size]:
    """Key → shape of a Wan-named umT5 encoder checkpoint (Wan 2.1 wan/modules/t5.py, Wan-Video/Wan2.1)."""
    inner = heads * d_kv
    shapes = {"token_embedding.weight": torch.Size([vocab, d_model]), "norm.weight": torch.Size([d_model])}
    for i in range(layers):
        p = f"blocks.{i}."
        shapes.update({
            p + "norm1.weight": torch.Size([d_model]), p + "norm2.weight": torch.Size([d_model]),
            p + "attn.q.weight": torch.Size([inner, d_model]), p + "attn.k.weight": torch.Size([inner, d_model]),
            p + "attn.v.weight": torch.Size([inner, d_model]), p + "attn.o.weight": torch.Size([d_model, inner]),
            p + "ffn.gate.0.weight": torch.Size([d_ff, d_model]), p + "ffn.fc1.weight": torch.Size([d_ff, d_model]),
            p + "ffn.fc2.weight": torch.Size([d_model, d_ff]), p + "pos_embedding.embedding.weight": torch.Size([buckets, heads]),
        })
    return shapes


def _check_text_encoder(path: Path, model: CheckedModel) -> list[str]:
    kind, obj = tensor_index(path)
    state = {k.removeprefix("model."): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if model.dit == "tiny":
        from livestyle.models.testing.stack import tiny_umt5_config

        c = tiny_umt5_config()
        dims = (c.vocab_size, c.d_model, c.num_heads, c.d_kv, c.d_ff, c.num_layers, c.relative_attention_num_buckets)  # type: ignore[attr-defined]
        what = "the tiny umT5"
    else:
        dims, what = UMT5_XXL, "umT5-XXL"
    _match(state, umt5_wan_shapes(*dims), what)
    return [f"{kind} header", f"{len(state)} tensors fit {what}"]


def _check_taehv(path: Path, model: CheckedModel) -> list[str]:
    from livestyle.models.taehv import TAEHV, TAEHV_CONFIGS

    kind, obj = tensor_index(path)
    state = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    name = "tiny" if model.dit == "tiny" else "taew2_1"
    tgrow = tuple(k for k in state if re.fullmatch(r"decoder\.\d+\.conv\.weight", k))
    _match(state, _meta_shapes(lambda: TAEHV(TAEHV_CONFIGS[name])), f"TAEHV {name}", wider=tgrow)
    return [f"{kind} header", f"{len(state)} tensors fit TAEHV {name}"]


def _check_tokenizer(path: Path, model: CheckedModel) -> list[str]:
    found = [n for n in ("tokenizer.json", "spiece.model") if (path / n).is_file()]
    if not found:
        raise WeightsError(f"{path} has neither tokenizer.json nor spiece.model; not a umT5 tokenizer folder")
    return [f"tokenizer files present ({', '.join(found)})"]


_CHECKS = {
    "dit": _check_dit, "lora": _check_lora, "vae": _check_vae,
    "text_encoder": _check_text_encoder, "taehv": _check_taehv, "tokenizer": _check_tokenizer,
}


def check_structure(role: str, path: Path, model: CheckedModel) -> list[str]:
    """Check ``path`` (file ``role`` of ``model``) against the model config; returns the checks passed.

    Raises :class:`WeightsError` (one line) when the file is not a checkpoint, is truncated, or
    holds other tensors than the model needs (wrong size, wrong model). Roles outside
    :data:`STRUCTURE_ROLES` return an empty list (nothing checked).
    """
    check = _CHECKS.get(role)
    return check(path, model) if check is not None else []
