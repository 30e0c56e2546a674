"""``livestyle demo``: the animated test pattern through livestyle into a recording.

Runs anywhere (no GPU, no camera, no weights): pattern -> passthrough -> ``out/demo.mp4``,
as fast as the machine encodes, then says where the file is.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from livestyle.cli.help_text import examples
from livestyle.errors import ConfigError

__all__ = ["demo", "register"]

EXAMPLES = examples(
    "livestyle demo",
    "livestyle demo --out /tmp/pattern.mkv --seconds 10 --size 640x480",
)


def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the video (.mp4 or .mkv)")] = Path("out/demo.mp4"),
    seconds: Annotated[float, typer.Option(help="Length of the video in seconds")] = 5.0,
    size: Annotated[str | None, typer.Option(help="Picture size WIDTHxHEIGHT")] = None,
    fps: Annotated[float, typer.Option(help="Frame rate")] = 30.0,
    model: Annotated[str, typer.Option(help="Generator (passthrough needs no GPU)")] = "passthrough",
    prompt: Annotated[str | None, typer.Option(help="Style prompt (for a model)")] = None,
) -> None:
    """Record the animated test pattern through livestyle to a video file (no GPU or camera needed)."""
    from livestyle.cli.run import build_config, stream

    if not seconds > 0:
        raise ConfigError(f"--seconds must be positive, got {seconds:g}")
    frames = max(1, round(seconds * fps))
    cfg = build_config(
        None, (), model=model, prompt=prompt, size=size, fps=fps, max_frames=frames, pace=False
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    report = stream(cfg, "pattern", [str(out)], status=sys.stderr.isatty())
    w, h = cfg.stream.size
    print(
        f"wrote {out.resolve()}: {report.frames_out} frames, {w}x{h} at {fps:g} fps "
        f"({cfg.model.name}, {report.duration_s:.1f} s); play it with any video player, "
        f"e.g. ffplay {out}"
    )


def register(app: typer.Typer) -> None:
    app.command("demo", help=(demo.__doc__ or "") + "\n\n" + EXAMPLES)(demo)
