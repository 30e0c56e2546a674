"""The typed configuration tree: frozen dataclasses, a YAML file and ``--set a.b=c`` overrides.

Layers, later wins: the dataclass defaults below, a YAML file (``configs/default.yaml`` documents
every key), then ``--set section.key=value`` overrides whose values are parsed as YAML scalars
(``--set model.steps=2``, ``--set stream.size=640x480``, ``--set server.token=null``).

Validation is driven by the type hints and a little metadata, so adding a field is one line::

    steps: int = setting(2, ge=1, le=8, doc="denoising steps per chunk")
    stream_batch: bool | None = setting(None, doc="SDV2: true batches the steps across chunks (throughput, output steps-1 chunks late), false runs them in turn per chunk (latency); null: the model's setting")

An unknown key or a bad value raises :class:`~livestyle.errors.ConfigError` with one line that
names the key and what it accepts. Picture sizes are rounded to multiples of 16 (the VAE and the
transformer's patching need it) with a note, not an error.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

from livestyle.errors import ConfigError

__all__ = [
    "Config",
    "StreamConfig",
    "ModelConfig",
    "RunnerConfig",
    "GovernorSettings",
    "RecordingConfig",
    "ServerConfig",
    "ObsConfig",
    "PresetsConfig",
    "EffectsConfig",
    "ChromaKeyConfig",
    "PersonMaskConfig",
    "SelfieMaskConfig",
    "setting",
    "load_config",
    "config_from_dict",
    "config_to_dict",
    "apply_overrides",
    "parse_size",
    "round_size",
    "SIZE_MULTIPLE",
]

log = logging.getLogger(__name__)

SIZE_MULTIPLE = 16
"""Picture sides must be multiples of this (8x VAE downsampling times the 2x2 patch)."""

Size = tuple[int, int]
"""``(width, height)`` in pixels."""

NoteFn = Callable[[str], None]


def setting(
    default: Any,
    *,
    ge: float | None = None,
    le: float | None = None,
    gt: float | None = None,
    pattern: str | None = None,
    doc: str = "",
) -> Any:
    """A config field with optional numeric bounds, a regex for strings and a one-line description.

    With ``pattern`` the string must match it entirely and ``doc`` should say what is accepted
    (it is quoted in the error message).
    """
    meta = {"ge": ge, "le": le, "gt": gt, "pattern": pattern, "doc": doc}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


# --------------------------------------------------------------------------------------------
# The tree. Add a field: one `name: type = setting(default, ...)` line in its section.
# Add a section: a frozen dataclass below plus one line in `Config`.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StreamConfig:
    """What goes through the pipeline: picture size, frame rate, how long, how paced."""

    size: Size = setting((832, 480), doc="pipeline picture size WIDTHxHEIGHT, multiples of 16")
    aspect: Literal["source", "fixed"] = setting("source", doc="source: cameras and files set the aspect ratio (about size's pixel count, within the model's bound; --size pins it); fixed: exactly size")
    fps: float = setting(30.0, ge=1, le=240, doc="nominal frame rate of the stream, 1 to 240 frames per second")
    max_frames: int | None = setting(None, ge=1, doc="stop after this many output frames")
    pace: bool = setting(True, doc="read files in real time (false: as fast as possible, lossless)")
    loop: bool = setting(True, doc="restart file sources at their end")
    fit: Literal["crop", "pad", "stretch"] = setting("crop", doc="a source of another shape: crop (centre crop), pad (black bars) or stretch")


@dataclass(frozen=True)
class ModelConfig:
    """Which generator runs and how it styles."""

    name: str = setting("auto", doc="generator name (see `livestyle run --help`); auto: the best model present that fits the GPU, else passthrough")
    prompt: str = setting("a watercolor painting, soft brush strokes", doc="style prompt")
    strength: float = setting(0.6, ge=0.0, le=1.0, doc="noise strength: 0 keeps the input")
    steps: int = setting(2, ge=1, le=8, doc="denoising steps per chunk")
    stream_batch: bool | None = setting(None, doc="SDV2: true batches the steps across chunks (throughput, output steps-1 chunks late), false runs them in turn per chunk (latency); null: the model's setting")
    seed: int = setting(42, ge=0, doc="noise seed")
    vae: Literal["wan", "tiny-decoder", "tiny", "full"] = setting("wan", doc="codecs, as in budget and bench: wan (Wan VAE both ways), tiny-decoder (Wan encoder + TAEHV decoder), tiny (TAEHV both ways); full is the old name of wan")
    transition_chunks: int = setting(4, ge=0, le=64, doc="chunks over which a new prompt blends in")
    device: str = setting("auto", pattern=r"auto|cpu|mps|cuda(:\d+)?", doc="auto, cpu, cuda, cuda:N or mps")
    gpus: int = setting(1, ge=1, le=64, doc="pipeline stages, one process per GPU (the DiT's blocks split over them); with device cpu, CPU processes (for tests)")
    dtype: Literal["bfloat16", "float16", "float32"] = setting("bfloat16", doc="compute dtype")
    weights_dir: str | None = setting(None, doc="local weights folder DIR/MODEL/FILE (null: $LIVESTYLE_WEIGHTS_DIR, then the Hugging Face cache)")
    loras: str = setting("", doc="style LoRAs merged from the start, comma-separated NAME[:SCALE] (a file in lora_dir without its ending, or a path); --lora adds one")
    lora_dir: str | None = setting(None, doc="folder of LoRA files listed by the page and /api/loras (null: $LIVESTYLE_LORA_DIR, else $LIVESTYLE_CACHE_DIR/loras, else ~/.cache/livestyle/loras)")


@dataclass(frozen=True)
class RunnerConfig:
    """Mailbox sizes and the status line."""

    sink_queue: int = setting(4, ge=1, le=256, doc="frames each sink may hold before dropping")
    status_interval: float = setting(1.0, gt=0, le=60, doc="seconds between status updates")
    log_interval: float = setting(10.0, gt=0, le=3600, doc="seconds between status lines when stderr is not a terminal")


@dataclass(frozen=True)
class GovernorSettings:
    """The runtime governor (``livestyle.engine.governor``): quality steps down before frames are lost."""

    enabled: bool = setting(True, doc="step quality down (steps, tiny decoder, size, bypass) when the GPU falls behind; false pins the settings")
    latency_ms: float = setting(1000.0, gt=0, le=60000, doc="glass-to-glass budget in ms; above it counts as overloaded")
    up_after: int = setting(30, ge=1, le=10000, doc="chunks of headroom in a row before stepping back up")
    cooldown_s: float = setting(2.0, ge=0, le=600, doc="seconds between two changes")


@dataclass(frozen=True)
class RecordingConfig:
    """How recordings are written (``livestyle.output.media``: crash safety)."""

    mp4: Literal["fragmented", "faststart"] = setting("fragmented", doc="mp4/mov layout: fragmented (plays after a crash) or faststart (classic, index in front after a clean end)")
    fragment_s: float = setting(1.0, ge=0.1, le=60.0, doc="seconds per MP4 fragment / Matroska cluster at most (what a crash can lose)")


@dataclass(frozen=True)
class ServerConfig:
    """The web server (WebRTC, WHIP/WHEP, control API)."""

    host: str = setting("127.0.0.1", doc="bind address (loopback by default)")
    port: int = setting(8080, ge=1, le=65535, doc="TCP port")
    token: str | None = setting(None, doc="bearer token for publishing, viewing and control (null: none on loopback, generated otherwise)")
    max_publishers: int = setting(1, ge=1, le=64, doc="publishing sessions at once (page cameras + WHIP); more get 409")
    max_viewers: int = setting(16, ge=1, le=1000, doc="viewing sessions at once (viewer pages + WHEP); more get 503")
    codec: Literal["vp8", "h264"] = setting("vp8", doc="WebRTC/WHEP output video codec")
    bitrate: int = setting(2_000_000, ge=50_000, le=50_000_000, doc="WebRTC/WHEP output video bitrate, bits/s")
    max_body_bytes: int = setting(65536, ge=4096, le=16_777_216, doc="largest accepted HTTP request body")
    allowed_hosts: str = setting("", doc="comma-separated Host names the server answers besides localhost, loopback IPs and host (DNS-rebinding defence)")


@dataclass(frozen=True)
class ObsConfig:
    """The OBS websocket bridge."""

    enabled: bool = setting(False, doc="connect to OBS's websocket")
    host: str = setting("127.0.0.1", doc="OBS host")
    port: int = setting(4455, ge=1, le=65535, doc="obs-websocket port")
    password: str | None = setting(None, doc="obs-websocket password")
    scene_presets: dict[str, str] = setting({}, doc="OBS scene name -> preset selected when it goes live")
    item_presets: dict[str, str] = setting({}, doc="scene item source name -> preset selected when shown")
    prompt_source: str | None = setting(None, doc="OBS text source that shows the current prompt")


@dataclass(frozen=True)
class PresetsConfig:
    """Prompt presets: the looks hotkeys, OBS and the API switch between."""

    file: str | None = setting(None, doc="preset YAML file or folder (null: configs/presets/default.yaml)")
    start: str | None = setting(None, doc="preset applied at start, by name (null: model.prompt)")


@dataclass(frozen=True)
class ChromaKeyConfig:
    """Green/blue-screen key (``effects.chroma``); distances are in the CbCr plane, units of 255."""

    key_color: str = setting("green", doc="green, blue, #rrggbb or r,g,b")
    tolerance: float = setting(0.15, ge=0.0, le=0.99, doc="distance up to which a pixel is screen")
    softness: float = setting(0.10, gt=0.0, le=1.0, doc="width of the soft edge after tolerance")
    spill: float = setting(0.6, ge=0.0, le=1.0, doc="spill suppression strength (0 = off)")


@dataclass(frozen=True)
class PersonMaskConfig:
    """Person segmentation model (``effects.person``)."""

    model: str = setting("modnet-webcam", doc="registry name of the segmentation weights")
    checkpoint: str | None = setting(None, doc="local checkpoint file instead of the registry")
    input_size: int = setting(256, ge=32, le=2048, doc="short side the model sees, multiple of 32")
    device: str = setting("auto", pattern=r"auto|cpu|mps|cuda(:\d+)?", doc="auto (cuda when present, else cpu), cpu, cuda, cuda:N or mps")
    interval: int = setting(1, ge=1, le=30, doc="run the model every n-th frame, reuse in between")


@dataclass(frozen=True)
class SelfieMaskConfig:
    """MediaPipe selfie segmentation on LiteRT (``effects.selfie``; the fast ``person`` mask)."""

    model: str = setting("mediapipe-selfie", doc="registry name of the selfie segmentation files")
    variant: Literal["auto", "general", "landscape"] = setting("auto", doc="256x256 general, 256x144 landscape, or auto by aspect")
    threads: int = setting(1, ge=1, le=16, doc="LiteRT CPU threads")
    interval: int = setting(1, ge=1, le=30, doc="run the model every n-th frame, reuse in between")
    face_gate: float = setting(0.7, ge=0.0, le=1.0, doc="face score below which the mask is empty (0 = no face check)")
    gate_interval: int = setting(6, ge=1, le=300, doc="check for a face every n-th frame")


@dataclass(frozen=True)
class EffectsConfig:
    """Where the styled pixels go, and the mask that decides it (docs/effects.md)."""

    mode: Literal["full", "background", "person"] = setting("full", doc="region that is styled")
    mask: Literal["chroma", "person", "selfie", "person-hq"] = setting("person", doc="mask provider (person: selfie when LiteRT is installed, else person-hq)")
    fill: Literal["styled", "blur"] = setting("styled", doc="what the effect's region shows: the generator's frame, or the camera blurred")
    blur: float = setting(12.0, gt=0.0, le=64.0, doc="Gaussian sigma of fill=blur, pixels")
    feather: float = setting(2.0, ge=0.0, le=64.0, doc="Gaussian sigma of the mask edge, pixels")
    smoothing: float = setting(0.5, ge=0.0, le=0.95, doc="weight of the past in the mask EMA (0 = off)")
    cut_threshold: float = setting(0.25, gt=0.0, le=1.0, doc="mean mask change that restarts the EMA")
    keep_hint: bool = setting(False, doc="hand the generator extras['keep_mask'] (1 = camera shows)")
    keep_strength: float = setting(0.5, ge=0.0, le=1.0, doc="with keep_hint: noise cut where the camera shows (0 = none, 1 = no noise)")
    preview: bool = setting(False, doc="tint the background region of the output (tune the mask)")
    max_pending: int = setting(256, ge=1, le=4096, doc="most frames whose masks await their styled frame")
    chroma: ChromaKeyConfig = field(default_factory=ChromaKeyConfig)
    person: PersonMaskConfig = field(default_factory=PersonMaskConfig)
    selfie: SelfieMaskConfig = field(default_factory=SelfieMaskConfig)


@dataclass(frozen=True)
class Config:
    """The whole configuration. Every section is a frozen dataclass; use :func:`dataclasses.replace`."""

    stream: StreamConfig = field(default_factory=StreamConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    runner: RunnerConfig = field(default_factory=RunnerConfig)
    governor: GovernorSettings = field(default_factory=GovernorSettings)
    recording: RecordingConfig = field(default_factory=RecordingConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    obs: ObsConfig = field(default_factory=ObsConfig)
    effects: EffectsConfig = field(default_factory=EffectsConfig)
    presets: PresetsConfig = field(default_factory=PresetsConfig)


# --------------------------------------------------------------------------------------------
# Sizes
# --------------------------------------------------------------------------------------------


def round_size(size: Size, multiple: int = SIZE_MULTIPLE) -> Size:
    """Round ``(width, height)`` to the nearest multiples of ``multiple`` (at least one multiple)."""
    return tuple(max(multiple, int(math.floor(v / multiple + 0.5)) * multiple) for v in size)  # type: ignore[return-value]


def parse_size(value: object, key: str = "stream.size") -> Size:
    """``"640x480"``, ``"640X480"``, ``[640, 480]`` or ``(640, 480)`` -> ``(640, 480)``."""
    parts: Sequence[object]
    if isinstance(value, str):
        parts = value.lower().replace("*", "x").split("x")
    elif isinstance(value, (list, tuple)):
        parts = value
    else:
        parts = ()
    try:
        if len(parts) != 2:
            raise ValueError
        w, h = (int(str(p).strip()) for p in parts)
    except ValueError:
        raise ConfigError(
            f"{key}: expected WIDTHxHEIGHT such as 832x480, got {value!r}"
        ) from None
    if w <= 0 or h <= 0 or w > 8192 or h > 8192:
        raise ConfigError(f"{key}: width and height must be between 1 and 8192, got {w}x{h}")
    return (w, h)


# --------------------------------------------------------------------------------------------
# Validation driven by type hints
# --------------------------------------------------------------------------------------------


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _describe(tp: Any, meta: Mapping[str, Any]) -> str:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return " or ".join(_describe(a, meta) for a in inner) + " or null"
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if origin is dict:
        return f"a mapping of {_describe(args[0], {})} to {_describe(args[1], {})}"
    if tp == Size:
        return "WIDTHxHEIGHT such as 832x480"
    if tp is str and meta.get("pattern"):
        return str(meta.get("doc") or f"a string matching {meta['pattern']}")
    bounds = []
    if meta.get("ge") is not None:
        bounds.append(f">= {meta['ge']}")
    if meta.get("gt") is not None:
        bounds.append(f"> {meta['gt']}")
    if meta.get("le") is not None:
        bounds.append(f"<= {meta['le']}")
    name = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )
    return f"{name} {' and '.join(bounds)}".strip()


def _coerce(key: str, tp: Any, meta: Mapping[str, Any], value: Any, note: NoteFn) -> Any:
    """Check ``value`` against ``tp`` and the bounds in ``meta``; return the typed value."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)

    def bad() -> ConfigError:
        return ConfigError(f"{key}: expected {_describe(tp, meta)}, got {value!r}")

    if origin in (Union, types.UnionType):
        if value is None:
            if type(None) in args:
                return None
            raise bad()
        inner = [a for a in args if a is not type(None)]
        if len(inner) != 1:
            raise TypeError(f"config field {key}: only Optional[X] unions are supported")
        try:
            return _coerce(key, inner[0], meta, value, note)
        except ConfigError:
            raise bad() from None
    if origin is Literal:
        if value in args:
            return value
        raise bad()
    if origin is dict:
        if not isinstance(value, Mapping):
            raise bad()
        return {
            _coerce(f"{key}[{k!r}]", args[0], {}, k, note): _coerce(f"{key}[{k!r}]", args[1], {}, v, note)
            for k, v in value.items()
        }
    if tp == Size:
        size = parse_size(value, key)
        rounded = round_size(size)
        if rounded != size:
            note(
                f"{key} {size[0]}x{size[1]} rounded to {rounded[0]}x{rounded[1]} "
                f"(the model takes multiples of {SIZE_MULTIPLE})"
            )
        return rounded
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise bad()
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad()
    elif tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad()
        value = float(value)
        if not math.isfinite(value):
            raise bad()
    elif tp is str:
        if not isinstance(value, str):
            raise bad()
        if meta.get("pattern") and re.fullmatch(meta["pattern"], value) is None:
            raise bad()
        return value
    else:
        raise TypeError(f"config field {key}: unsupported type {tp!r}")
    if meta.get("ge") is not None and value < meta["ge"]:
        raise bad()
    if meta.get("gt") is not None and value <= meta["gt"]:
        raise bad()
    if meta.get("le") is not None and value > meta["le"]:
        raise bad()
    return value


def _build(cls: type, data: Mapping[str, Any], prefix: str, note: NoteFn) -> Any:
    if not isinstance(data, Mapping):
        where = prefix or "the config file"
        raise ConfigError(f"{where}: expected a mapping of keys, got {data!r}")
    hints = _hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for raw_key, value in data.items():
        key = str(raw_key)
        dotted = f"{prefix}.{key}" if prefix else key
        if key not in fields:
            allowed = ", ".join(fields)
            what = f"keys in {prefix}" if prefix else "sections"
            raise ConfigError(f"unknown config key {dotted!r}; {what}: {allowed}")
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = _build(tp, value if value is not None else {}, dotted, note)
        else:
            kwargs[key] = _coerce(dotted, tp, fields[key].metadata, value, note)
    return cls(**kwargs)


def config_from_dict(data: Mapping[str, Any], *, on_note: NoteFn | None = None) -> Config:
    """Build a validated :class:`Config` from nested dicts; missing keys keep their defaults."""
    return _build(Config, data, "", on_note or log.warning)


def config_to_dict(config: object) -> dict[str, Any]:
    """The config as nested plain dicts (sizes as ``"WxH"`` strings), ready for YAML or JSON."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(config):  # type: ignore[arg-type]
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            out[f.name] = config_to_dict(value)
        elif isinstance(value, tuple) and len(value) == 2:
            out[f.name] = f"{value[0]}x{value[1]}"
        else:
            out[f.name] = value
    return out


_SIZE_TEXT = re.compile(r"\s*\d+\s*[xX]\s*\d+\s*")


def _parse_override(item: str) -> tuple[list[str], Any]:
    """``"a.b=value"`` -> ``(["a", "b"], typed value)``; the key must exist (else ConfigError)."""
    import yaml

    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set expects key.path=value (e.g. model.steps=2), got {item!r}")
    path = key.split(".")
    tp = _check_path(path)
    if _SIZE_TEXT.fullmatch(text):
        return path, text.strip()  # "0x480" is a size here, not YAML's hex 1152
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        value = text
    if isinstance(value, (dict, list)):
        wants_mapping = typing.get_origin(tp) is dict
        wants_pair = tp == Size or typing.get_origin(tp) in (list, tuple)
        if not ((isinstance(value, dict) and wants_mapping) or (isinstance(value, list) and wants_pair)):
            value = text.strip()  # "a cat: in space" is a string, not a mapping
    return path, value


def _merge(base: dict[str, Any], path: list[str], value: Any) -> None:
    node = base
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[path[-1]] = value


def _check_path(path: list[str]) -> Any:
    """The type of the field at ``path``; unknown or incomplete keys fail with what exists."""
    cls: Any = Config
    walked: list[str] = []
    for part in path:
        if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
            raise ConfigError(f"unknown config key {'.'.join(path)!r}; {'.'.join(walked)} has no sub-keys")
        names = [f.name for f in dataclasses.fields(cls)]
        if part not in names:
            where = f"keys in {'.'.join(walked)}" if walked else "sections"
            raise ConfigError(f"unknown config key {'.'.join(path)!r}; {where}: {', '.join(names)}")
        walked.append(part)
        cls = _hints(cls)[part]
    if isinstance(cls, type) and dataclasses.is_dataclass(cls):
        names = ", ".join(f.name for f in dataclasses.fields(cls))
        raise ConfigError(f"config key {'.'.join(path)!r} is a section; set one of: {names}")
    return cls


def apply_overrides(
    config: Config, overrides: Iterable[str], *, on_note: NoteFn | None = None
) -> Config:
    """Apply ``key.path=value`` strings (values parsed as YAML scalars) on top of ``config``."""
    data = config_to_dict(config)
    for item in overrides:
        path, value = _parse_override(item)
        _merge(data, path, value)
    return config_from_dict(data, on_note=on_note)


def load_config(
    path: str | Path | None = None,
    overrides: Iterable[str] = (),
    *,
    on_note: NoteFn | None = None,
) -> Config:
    """Defaults, then the YAML file at ``path`` (if any), then ``overrides``.

    ``on_note`` receives non-fatal notes (e.g. a size rounded to multiples of 16); by default
    they are logged as warnings.
    """
    import yaml

    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {str(p)!r} not found")
        try:
            loaded = yaml.safe_load(p.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            raise ConfigError(f"config file {str(p)!r} is not valid YAML{where}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read config file {str(p)!r}: {exc}") from None
        if loaded is not None:
            if not isinstance(loaded, dict):
                raise ConfigError(f"config file {str(p)!r}: expected a mapping of sections at the top")
            data = loaded
    overrides = list(overrides)
    for item in overrides:
        key_path, value = _parse_override(item)
        _merge(data, key_path, value)
    return config_from_dict(data, on_note=on_note)
