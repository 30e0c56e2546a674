"""Wan 2.1 LoRAs: read every common layout, merge into a live ``CausalWanDiT``, switch between chunks.

Layouts read (module names are normalised to the original Wan names of ``livestyle.models.dit``):

- PEFT / diffusers: ``transformer.blocks.N.attn1.to_q.lora_A.weight`` / ``.lora_B.weight`` (also
  ``lora_A.default.weight``, the ``base_model.model.`` prefix of PEFT saves: LongLive's trainer file);
- original Wan names (DiffSynth, musubi): ``blocks.N.self_attn.q.lora_down.weight`` / ``.lora_up.weight``
  with an optional per-layer ``blocks.N.self_attn.q.alpha``, also under ``diffusion_model.``;
- Kohya / ComfyUI: ``lora_unet_blocks_N_self_attn_q.lora_down.weight`` / ``.lora_up.weight`` / ``.alpha``
  (underscored original or diffusers names).

Every Linear of the transformer may be targeted (the ten per block, the text/time embeddings, the
time projection, the head). A key that is none of these, a block past the model's last, or a shape
of another model size is refused with one :class:`~livestyle.errors.ModelLoadError` line naming
the first bad key.

Scale of a layer: ``user_scale · alpha / rank`` with the layer's rank (``A.shape[0]``) and its alpha:
the layer's ``.alpha`` tensor, else the file's (``lora_alpha`` of the ``lora_adapter_metadata`` that
diffusers' ``save_lora_weights`` writes into the safetensors header, PEFT ``adapter_config.json`` /
``lora_config``),
else the caller's default (LongLive's registry entry), else the rank (scale 1).

:class:`LoraMerger` switches LoRAs on a live model in place (``W = W_base + Σ scale·B·A``, fp32 math,
rounded once to the weight's dtype). The first time a layer is touched its base weight is copied
(same dtype and device: bit-exact, so removing a LoRA restores the base exactly and 1,000 switches
drift nothing). Fused layers (``self_attn.qkv``, ``cross_attn.kv``; ``CausalWanDiT.fuse_qkv``) get
each part's delta in its row range. ``Fp8Linear`` layers keep their e4m3 base and scale and are
re-quantised from ``dequant(base) + delta``. Weights are written with ``copy_`` into the same
storage, so captured CUDA graphs (which read weights by address) replay the new weights. A switch
can be applied at once (``set``) or a few layers per chunk (``begin`` → :class:`LoraSwitch`), each
layer always its base or fully merged.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from livestyle.errors import ModelLoadError

if TYPE_CHECKING:
    from livestyle.models.dit import CausalWanDiT, DiTConfig

__all__ = [
    "LORA_SUFFIXES",
    "LoraFile",
    "LoraLayer",
    "LoraMerger",
    "LoraSwitch",
    "affects_cross_kv",
    "check_lora",
    "layer_shape",
    "lora_delta",
    "merge_into_state",
    "module_name",
    "parse_lora",
    "read_lora_file",
]

log = logging.getLogger(__name__)

LORA_SUFFIXES = (".safetensors", ".pt", ".pth", ".ckpt", ".bin")
"""File name endings of LoRA files (what a LoRA folder lists)."""

# (original name, diffusers name) of every Linear; block ones relative to ``blocks.N.``
_BLOCK_LINEARS = (
    ("self_attn.q", "attn1.to_q"), ("self_attn.k", "attn1.to_k"), ("self_attn.v", "attn1.to_v"),
    ("self_attn.o", "attn1.to_out.0"), ("cross_attn.q", "attn2.to_q"), ("cross_attn.k", "attn2.to_k"),
    ("cross_attn.v", "attn2.to_v"), ("cross_attn.o", "attn2.to_out.0"), ("ffn.0", "ffn.net.0.proj"),
    ("ffn.2", "ffn.net.2"),
)
_TOP_LINEARS = (
    ("text_embedding.0", "condition_embedder.text_embedder.linear_1"),
    ("text_embedding.2", "condition_embedder.text_embedder.linear_2"),
    ("time_embedding.0", "condition_embedder.time_embedder.linear_1"),
    ("time_embedding.2", "condition_embedder.time_embedder.linear_2"),
    ("time_projection.1", "condition_embedder.time_proj"),
    ("head.head", "proj_out"),
)


def _aliases(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for orig, diffusers in pairs:
        for name in (orig, diffusers):
            out[name] = orig
            out[name.replace(".", "_")] = orig  # Kohya: dots become underscores
    return out


_BLOCK_ALIASES = _aliases(_BLOCK_LINEARS)
_TOP_ALIASES = _aliases(_TOP_LINEARS)
_BLOCK = re.compile(r"^blocks[._](\d+)[._](.+)$")
_PREFIXES = ("base_model.model.", "model.diffusion_model.", "diffusion_model.", "transformer.", "model.",
             "lora_unet_", "lora_transformer_", "unet.")
_WRAPPERS = ("_fsdp_wrapped_module.", "_checkpoint_wrapped_module.", "_orig_mod.")
_KEY = re.compile(
    r"^(?P<stem>.+?)\.(?:lora_(?P<ab>[AB])(?:\.[A-Za-z0-9_]+)?\.weight"
    r"|lora[._](?P<du>down|up)\.weight|(?P<alpha>alpha))$"
)
_CONTAINERS = ("generator_lora", "lora", "state_dict")


def module_name(stem: str) -> str | None:
    """The original Wan name (``blocks.3.self_attn.q``) of a LoRA key's module part in any layout; None if unknown."""
    for part in _WRAPPERS:
        stem = stem.replace(part, "")
    stripped = True
    while stripped:
        stripped = False
        for prefix in _PREFIXES:
            if stem.startswith(prefix):
                stem, stripped = stem[len(prefix):], True
    m = _BLOCK.match(stem)
    if m is not None:
        rest = _BLOCK_ALIASES.get(m.group(2))
        return f"blocks.{int(m.group(1))}.{rest}" if rest is not None else None
    return _TOP_ALIASES.get(stem)


@dataclass(frozen=True)
class LoraLayer:
    """One layer's low-rank pair: ``down`` (A) ``[r, in]``, ``up`` (B) ``[out, r]``, its alpha (None: not given)."""

    down: torch.Tensor
    up: torch.Tensor
    alpha: float | None
    key: str

    @property
    def rank(self) -> int:
        return int(self.down.shape[0])

    def scale(self, default_alpha: float | None) -> float:
        """``alpha / rank`` with the layer's alpha, else ``default_alpha``, else the rank (1)."""
        alpha = self.alpha if self.alpha is not None else default_alpha
        return (alpha if alpha is not None else self.rank) / self.rank


@dataclass(frozen=True)
class LoraFile:
    """A parsed LoRA: original Wan module name → :class:`LoraLayer`, in file order; ``alpha`` file-wide."""

    source: str
    layers: dict[str, LoraLayer]
    alpha: float | None = None

    @property
    def ranks(self) -> list[int]:
        return sorted({layer.rank for layer in self.layers.values()})

    def to(self, device: torch.device | str) -> LoraFile:
        layers = {k: LoraLayer(v.down.to(device), v.up.to(device), v.alpha, v.key) for k, v in self.layers.items()}
        return LoraFile(self.source, layers, self.alpha)


def parse_lora(obj: Mapping[str, object], source: str, alpha: float | None = None) -> LoraFile:
    """A :class:`LoraFile` from a read dict (a flat state dict or a ``{"generator_lora": ...}`` save).

    ``alpha``: the file-wide alpha if known from outside the tensors (an adapter config).
    """
    meta = obj.get("lora_config") or obj.get("config")
    if alpha is None and isinstance(meta, Mapping) and "lora_alpha" in meta:
        alpha = float(meta["lora_alpha"])  # type: ignore[arg-type]
    inner = next((obj[k] for k in _CONTAINERS if isinstance(obj.get(k), Mapping)), obj)
    parts: dict[str, dict[str, tuple[str, torch.Tensor]]] = {}
    alphas: dict[str, float] = {}
    for key, value in inner.items():  # type: ignore[union-attr]
        if not isinstance(value, torch.Tensor):
            continue
        m = _KEY.match(str(key))
        if m is None:
            raise ModelLoadError(f"{source}: {key} is not a LoRA weight (expected <layer>.lora_A/lora_B.weight, "
                                 "<layer>.lora_down/lora_up.weight or <layer>.alpha); is it a Wan 2.1 LoRA?")
        module = module_name(m.group("stem"))
        if module is None:
            raise ModelLoadError(f"{source}: {key} names no layer of the Wan 2.1 transformer; "
                                 "the LoRA is for another model (only Wan 2.1 T2V LoRAs load)")
        if m.group("alpha"):
            alphas[module] = float(value.float().reshape(-1)[0])
            continue
        role = "A" if m.group("ab") == "A" or m.group("du") == "down" else "B"
        parts.setdefault(module, {})[role] = (str(key), value)
    if not parts:
        raise ModelLoadError(f"{source} holds no LoRA weights (no *.lora_A/lora_B or *.lora_down/lora_up keys)")
    layers: dict[str, LoraLayer] = {}
    for module, ab in parts.items():
        if set(ab) != {"A", "B"}:
            have = next(iter(ab.values()))[0]
            raise ModelLoadError(f"{source}: {have} has no partner: LoRA layer {module} needs both down (A) and up (B)")
        (key_a, a), (_, b) = ab["A"], ab["B"]
        if a.ndim != 2 or b.ndim != 2 or b.shape[1] != a.shape[0]:
            raise ModelLoadError(f"{source}: {key_a} is {tuple(a.shape)} with up {tuple(b.shape)}; "
                                 "expected down [rank, in] and up [out, rank]")
        layers[module] = LoraLayer(a, b, alphas.get(module), key_a)
    stray = [m for m in alphas if m not in layers]
    if stray:
        raise ModelLoadError(f"{source}: alpha for {stray[0]} without its lora_down/lora_up weights")
    return LoraFile(source, layers, alpha)


def read_lora_file(path: str | Path, alpha: float | None = None) -> LoraFile:
    """Read a LoRA file (or a PEFT adapter folder with ``adapter_config.json``) in any layout."""
    from livestyle.models.state_files import read_state_dict

    path = Path(path)
    obj = read_state_dict(path)
    if alpha is None and path.is_file() and path.name.endswith(".safetensors"):
        alpha = _header_alpha(path)
    cfg_file = (path if path.is_dir() else path.parent) / "adapter_config.json"
    if alpha is None and cfg_file.is_file():
        try:
            alpha = float(json.loads(cfg_file.read_text())["lora_alpha"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelLoadError(f"{cfg_file} is not a valid PEFT adapter config ({exc})") from None
    return parse_lora(obj, str(path), alpha)


def _header_alpha(path: Path) -> float | None:
    """``lora_alpha`` of the diffusers adapter metadata in a safetensors header (``transformer.lora_alpha``
    from ``save_lora_weights``, ``lora_alpha`` from ``save_lora_adapter``); None if absent."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as fh:
        raw = (fh.metadata() or {}).get("lora_adapter_metadata")
    if not raw:
        return None
    try:
        meta = json.loads(raw)
        value = meta.get("transformer.lora_alpha", meta.get("lora_alpha"))
        return None if value is None else float(value)
    except (ValueError, TypeError, AttributeError) as exc:
        raise ModelLoadError(f"{path}: lora_adapter_metadata in the safetensors header is not valid ({exc})") from None


def layer_shape(cfg: DiTConfig, module: str) -> tuple[int, int] | None:
    """``(out, in)`` of the unfused Linear ``module`` in a model of ``cfg``; None if it has no such layer."""
    d = cfg.dim
    m = _BLOCK.match(module)
    if m is not None:
        if int(m.group(1)) >= cfg.num_layers:
            return None
        rest = m.group(2)
        return {"ffn.0": (cfg.ffn_dim, d), "ffn.2": (d, cfg.ffn_dim)}.get(rest, (d, d))
    return {
        "text_embedding.0": (d, cfg.text_dim), "text_embedding.2": (d, d), "time_embedding.0": (d, cfg.freq_dim),
        "time_embedding.2": (d, d), "time_projection.1": (6 * d, d), "head.head": (cfg.patch_numel, d),
    }.get(module)


def check_lora(lora: LoraFile, cfg: DiTConfig) -> None:
    """Refuse (one line, first bad key) a LoRA with a layer the model lacks or of another model size."""
    for module, layer in lora.layers.items():
        shape = layer_shape(cfg, module)
        if shape is None:
            raise ModelLoadError(
                f"{lora.source}: {layer.key} targets {module}, which the base transformer does not have "
                f"({cfg.num_layers} blocks); the LoRA is for another base or model size"
            )
        got = (int(layer.up.shape[0]), int(layer.down.shape[1]))
        if got != shape:
            size = {1536: "1.3B", 5120: "14B"}.get(got[1] if got[1] in (1536, 5120) else got[0], f"dim {got[1]}")
            raise ModelLoadError(
                f"{lora.source} does not match the base: {module} is {shape} but the LoRA gives {got} "
                f"(rank {layer.rank}, key {layer.key}); the LoRA is for another base ({size}), this model has dim {cfg.dim}"
            )


def lora_delta(layer: LoraLayer, scale: float, device: torch.device | None = None) -> torch.Tensor:
    """``scale · B @ A`` in fp32 ``[out, in]``."""
    a = layer.down.to(device=device, dtype=torch.float32)
    b = layer.up.to(device=device, dtype=torch.float32)
    return torch.mm(b, a).mul_(scale)


def merge_into_state(state: dict[str, torch.Tensor], lora: LoraFile, cfg: DiTConfig, *, scale: float = 1.0,
                     default_alpha: float | None = None) -> dict[str, torch.Tensor]:
    """A new state dict (original Wan keys) with ``lora`` merged: ``W + scale·alpha/rank·B@A`` per layer
    (fp32 math, cast back to ``W``'s dtype). The load-time merge (LongLive)."""
    check_lora(lora, cfg)
    merged = dict(state)
    for module, layer in lora.layers.items():
        key = f"{module}.weight"
        w = state[key]
        merged[key] = (w.float() + lora_delta(layer, scale * layer.scale(default_alpha), w.device)).to(w.dtype)
    return merged


# ---------------------------------------------------------------------------------------------
# Live switching
# ---------------------------------------------------------------------------------------------

_FUSED = {"self_attn.q": ("self_attn.qkv", 0), "self_attn.k": ("self_attn.qkv", 1), "self_attn.v": ("self_attn.qkv", 2),
          "cross_attn.k": ("cross_attn.kv", 0), "cross_attn.v": ("cross_attn.kv", 1)}


@dataclass
class _Base:
    """The untouched weight of one live layer (a copy in its own dtype: restoring is bit-exact)."""

    module: nn.Module
    weight: torch.Tensor
    scale: torch.Tensor | None = None  # Fp8Linear's per-tensor scale


def affects_cross_kv(path: str) -> bool:
    """Whether the live layer ``path`` feeds the cached cross-attention K/V (which must then be
    recomputed): the text embedding and the cross-attention's k, v (or fused kv)."""
    return path.startswith("text_embedding") or any(path.endswith(f"cross_attn.{n}") for n in ("k", "v", "kv"))


class LoraSwitch:
    """A switch in progress (``LoraMerger.begin``): the layers still to rewrite, applied a few at a
    time between chunks by :meth:`step`, so a large model's merge (the 14B: ~125 ms on an H100)
    never stalls one chunk; the look moves to the new LoRAs over a few chunks, layer by layer.

    Every layer is always either its base or fully merged with the target LoRAs (each write starts
    from the base copy), so a switch that is superseded midway leaves nothing behind.
    """

    def __init__(self, merger: LoraMerger, work: list[tuple[str, list[tuple[slice, LoraLayer, float]] | None]],
                 target: tuple[tuple[str, float], ...]) -> None:
        self._merger = merger
        self._work = work
        self.target = target
        self.total = len(work)
        self.seconds = 0.0

    @property
    def done(self) -> bool:
        return not self._work

    @property
    def remaining(self) -> int:
        return len(self._work)

    @torch.no_grad()
    def step(self, budget_s: float | None = None, *, sync: Callable[[], None] | None = None) -> list[str]:
        """Rewrite layers until ``budget_s`` seconds are spent (at least one; None: all). ``sync``
        (a device synchronise) makes the time the device's, not the launches'. Returns the paths
        rewritten; when the last is done the merger's ``active`` becomes the target."""
        m = self._merger
        t0 = time.perf_counter()
        applied: list[str] = []
        while self._work:
            path, parts = self._work.pop(0)
            base = m._base[path]
            if parts is None:
                m._restore(base)
                m._touched.discard(path)
            else:
                m._write(base, parts)
                m._touched.add(path)
            applied.append(path)
            if budget_s is not None:
                if sync is not None:
                    sync()
                if time.perf_counter() - t0 >= budget_s:
                    break
        if sync is not None and budget_s is None:
            sync()
        self.seconds += time.perf_counter() - t0
        if not self._work and m.pending is self:
            m.active = self.target
            m.switches += 1
            m.pending = None
        return applied


class LoraMerger:
    """Switch the LoRAs merged into a live ``CausalWanDiT`` (see the module docstring).

    ``set([(lora, scale), ...])`` makes exactly these LoRAs active at once; ``set([])`` restores the
    base. ``begin(...)`` starts the same switch as a :class:`LoraSwitch` to apply a few layers per
    chunk. Call them between forwards on the thread that runs the model. Layers a LoRA touched keep
    a base copy for the model's lifetime (memory: the touched layers' size once more).
    """

    def __init__(self, model: CausalWanDiT, *, default_alpha: float | None = None) -> None:
        self.model = model
        self.default_alpha = default_alpha
        self._base: dict[str, _Base] = {}
        self._touched: set[str] = set()  # layers whose live weight may differ from the base
        self.active: tuple[tuple[str, float], ...] = ()
        self.switches = 0
        self.pending: LoraSwitch | None = None

    def _locate(self, module: str) -> tuple[str, nn.Module, slice]:
        """The live module holding ``module``'s weight and its row range (fused layers hold several)."""
        dim = self.model.config.dim
        m = _BLOCK.match(module)
        if m is not None:
            block = self.model.blocks[int(m.group(1))]
            rest = m.group(2)
            fused = _FUSED.get(rest)
            if fused is not None:
                attn_name, fused_name = fused[0].split(".")
                attn = getattr(block, attn_name)
                live = getattr(attn, fused_name)
                if live is not None:
                    part = fused[1]
                    return f"blocks.{m.group(1)}.{fused[0]}", live, slice(part * dim, (part + 1) * dim)
            path = module
        else:
            path = module
        live = self.model.get_submodule(path)
        return path, live, slice(None)

    def _remember(self, path: str, live: nn.Module) -> _Base:
        from livestyle.models.fp8 import Fp8Linear

        base = self._base.get(path)
        if base is None:
            if isinstance(live, Fp8Linear):
                base = _Base(live, live.weight_fp8.detach().clone(), live.weight_scale.detach().clone())
            elif isinstance(live, nn.Linear):
                base = _Base(live, live.weight.detach().clone())
            else:
                raise ModelLoadError(f"{path} is a {type(live).__name__}, not a Linear a LoRA can change")
            self._base[path] = base
        return base

    @torch.no_grad()
    def begin(self, loras: Sequence[tuple[LoraFile, float]]) -> LoraSwitch:
        """Start the switch to exactly ``loras`` (each with its user scale): every other touched
        layer goes back to its base. Supersedes a switch still in progress. Nothing is rewritten
        until ``step``; a bad file raises here (``ModelLoadError``) and changes nothing."""
        cfg = self.model.config
        for lora, _ in loras:
            check_lora(lora, cfg)
        plan: dict[str, list[tuple[slice, LoraLayer, float]]] = {}
        for lora, scale in loras:
            default = lora.alpha if lora.alpha is not None else self.default_alpha
            for module, layer in lora.layers.items():
                path, live, rows = self._locate(module)
                self._remember(path, live)
                plan.setdefault(path, []).append((rows, layer, scale * layer.scale(default)))
        work: list[tuple[str, list[tuple[slice, LoraLayer, float]] | None]] = [
            (path, None) for path in sorted(self._touched - plan.keys())]
        work += list(plan.items())
        self.pending = LoraSwitch(self, work, tuple((lora.source, float(scale)) for lora, scale in loras))
        return self.pending

    def set(self, loras: Sequence[tuple[LoraFile, float]]) -> None:
        """Merge exactly ``loras`` now (every layer in one go)."""
        self.begin(loras).step()

    def _restore(self, base: _Base) -> None:
        from livestyle.models.fp8 import Fp8Linear

        live = base.module
        if isinstance(live, Fp8Linear):
            assert base.scale is not None
            live.weight_fp8.copy_(base.weight)
            live.weight_scale.copy_(base.scale)
        else:
            live.weight.copy_(base.weight)  # type: ignore[operator]

    def _write(self, base: _Base, parts: list[tuple[slice, LoraLayer, float]]) -> None:
        from livestyle.models.fp8 import Fp8Linear

        live = base.module
        w = base.weight.to(torch.float32, copy=True)  # never .float(): on an fp32 model that is the base itself
        if isinstance(live, Fp8Linear):
            assert base.scale is not None
            w.mul_(base.scale)
        for rows, layer, scale in parts:
            a = layer.down.to(device=w.device, dtype=torch.float32)
            b = layer.up.to(device=w.device, dtype=torch.float32)
            w[rows].addmm_(b, a, alpha=scale)
        if isinstance(live, Fp8Linear):
            live.requantize_(w)
        else:
            live.weight.copy_(w)  # type: ignore[operator]
