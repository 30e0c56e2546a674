"""``livestyle run``: stream a source through the generator into one or more sinks.

Also home of :func:`stream`, the one place that turns a config plus source/sink specs into a
running :class:`~livestyle.engine.runner.Runner` with a live status line
(:mod:`livestyle.cli.status`; ``serve`` and ``demo`` use it too).
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import (
    TYPE_CHECKING,
    Annotated,
    Any,
    Protocol,
    runtime_checkable,
)

import typer

from livestyle.cli.help_text import examples
from livestyle.cli.status import StatusLine
from livestyle.config import Config, ModelConfig, load_config
from livestyle.errors import ConfigError, SinkFailedError

if TYPE_CHECKING:
    from livestyle.control.controller import Controller
    from livestyle.engine.frames import Sink, Source

__all__ = ["ControlOptions", "ServeHook", "build_config", "control_api_hook", "register", "resolve_model", "run", "stream"]

EXAMPLES = examples(
    "livestyle run --source pattern --sink out.mp4 --max-frames 300",
    'livestyle run --source webcam --sink virtualcam --sink window --model sdv2-1.3b --prompt "oil painting"',
    "livestyle run --source clip.mp4 --sink out.mkv --no-pace --no-loop",
    "livestyle run --source webcam:1 --sink rtmp://live.example.com/app/KEY --sink rec.mp4",
    "livestyle run --source pattern --sink udp://127.0.0.1:5000 --set model.steps=1 --size 640x480",
    "livestyle run --source webcam --sink null --config my.yaml --bypass",
    'livestyle run --source webcam --sink virtualcam --prompt "a spaceship interior" --effect background --mask person',
    "livestyle run --source webcam --sink window --model passthrough --effect background --mask chroma --mask-preview",
    "livestyle run --source webcam --sink virtualcam --model sdv2-1.3b --lora ink-wash.safetensors:0.8",
)


PromptOption = Annotated[str | None, typer.Option(help="Style prompt (needs a model)")]
ModelOption = Annotated[str | None, typer.Option(help="auto (default: the best model present that fits the GPU, else passthrough), passthrough, tiny (a CPU test model: noise), sdv2-1.3b, sdv2-14b, self-forcing-1.3b, longlive-1.3b, krea-14b")]
FitOption = Annotated[str | None, typer.Option(help="A source of another shape: crop (default, centre crop), pad (black bars) or stretch")]
FpsOption = Annotated[float | None, typer.Option(help="Frame rate")]
BypassOption = Annotated[bool, typer.Option("--bypass", help="Start in bypass: show the input unstyled")]
NoGovernorOption = Annotated[bool, typer.Option("--no-governor", help="Pin steps, decoder and size: no stepping down when the GPU falls behind (sets governor.enabled=false)")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No live status line")]
PresetOption = Annotated[str | None, typer.Option("--preset", help="Start with this preset (name from the presets; sets presets.start)")]
PresetsOption = Annotated[list[Path] | None, typer.Option("--presets", help="Preset YAML file or folder (repeatable; default: presets.file, else the bundled set)")]
NoKeysOption = Annotated[bool, typer.Option("--no-keys", help="No terminal hotkeys (on when stdin is a terminal: 1-9, n/p, b, r, q)")]
SystemHotkeysOption = Annotated[bool, typer.Option("--system-hotkeys", help="System-wide Ctrl+Alt hotkeys (pip install 'livestyle[hotkeys]')")]
ObsOption = Annotated[bool, typer.Option("--obs", help="Connect to OBS's websocket (the obs config section; sets obs.enabled)")]
ObsPasswordOption = Annotated[str | None, typer.Option("--obs-password", envvar="LIVESTYLE_OBS_PASSWORD", help="obs-websocket password", show_envvar=True)]
LoraOption = Annotated[list[str] | None, typer.Option("--lora", help="Style LoRA FILE[:SCALE] merged from the start (a path, or a name in model.lora_dir; repeatable; adds to model.loras)")]
WeightsDirOption = Annotated[Path | None, typer.Option("--weights-dir", envvar="LIVESTYLE_WEIGHTS_DIR", help="Local weights folder: DIR/MODEL/FILE (sets model.weights_dir)", show_envvar=True)]
GpusOption = Annotated[int | None, typer.Option("--gpus", help="Split the model over N GPUs, one process each (pipeline stages; sets model.gpus); with --device cpu, N CPU processes")]
DeviceOption = Annotated[str | None, typer.Option("--device", help="auto, cpu, cuda, cuda:N or mps (sets model.device)")]


def model_overrides(gpus: int | None, device: str | None) -> list[str]:
    """``--gpus`` / ``--device`` as config overrides (``model.gpus``, ``model.device``)."""
    out = [] if gpus is None else [f"model.gpus={gpus}"]
    return out if device is None else [*out, f"model.device={device}"]


def _note(message: str) -> None:
    print(f"note: {message}", file=sys.stderr)


def build_config(
    config_file: Path | None = None,
    overrides: Sequence[str] = (),
    *,
    model: str | None = None,
    prompt: str | None = None,
    size: str | None = None,
    fps: float | None = None,
    max_frames: int | None = None,
    pace: bool | None = None,
    loop: bool | None = None,
    preset: str | None = None,
    weights_dir: Path | None = None,
    obs: bool | None = None,
    obs_password: str | None = None,
    fit: str | None = None,
    loras: Sequence[str] = (),
) -> Config:
    """Defaults < ``config_file`` < ``--set`` overrides < the dedicated options.

    ``preset`` → ``presets.start``, ``weights_dir`` → ``model.weights_dir``, ``obs`` →
    ``obs.enabled``, ``obs_password`` → ``obs.password`` (free text, never parsed as YAML).
    """
    if max_frames is not None and max_frames < 1:
        raise ConfigError(
            f"--max-frames must be at least 1, got {max_frames} "
            "(leave it out to run until Ctrl-C or the end of the source)"
        )
    if fps is not None and not fps > 0:
        raise ConfigError(f"--fps must be positive, got {fps:g}")
    if fps is not None and not 1 <= fps <= 240:
        raise ConfigError(f"--fps must be between 1 and 240 frames per second, got {fps:g}")
    extra = list(overrides)
    if size is not None:
        extra += [f"stream.size={size}", "stream.aspect=fixed"]  # a size typed on the command line is meant
    if fps is not None:
        extra.append(f"stream.fps={fps}")
    if max_frames is not None:
        extra.append(f"stream.max_frames={max_frames}")
    if pace is not None:
        extra.append(f"stream.pace={'true' if pace else 'false'}")
    if loop is not None:
        extra.append(f"stream.loop={'true' if loop else 'false'}")
    if obs is not None:
        extra.append(f"obs.enabled={'true' if obs else 'false'}")
    if fit is not None:
        extra.append(f"stream.fit={fit}")
    cfg = load_config(config_file, extra, on_note=_note)
    # Free text goes in as is, never through YAML parsing.
    model_cfg = cfg.model
    if model is not None:
        model_cfg = dataclasses.replace(model_cfg, name=model)
    if prompt is not None:
        model_cfg = dataclasses.replace(model_cfg, prompt=prompt)
    if weights_dir is not None:
        model_cfg = dataclasses.replace(model_cfg, weights_dir=str(weights_dir))
    if loras:  # free text (paths), appended to the config's list
        model_cfg = dataclasses.replace(model_cfg, loras=",".join(x for x in (model_cfg.loras, *loras) if x))
    cfg = dataclasses.replace(cfg, model=model_cfg)
    if preset is not None:
        cfg = dataclasses.replace(cfg, presets=dataclasses.replace(cfg.presets, start=preset))
    if obs_password is not None:
        cfg = dataclasses.replace(cfg, obs=dataclasses.replace(cfg.obs, password=obs_password))
    return cfg


@dataclass(frozen=True)
class ControlOptions:
    """Which command sources drive a stream besides the ones the config turns on (``obs.enabled``).

    ``preset_paths``: ``--presets`` files or folders (none: ``presets.file``, else the bundled set);
    ``keys``: terminal hotkeys when stdin is a TTY; ``system_hotkeys``: pynput hotkeys.
    """

    preset_paths: tuple[Path, ...] = ()
    keys: bool = False
    system_hotkeys: bool = False


StatsFn = Callable[[], dict[str, Any]]
ServeHook = Callable[["Controller", StatsFn], Callable[[], None]]
"""Starts a server on the stream's controller and stats function; returns what stops it
(``run --api``: :func:`control_api_hook`; ``serve``: the page, WebRTC and the API)."""


@runtime_checkable
class _ModelLimits(Protocol):
    """What a model generator (:class:`~livestyle.diffusion.stream.StreamPipeline`) offers the controls."""

    @property
    def max_steps(self) -> int: ...

    def warm_prompts(self, prompts: Sequence[str]) -> None: ...


def _config_max_steps() -> int:
    """The ``model.steps`` bound of the config, the limit for generators without a model family."""
    bound = next(f for f in dataclasses.fields(ModelConfig) if f.name == "steps").metadata["le"]
    return int(bound)


def control_api_hook(settings: Any) -> ServeHook:
    """A :data:`ServeHook` serving only the control API with ``settings`` (a ``ServerSettings``);
    prints its URL (and token, when one is needed) to stderr."""

    def start(controller: Any, stats: StatsFn) -> Callable[[], None]:
        from livestyle.control.setup import ControlApiServer

        server = ControlApiServer(settings, controller, stats).start()
        print(f"livestyle: control API on {server.url}/api/params", file=sys.stderr)
        if server.settings.token:
            print(f"token: {server.settings.token}", file=sys.stderr)
        return server.stop

    return start


def _passthrough_warnings(config: Config) -> list[str]:
    """What a passthrough run ignores (a prompt, a preset, an effect), as warnings."""
    from livestyle.planning.auto import passthrough_warnings

    if config.model.name != "passthrough":
        return []
    return passthrough_warnings(
        prompt_given=config.model.prompt != ModelConfig().prompt,
        preset_given=config.presets.start is not None,
        effect="full" if config.effects.preview or config.effects.fill == "blur" else config.effects.mode,
    )


def resolve_model(config: Config, *, note: bool = True) -> Config:
    """``model.name = auto`` → the model :func:`~livestyle.planning.auto.choose_model` picks (with
    ``note``, a line says which and why); a passthrough run given a prompt, preset or effect warns."""
    if config.model.name == "auto":
        from livestyle.planning.auto import choose_model

        choice = choose_model(config.stream.fps, config.model.weights_dir)
        if note:
            _note(f"--model auto: {choice.reason}")
        config = dataclasses.replace(config, model=dataclasses.replace(config.model, name=choice.model))
    for warning in _passthrough_warnings(config):
        print(f"warning: {warning}", file=sys.stderr)
    return config


def _load_generator(config: Config) -> Any:
    """Open the generator, saying so while a model loads (weights to the GPU take a while)."""
    import time

    from livestyle.generators import GENERATORS, open_generator

    name = config.model.name
    if name == "passthrough" or name not in GENERATORS:  # unknown: open_generator names the valid ones
        return open_generator(name, config)
    history, key = _startup(config, "load")
    estimate = history.estimate(key)
    about = f"; about {estimate:.0f} s last time" if estimate is not None else ""
    print(f"loading {name} (weights, text encoder, codecs{about})...", file=sys.stderr, flush=True)
    t0 = time.monotonic()
    generator = open_generator(name, config)
    took = time.monotonic() - t0
    history.record(key, took)
    warm = history.estimate(_startup(config, "warmup")[1])
    then = f" (about {warm:.0f} s)" if warm is not None else ""
    print(f"loaded {name} in {took:.1f} s; warming up before the first frame{then}", file=sys.stderr)
    return generator


def _startup(config: Config, phase: str) -> tuple[Any, str]:
    """The start-up history and this run's key for ``phase`` (``load`` or ``warmup``): the model,
    the working size, the steps and the device (the GPU's name, or ``cpu``)."""
    from livestyle.planning.startup_history import StartupHistory, startup_key

    device = config.model.device
    if device in ("auto", "cuda") or device.startswith("cuda:"):
        import torch

        device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    key = startup_key(phase, config.model.name, tuple(config.stream.size), config.model.steps, device)
    return StartupHistory(), key


def _has_own_aspect(spec: str) -> bool:
    """Cameras, files, network streams and browser or WHIP publishers have an aspect ratio of their
    own; the test pattern (made at the working size) does not."""
    return spec.strip().lower() != "pattern"


def _aspect_rule(requested: tuple[int, int], family: Any, *,
                 keep_source: bool = False) -> Callable[[tuple[int, int]], tuple[int, int]]:
    """The working size for a source: its aspect ratio at about ``requested``'s pixel count, in
    multiples of 16, within the model's largest size (``family.max_size``) when it has one.

    ``keep_source`` (no model: passthrough, effects alone): the source's own size, rounded down to
    even sides for the 4:2:0 encoders, so a 1280x720 call with a blurred background stays 1280x720.
    """
    from livestyle.engine.fit import working_size

    bound = getattr(family, "max_size", None)

    def rule(source: tuple[int, int]) -> tuple[int, int]:
        if keep_source:
            return max(2, source[0] // 2 * 2), max(2, source[1] // 2 * 2)
        return working_size(source, tuple(requested), explicit=False, bound=bound)  # type: ignore[arg-type]

    return rule


def governor_for(config: Config) -> Any:
    """The runtime governor of ``config.governor`` (None when disabled); its chunk budget is set
    per chunk by the runner from the generator's chunk size and the frame rate."""
    from livestyle.engine.governor import Governor, GovernorConfig

    g = config.governor
    if not g.enabled:
        return None
    return Governor(GovernorConfig(chunk_budget_ms=1000.0 * 4 / config.stream.fps, latency_budget_ms=g.latency_ms,
                                   up_after=g.up_after, cooldown_s=g.cooldown_s))


def _check_outputs_apart(source: Any, sinks: Sequence[Any]) -> None:
    """ConfigError when a recording is the source file (a path, a symlink, a hard link) or another
    recording: checked before anything is opened, so the input is never overwritten."""
    from livestyle.paths import check_apart

    def files(items: Sequence[Any], option: str) -> list[tuple[str, str]]:
        return [(f"{option} {path}", path) for item in items if isinstance(path := getattr(item, "path", None), str)]

    check_apart(files(sinks, "--sink"), files([source], "--source"), ConfigError)


def stream(
    config: Config,
    source: str | Source,
    sinks: Sequence[str | Sink],
    *,
    bypass: bool = False,
    status: bool = True,
    controls: ControlOptions = ControlOptions(),
    serve: ServeHook | None = None,
) -> Any:
    """Open everything named, run until the end, return the :class:`RunReport`.

    The one wiring of a stream, for ``run``, ``serve`` and ``demo``: the generator (inside the
    effect wrapper), source and sinks (specs or opened objects), the runner, the controller over
    the presets (their prompts embedded now, so a switch costs no encoder pass), the command
    sources of ``controls`` and the config (OBS bridge), and ``serve`` (a server on the
    controller). Stats: the runner's plus ``"controls"`` (params, OBS bridge, hotkeys).

    Status lines go to stderr every ``runner.status_interval`` seconds (every
    ``runner.log_interval`` when stderr is not a terminal). Ctrl-C / SIGTERM (or ``q``)
    stop the run cleanly and recordings are finalized.
    """
    from livestyle.control.setup import Controls, build_controller, load_preset_book
    from livestyle.ingest import open_source
    from livestyle.output import open_sink
    from livestyle.output.media import RecordingOptions
    from livestyle.engine.commands import SetBypass
    from livestyle.effects.generator import EffectGenerator
    from livestyle.engine.runner import Runner

    if not sinks:
        raise ConfigError("no sink given: add --sink (e.g. --sink out.mp4, --sink window, --sink null)")
    presets = load_preset_book(config, controls.preset_paths)  # fails fast, before the model loads
    config = resolve_model(config, note=status)
    s = config.stream
    inner = _load_generator(config)
    # Background effects (docs/effects.md): a no-op wrapper under effects.mode=full, so that
    # SetEffect can switch the effect on mid-stream; in bypass it shows the mask preview.
    generator = EffectGenerator(inner, config.effects)
    is_model = isinstance(inner, _ModelLimits)
    # an opened source follows its own size when it was made without one (serve's browser source)
    follow = s.aspect == "source" and (_has_own_aspect(source) if isinstance(source, str)
                                       else getattr(source, "size", ()) is None)
    if isinstance(source, str):
        src = open_source(source, size=None if follow else s.size, fps=s.fps, pace=s.pace, loop=s.loop, fit=s.fit,
                          capture_size=s.size)
    else:
        src = source
    recording = RecordingOptions.from_config(config.recording)
    outs = [open_sink(spec, fps=s.fps, recording=recording) if isinstance(spec, str) else spec for spec in sinks]
    _check_outputs_apart(src, outs)
    runner = Runner(
        src,
        generator,
        outs,
        size=s.size,
        fps=s.fps,
        max_frames=s.max_frames,
        sink_queue=config.runner.sink_queue,
        backpressure=not s.pace,
        status_interval=config.runner.status_interval,
        bypass_filter=generator.bypassed if config.effects.preview else None,
        governor=governor_for(config) if s.pace else None,
        fit=s.fit,
        size_for_source=_aspect_rule(s.size, getattr(inner, "family", None), keep_source=not is_model) if follow else None,
    )
    max_steps = inner.max_steps if is_model else _config_max_steps()
    from livestyle.diffusion.loras import LoraLibrary

    library = getattr(inner, "loras", None)
    catalog = library if isinstance(library, LoraLibrary) else LoraLibrary(config.model.lora_dir)
    controller = build_controller(config, runner.submit, presets=presets, max_steps=max_steps,
                                  precondition=generator.precondition, lora_catalog=catalog.catalog,
                                  takes_loras=is_model, styles=is_model)
    if is_model:
        inner.warm_prompts(presets.prompts)
        warm_loras = getattr(inner, "warm_loras", None)
        if warm_loras is not None:  # a preset's LoRA that does not fit fails now, not at the switch
            warm_loras([ref.name for p in presets if p.loras for ref in p.loras])
    elif config.model.loras:
        print(f"warning: model {config.model.name} takes no LoRA; --lora / model.loras are ignored", file=sys.stderr)
    if bypass:
        controller.apply(SetBypass(True))
    ctl = Controls(controller, config, terminal=controls.keys, system_hotkeys=controls.system_hotkeys,
                   on_message=lambda m: print(m, file=sys.stderr))

    def control_stats() -> dict[str, Any]:
        return {"params": controller.params.to_dict(), **ctl.stats()}

    model_info = {"name": config.model.name, "styles": config.model.name != "passthrough",
                  "warnings": _passthrough_warnings(config), "max_steps": max_steps, "warmup_estimate_s": None}
    warmup_history: tuple[Any, str] | None = None
    if is_model:
        warmup_history = _startup(config, "warmup")
        model_info["warmup_estimate_s"] = warmup_history[0].estimate(warmup_history[1])

    prompt_cache = getattr(getattr(inner, "models", None), "prompt_cache", None)

    def stats() -> dict[str, Any]:
        out = {**runner.stats(), "controls": control_stats(), "model": model_info}
        if prompt_cache is not None:  # disk writes that failed (the prompts were applied from memory)
            out["prompt_cache"] = prompt_cache.stats()
        return out

    line = StatusLine(log_interval=config.runner.log_interval)
    if status:
        runner.add_stats_listener(lambda snapshot: line({**snapshot, "controls": control_stats(), "model": model_info}))
    stop_server: Callable[[], None] | None = None
    try:
        if serve is not None:
            stop_server = serve(controller, stats)
        with ctl:
            report = runner.run()
    finally:
        line.finish()
        if stop_server is not None:
            stop_server()
    report.stats["controls"] = control_stats()
    if prompt_cache is not None:
        report.stats["prompt_cache"] = prompt_cache.stats()
    if warmup_history is not None and report.stats.get("warmup_s") is not None:
        warmup_history[0].record(warmup_history[1], report.stats["warmup_s"])  # the next start's estimate
    for name, error in report.sink_errors.items():
        print(f"warning: sink {name} failed and was closed: {error}", file=sys.stderr)
    return report


def run(
    source: Annotated[str, typer.Option("--source", "-i", help="pattern, webcam, webcam:N, /dev/videoN, a file, rtmp://, udp://, tcp://, http(s)://, srt://, webrtc, whip")],
    sink: Annotated[list[str], typer.Option("--sink", "-o", help="window, virtualcam, null, out.mp4, out.mkv, rtmp://, udp://, tcp://, srt://, webrtc, whep (repeat for several)")],
    prompt: PromptOption = None,
    model: ModelOption = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML config file (see configs/default.yaml)")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a config key: section.key=value (repeatable)")] = None,
    size: Annotated[str | None, typer.Option(help="Pipeline size WIDTHxHEIGHT, multiples of 16 (default: a camera or file keeps its own aspect ratio at about 832x480 pixels)")] = None,
    fps: FpsOption = None,
    max_frames: Annotated[int | None, typer.Option("--max-frames", help="Stop after this many output frames")] = None,
    no_pace: Annotated[bool, typer.Option("--no-pace", help="Read files as fast as possible; drop nothing")] = False,
    no_loop: Annotated[bool, typer.Option("--no-loop", help="Stop at the end of a file instead of looping")] = False,
    bypass: BypassOption = False,
    no_governor: NoGovernorOption = False,
    quiet: QuietOption = False,
    effect: Annotated[str | None, typer.Option(help="Styled region: full, background or person (docs/effects.md)")] = None,
    mask: Annotated[str | None, typer.Option(help="Mask for --effect: chroma (green/blue screen), person (selfie if LiteRT is installed, else person-hq), selfie or person-hq (MODNet)")] = None,
    mask_preview: Annotated[bool, typer.Option("--mask-preview", help="Tint the background region to tune the mask (also in bypass)")] = False,
    preset: PresetOption = None,
    presets: PresetsOption = None,
    no_keys: NoKeysOption = False,
    system_hotkeys: SystemHotkeysOption = False,
    obs: ObsOption = False,
    obs_password: ObsPasswordOption = None,
    api: Annotated[bool, typer.Option("--api", help="Serve the control API (/api/params, /api/presets, ...; no page)")] = False,
    api_host: Annotated[str | None, typer.Option("--api-host", help="API bind address (default 127.0.0.1). A loopback address (127.x.x.x, ::1, localhost) needs no token; any other needs one, generated and printed")] = None,
    api_port: Annotated[int | None, typer.Option("--api-port", help="API TCP port (default server.port, 8080)")] = None,
    weights_dir: WeightsDirOption = None,
    fit: FitOption = None,
    lora: LoraOption = None,
    gpus: GpusOption = None,
    device: DeviceOption = None,
) -> None:
    """Stream a source through livestyle into one or more sinks; Ctrl-C stops and finalizes recordings."""
    effect_overrides = [f"effects.{k}={v}" for k, v in (("mode", effect), ("mask", mask)) if v is not None]
    if mask_preview:
        effect_overrides.append("effects.preview=true")
    server_overrides = [f"server.{k}={v}" for k, v in (("host", api_host), ("port", api_port)) if v is not None]
    if no_governor:
        server_overrides.append("governor.enabled=false")
    if server_overrides and not api:
        raise ConfigError("--api-host/--api-port need --api")
    cfg = build_config(
        config,
        [*(set_ or ()), *effect_overrides, *server_overrides, *model_overrides(gpus, device)],
        model=model,
        prompt=prompt,
        size=size,
        fps=fps,
        max_frames=max_frames,
        pace=False if no_pace else None,
        loop=False if no_loop else None,
        preset=preset,
        weights_dir=weights_dir,
        obs=True if obs else None,
        obs_password=obs_password,
        fit=fit,
        loras=lora or (),
    )
    hook = None
    if api:
        from livestyle.server.app import ServerSettings

        hook = control_api_hook(ServerSettings.from_config(cfg.server).resolved())
    options = ControlOptions(preset_paths=tuple(presets or ()), keys=not no_keys, system_hotkeys=system_hotkeys)
    report = stream(cfg, source, sink, bypass=bypass, status=not quiet, controls=options, serve=hook)
    st = report.stats
    written = ", ".join(f"{n} {v['written']}" + (" (failed)" if n in report.sink_errors else "")
                        for n, v in st.get("viewer", {}).items())
    print(
        f"done ({report.stop_reason}): {report.frames_out} frames out, {report.frames_in} in; written: {written or '-'}; "
        f"{st.get('frames_lost', 0)} lost, glass-to-glass p95 {report.latency_ms.get('p95', 0.0):.0f} ms, "
        f"{report.duration_s:.1f} s",
        file=sys.stderr,
    )
    if report.sink_errors:
        names = ", ".join(report.sink_errors)
        raise SinkFailedError(f"the stream went on without {names}: its output is incomplete (see the warning above)")


def register(app: typer.Typer) -> None:
    app.command("run", help=(run.__doc__ or "") + "\n\n" + EXAMPLES)(run)
