"""Prompt presets: named looks a streamer switches between during a broadcast.

A preset file is YAML with a ``presets:`` list (and optional ``defaults:`` applied to every entry)::

    defaults:
      transition_chunks: 4
    presets:
      - name: watercolor
        prompt: a watercolor painting, soft brush strokes, paper texture
        strength: 0.55
        steps: 2
        seed: 42
        lora: ink-wash:0.8       # or loras: [ink-wash:0.8, {name: film-grain, scale: 0.5}]; lora: none removes

Only ``name`` and ``prompt`` are required; a field left out keeps whatever the stream uses at the
time of the switch. Errors name the file, the line and the key (``presets.yaml:12: preset
'anime': 'strength' must be a number in [0, 1], got 'high'``).

:class:`PresetBook` is the ordered, read-only collection; lookups by name (case-insensitive) or by
0-based index raise :class:`UnknownPresetError` listing the valid ones.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from livestyle.errors import ConfigError, ControlError
from livestyle.engine.commands import LoraRef, parse_lora_ref

__all__ = [
    "Preset",
    "PresetBook",
    "UnknownPresetError",
    "load_presets",
    "parse_presets",
    "bundled_presets_dir",
    "DEFAULT_PRESETS_FILE",
    "MAX_PROMPT_CHARS",
]

MAX_PROMPT_CHARS = 2000
"""Longest prompt accepted anywhere (the umT5 tokenizer truncates far earlier; this stops abuse)."""


def bundled_presets_dir() -> Path:
    """``configs/presets`` of this checkout (the looks shipped with livestyle)."""
    return Path(__file__).resolve().parents[2] / "configs" / "presets"


DEFAULT_PRESETS_FILE = bundled_presets_dir() / "default.yaml"
"""The default set of looks for streamers."""


class UnknownPresetError(ControlError):
    """A preset name or index that is not in the book (the API answers 404)."""


@dataclass(frozen=True, slots=True)
class Preset:
    """One look. ``None`` fields leave the stream's current value alone.

    ``strength`` is in ``[0, 1]``; ``steps`` >= 1; ``seed`` >= 0; ``transition_chunks`` >= 0 is how
    many chunks the new prompt takes to blend in (``None``: the configured default).
    """

    name: str
    prompt: str
    strength: float | None = None
    steps: int | None = None
    seed: int | None = None
    transition_chunks: int | None = None
    loras: tuple[LoraRef, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready fields."""
        return {
            "name": self.name,
            "prompt": self.prompt,
            "strength": self.strength,
            "steps": self.steps,
            "seed": self.seed,
            "transition_chunks": self.transition_chunks,
            "loras": None if self.loras is None else [{"name": r.name, "scale": r.scale} for r in self.loras],
        }


_FIELDS = ("name", "prompt", "strength", "steps", "seed", "transition_chunks", "lora", "loras")
_DEFAULTABLE = ("strength", "steps", "seed", "transition_chunks")


class PresetBook(Sequence[Preset]):
    """An ordered, immutable set of presets with unique (case-insensitive) names."""

    def __init__(self, presets: Iterable[Preset] = ()) -> None:
        self._presets: tuple[Preset, ...] = tuple(presets)
        self._by_name: dict[str, int] = {}
        for i, preset in enumerate(self._presets):
            key = preset.name.casefold()
            if key in self._by_name:
                raise ConfigError(f"preset name {preset.name!r} appears twice; names must be unique")
            self._by_name[key] = i

    def __len__(self) -> int:
        return len(self._presets)

    def __getitem__(self, index: int) -> Preset:  # type: ignore[override]
        return self._presets[index]

    def __iter__(self) -> Iterator[Preset]:
        return iter(self._presets)

    def __repr__(self) -> str:
        return f"PresetBook({list(self.names)!r})"

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self._presets)

    @property
    def prompts(self) -> tuple[str, ...]:
        """Every distinct prompt, in order: what the runner pre-encodes into the embedding cache."""
        return tuple(dict.fromkeys(p.prompt for p in self._presets))

    def valid_keys(self) -> str:
        """``1:watercolor, 2:anime, ...`` for error messages (1-based, as hotkeys number them)."""
        if not self._presets:
            return "none (no presets loaded: pass --presets FILE)"
        return ", ".join(f"{i + 1}:{p.name}" for i, p in enumerate(self._presets))

    def index_of(self, key: str | int) -> int:
        """The 0-based index of a preset given by name (case-insensitive) or 0-based index."""
        if isinstance(key, bool) or not isinstance(key, (str, int)):
            raise UnknownPresetError(f"a preset is chosen by name or index, got {key!r}; valid: {self.valid_keys()}")
        if isinstance(key, int):
            if 0 <= key < len(self._presets):
                return key
            raise UnknownPresetError(
                f"no preset number {key + 1} ({len(self._presets)} loaded); valid: {self.valid_keys()}"
            )
        found = self._by_name.get(key.strip().casefold())
        if found is None:
            raise UnknownPresetError(f"unknown preset {key!r}; valid: {self.valid_keys()}")
        return found

    def get(self, key: str | int) -> Preset:  # type: ignore[override]
        """The preset by name (case-insensitive) or 0-based index; :class:`UnknownPresetError` if absent."""
        return self._presets[self.index_of(key)]

    def to_list(self) -> list[dict[str, Any]]:
        return [p.to_dict() for p in self._presets]


# ---------------------------------------------------------------------------------------------
# Loading with line numbers: compose the YAML node tree (which keeps marks), then convert.
# ---------------------------------------------------------------------------------------------


def _where(source: str, node: yaml.Node) -> str:
    return f"{source}:{node.start_mark.line + 1}"


def _construct(node: yaml.Node) -> Any:
    """Plain Python value of a scalar node (resolved tags, as yaml.safe_load would give)."""
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


def _mapping(node: yaml.Node, source: str, what: str) -> list[tuple[str, yaml.Node, yaml.Node]]:
    if not isinstance(node, yaml.MappingNode):
        raise ConfigError(f"{_where(source, node)}: {what} must be a mapping of key: value")
    items: list[tuple[str, yaml.Node, yaml.Node]] = []
    seen: set[str] = set()
    for key_node, value_node in node.value:
        key = _construct(key_node)
        if not isinstance(key, str):
            raise ConfigError(f"{_where(source, key_node)}: {what}: keys must be text, got {key!r}")
        if key in seen:
            raise ConfigError(f"{_where(source, key_node)}: {what}: key {key!r} appears twice")
        seen.add(key)
        items.append((key, key_node, value_node))
    return items


def _field_value(key: str, node: yaml.Node, source: str, what: str) -> Any:
    """Validate one preset field; errors name the file, line and key."""
    value = _construct(node)
    where = f"{_where(source, node)}: {what}"
    if key in ("name", "prompt"):
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{where}: {key!r} must be non-empty text, got {value!r}")
        value = " ".join(value.split())
        if len(value) > MAX_PROMPT_CHARS:
            raise ConfigError(f"{where}: {key!r} is {len(value)} characters; at most {MAX_PROMPT_CHARS}")
        return value
    if value is None:
        return None
    if key == "strength":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not 0 <= value <= 1:
            raise ConfigError(f"{where}: 'strength' must be a number in [0, 1], got {value!r}")
        return float(value)
    if key == "steps":
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{where}: 'steps' must be an integer >= 1, got {value!r}")
        return value
    if key == "seed":
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
            raise ConfigError(f"{where}: 'seed' must be an integer in [0, 2**63), got {value!r}")
        return value
    if key == "transition_chunks":
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1000:
            raise ConfigError(f"{where}: 'transition_chunks' must be an integer in [0, 1000], got {value!r}")
        return value
    if key in ("lora", "loras"):
        items = value if key == "loras" else ([] if value == "none" else [value])
        if not isinstance(items, list):
            raise ConfigError(f"{where}: 'loras' must be a list of NAME[:SCALE] or {{name, scale}}, got {value!r}")
        return tuple(_lora_ref(item, where) for item in items)
    raise AssertionError(key)  # pragma: no cover - callers check the key first


def _lora_ref(item: Any, where: str) -> LoraRef:
    """``NAME``, ``NAME:SCALE`` or ``{name: NAME, scale: SCALE}`` (ranges are the controller's check)."""
    if isinstance(item, str) and item.strip():
        return parse_lora_ref(item.strip())
    if isinstance(item, dict) and set(item) <= {"name", "scale"} and isinstance(item.get("name"), str) and item["name"].strip():
        scale = item.get("scale", 1.0)
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale):
            raise ConfigError(f"{where}: LoRA {item['name']!r}: 'scale' must be a number, got {scale!r}")
        return LoraRef(item["name"].strip(), float(scale))
    raise ConfigError(f"{where}: a LoRA is NAME, NAME:SCALE or {{name: NAME, scale: SCALE}}, got {item!r}")


def parse_presets(text: str, source: str = "<presets>") -> list[Preset]:
    """Presets from YAML text; ``source`` names the file in errors."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{source}{line}: not valid YAML: {problem}") from None
    if root is None:
        raise ConfigError(f"{source}: empty preset file; expected 'presets:' with a list of presets")
    top = _mapping(root, source, "the preset file")
    known_top = ("defaults", "presets")
    defaults: dict[str, Any] = {}
    presets_node: yaml.Node | None = None
    for key, key_node, value_node in top:
        if key not in known_top:
            raise ConfigError(f"{_where(source, key_node)}: unknown key {key!r}; valid: {', '.join(known_top)}")
        if key == "defaults":
            for dkey, dkey_node, dvalue_node in _mapping(value_node, source, "'defaults'"):
                if dkey not in _DEFAULTABLE:
                    raise ConfigError(
                        f"{_where(source, dkey_node)}: 'defaults': unknown key {dkey!r}; valid: {', '.join(_DEFAULTABLE)}"
                    )
                defaults[dkey] = _field_value(dkey, dvalue_node, source, "'defaults'")
        else:
            presets_node = value_node
    if presets_node is None:
        raise ConfigError(f"{_where(source, root)}: missing 'presets:' (a list of presets)")
    if not isinstance(presets_node, yaml.SequenceNode) or not presets_node.value:
        raise ConfigError(f"{_where(source, presets_node)}: 'presets' must be a non-empty list")
    out: list[Preset] = []
    names: dict[str, int] = {}
    for i, item in enumerate(presets_node.value):
        what = f"preset #{i + 1}"
        items = _mapping(item, source, what)
        name_entry = next((v for k, _, v in items if k == "name"), None)
        if name_entry is not None:
            name_value = _construct(name_entry)
            if isinstance(name_value, str) and name_value.strip():
                what = f"preset {name_value.strip()!r}"
        fields: dict[str, Any] = dict(defaults)
        for key, key_node, value_node in items:
            if key not in _FIELDS:
                raise ConfigError(f"{_where(source, key_node)}: {what}: unknown key {key!r}; valid: {', '.join(_FIELDS)}")
            if key in ("lora", "loras") and "loras" in fields:
                raise ConfigError(f"{_where(source, key_node)}: {what}: give 'lora' or 'loras', not both")
            fields["loras" if key == "lora" else key] = _field_value(key, value_node, source, what)
        for required in ("name", "prompt"):
            if required not in fields:
                raise ConfigError(f"{_where(source, item)}: {what}: missing {required!r}")
        folded = fields["name"].casefold()
        if folded in names:
            raise ConfigError(
                f"{_where(source, item)}: {what}: name {fields['name']!r} already used by preset #{names[folded] + 1}"
            )
        names[folded] = i
        out.append(Preset(**fields))
    return out


def load_presets(*paths: str | Path) -> PresetBook:
    """A :class:`PresetBook` from YAML files or folders of ``*.yaml`` (sorted), in the order given.

    No paths: the bundled ``configs/presets/default.yaml``. Errors (missing file, bad YAML, unknown
    key, bad value, duplicate name) raise :class:`~livestyle.errors.ConfigError` naming file and line.
    """
    files: list[Path] = []
    for raw in paths or (DEFAULT_PRESETS_FILE,):
        path = Path(raw).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
            if not found:
                raise ConfigError(f"{path}: no *.yaml preset files in this folder")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise ConfigError(f"{path}: preset file not found (see configs/presets/default.yaml for the format)")
    presets: list[Preset] = []
    for file in files:
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{file}: cannot read preset file: {exc}") from None
        presets.extend(parse_presets(text, str(file)))
    return PresetBook(presets)
