"""``livestyle run``: stream a source through the generator into one or more sinks.

Also home of :func:`stream`, the one place that turns a config plus source/sink specs into a
running :class:`~livestyle.pipeline.runner.Runner` with a live status line (``demo`` uses it).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Annotated, Any, Optional

import typer

from livestyle.config import Config, load_config
from livestyle.errors import ConfigError

__all__ = ["register", "run", "stream", "build_config", "format_status", "StatusLine"]

EXAMPLES = """
Examples:

  livestyle run --source pattern --sink out.mp4 --max-frames 300

  livestyle run --source webcam --sink virtualcam --sink window --model sdv2-1.3b --prompt "oil painting"

  livestyle run --source clip.mp4 --sink out.mkv --no-pace --no-loop

  livestyle run --source webcam:1 --sink rtmp://live.example.com/app/KEY --sink rec.mp4

  livestyle run --source pattern --sink udp://127.0.0.1:5000 --set model.steps=1 --size 640x480

  livestyle run --source webcam --sink null --config my.yaml --bypass

  livestyle run --source webcam --sink virtualcam --prompt "a spaceship interior" --effect background --mask person

  livestyle run --source webcam --sink window --model passthrough --effect background --mask chroma --mask-preview
"""


def format_status(stats: dict[str, Any]) -> str:
    """One status line from :meth:`Runner.stats`: fps in/out, drops, per-stage ms, latency."""
    drops = stats.get("drops", {})
    d_in = drops.get("input", 0)
    d_out = sum(v for k, v in drops.items() if k.startswith("sink:"))
    stages = stats.get("stage_ms", {})
    gen = stages.get("generate", {}).get("p50")
    sink_ms = max(
        (v.get("p50", 0.0) for k, v in stages.items() if k.startswith("sink:")), default=None
    )
    lat = stats.get("latency_ms", {})
    parts = [
        f"in {stats.get('fps_in', 0.0):5.1f} fps",
        f"out {stats.get('fps_out', 0.0):5.1f} fps",
        f"frames {stats.get('frames_out', 0)}",
        f"drops in {d_in} out {d_out}",
        f"gen {gen:.1f} ms" if gen is not None else "gen -",
        f"sink {sink_ms:.1f} ms" if sink_ms is not None else "sink -",
        f"latency p50 {lat.get('p50', 0.0):.0f} p95 {lat.get('p95', 0.0):.0f} ms",
    ]
    if stats.get("bypass"):
        parts.append("BYPASS")
    failed = [name for name, s in stats.get("sinks", {}).items() if s.get("state") == "failed"]
    if failed:
        parts.append("failed: " + ", ".join(failed))
    return " | ".join(parts)


class StatusLine:
    """Writes status lines to a stream: redrawn in place on a terminal, one line each otherwise."""

    def __init__(self, out: IO[str] | None = None) -> None:
        self._out = out if out is not None else sys.stderr
        self._tty = bool(getattr(self._out, "isatty", lambda: False)())
        self._drawn = False

    def __call__(self, stats: dict[str, Any]) -> None:
        line = format_status(stats)
        if self._tty:
            self._out.write("\r" + line + "\x1b[K")
            self._drawn = True
        else:
            self._out.write(line + "\n")
        self._out.flush()

    def finish(self) -> None:
        """End the in-place line so later output starts on a fresh line."""
        if self._drawn:
            self._out.write("\n")
            self._out.flush()
            self._drawn = False


def _note(message: str) -> None:
    print(f"note: {message}", file=sys.stderr)


def build_config(
    config_file: Optional[Path] = None,
    overrides: Sequence[str] = (),
    *,
    model: Optional[str] = None,
    prompt: Optional[str] = None,
    size: Optional[str] = None,
    fps: Optional[float] = None,
    max_frames: Optional[int] = None,
    pace: Optional[bool] = None,
    loop: Optional[bool] = None,
) -> Config:
    """Defaults < ``config_file`` < ``--set`` overrides < the dedicated options."""
    if max_frames is not None and max_frames < 1:
        raise ConfigError(
            f"--max-frames must be at least 1, got {max_frames} "
            "(leave it out to run until Ctrl-C or the end of the source)"
        )
    if fps is not None and not fps > 0:
        raise ConfigError(f"--fps must be positive, got {fps:g}")
    extra = list(overrides)
    if size is not None:
        extra.append(f"stream.size={size}")
    if fps is not None:
        extra.append(f"stream.fps={fps}")
    if max_frames is not None:
        extra.append(f"stream.max_frames={max_frames}")
    if pace is not None:
        extra.append(f"stream.pace={'true' if pace else 'false'}")
    if loop is not None:
        extra.append(f"stream.loop={'true' if loop else 'false'}")
    cfg = load_config(config_file, extra, on_note=_note)
    # Free text goes in as is, never through YAML parsing.
    import dataclasses

    model_cfg = cfg.model
    if model is not None:
        model_cfg = dataclasses.replace(model_cfg, name=model)
    if prompt is not None:
        model_cfg = dataclasses.replace(model_cfg, prompt=prompt)
    return dataclasses.replace(cfg, model=model_cfg)


def stream(
    config: Config,
    source_spec: str,
    sink_specs: Sequence[str],
    *,
    bypass: bool = False,
    status: bool = True,
) -> Any:
    """Open everything named, run until the end, return the :class:`RunReport`.

    Status lines go to stderr every ``runner.status_interval`` seconds. Ctrl-C / SIGTERM stop
    the run cleanly and recordings are finalized.
    """
    from livestyle.control.commands import SetBypass
    from livestyle.ingest import open_source
    from livestyle.output import open_sink
    from livestyle.pipeline.generators import open_generator
    from livestyle.pipeline.runner import Runner

    if not sink_specs:
        raise ConfigError("no sink given: add --sink (e.g. --sink out.mp4, --sink window, --sink null)")
    s = config.stream
    generator = open_generator(config.model.name, config)
    # Background effects (docs/effects.md): a no-op wrapper under effects.mode=full, so that
    # SetEffect can switch the effect on mid-stream.
    from livestyle.pipeline.effects import EffectGenerator

    generator = EffectGenerator(generator, config.effects)
    source = open_source(source_spec, size=s.size, fps=s.fps, pace=s.pace, loop=s.loop)
    sinks = [open_sink(spec, fps=s.fps) for spec in sink_specs]
    runner = Runner(
        source,
        generator,
        sinks,
        size=s.size,
        fps=s.fps,
        max_frames=s.max_frames,
        sink_queue=config.runner.sink_queue,
        backpressure=not s.pace,
        status_interval=config.runner.status_interval,
    )
    line = StatusLine()
    if status:
        runner.add_stats_listener(line)
    if bypass:
        runner.submit(SetBypass(True))
    try:
        report = runner.run()
    finally:
        line.finish()
    for name, error in report.sink_errors.items():
        print(f"warning: sink {name} failed and was closed: {error}", file=sys.stderr)
    return report


def run(
    source: Annotated[str, typer.Option("--source", "-i", help="pattern, webcam, webcam:N, /dev/videoN, a file, rtmp://, udp://, tcp://, http(s)://, srt://, webrtc, whip")],
    sink: Annotated[list[str], typer.Option("--sink", "-o", help="window, virtualcam, null, out.mp4, out.mkv, rtmp://, udp://, tcp://, srt://, webrtc, whep (repeat for several)")],
    prompt: Annotated[Optional[str], typer.Option(help="Style prompt")] = None,
    model: Annotated[Optional[str], typer.Option(help="Generator: passthrough or a model name")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML config file (see configs/default.yaml)")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override a config key: section.key=value (repeatable)")] = None,
    size: Annotated[Optional[str], typer.Option(help="Pipeline size WIDTHxHEIGHT (rounded to multiples of 16)")] = None,
    fps: Annotated[Optional[float], typer.Option(help="Frame rate")] = None,
    max_frames: Annotated[Optional[int], typer.Option("--max-frames", help="Stop after this many output frames")] = None,
    no_pace: Annotated[bool, typer.Option("--no-pace", help="Read files as fast as possible; drop nothing")] = False,
    no_loop: Annotated[bool, typer.Option("--no-loop", help="Stop at the end of a file instead of looping")] = False,
    bypass: Annotated[bool, typer.Option("--bypass", help="Start in bypass: show the input unstyled")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No live status line")] = False,
    effect: Annotated[Optional[str], typer.Option(help="Styled region: full, background or person (docs/effects.md)")] = None,
    mask: Annotated[Optional[str], typer.Option(help="Mask for --effect: chroma (green/blue screen) or person (MODNet)")] = None,
    mask_preview: Annotated[bool, typer.Option("--mask-preview", help="Tint the background region to tune the mask (with --model passthrough)")] = False,
) -> None:
    """Stream a source through livestyle into one or more sinks; Ctrl-C stops and finalizes recordings."""
    effect_overrides = [f"effects.{k}={v}" for k, v in (("mode", effect), ("mask", mask)) if v is not None]
    if mask_preview:
        effect_overrides.append("effects.preview=true")
    cfg = build_config(
        config,
        [*(set_ or ()), *effect_overrides],
        model=model,
        prompt=prompt,
        size=size,
        fps=fps,
        max_frames=max_frames,
        pace=False if no_pace else None,
        loop=False if no_loop else None,
    )
    report = stream(cfg, source, sink, bypass=bypass, status=not quiet)
    total_drops = sum(report.drops.values())
    print(
        f"done ({report.stop_reason}): {report.frames_out} frames out, {report.frames_in} in, "
        f"{total_drops} dropped, {report.duration_s:.1f} s",
        file=sys.stderr,
    )


def register(app: typer.Typer) -> None:
    app.command("run", help=(run.__doc__ or "") + "\n\n" + EXAMPLES)(run)
