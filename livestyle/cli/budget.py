"""``livestyle budget``: plan model, size, steps, decoder and stream batch for a target on a GPU."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from livestyle.cli.help_text import examples
from livestyle.errors import ConfigError, PipelineError

__all__ = ["budget", "register", "run_command"]

EXAMPLES = examples(
    "livestyle budget                                  # the local GPU, 30 fps within 250 ms, models present",
    "livestyle budget --gpu h100 --fps 30 --latency-ms 250",
    "livestyle budget --gpu b200 --fps 11 --latency-ms 2500 --model krea-14b --explain",
    "livestyle budget --gpu rtx4090 --fps 24 --latency-ms 400 --json",
    "livestyle budget --all-models                     # also models whose weights are not here",
)


def _profile_names() -> list[str]:
    from livestyle.planning.budget import list_profiles

    return list_profiles()


def _resolve_gpu(gpu: str) -> str:
    """``auto`` → this machine's GPU profile (a note on stderr says which), else ``h100``."""
    if gpu != "auto":
        return gpu
    from livestyle.planning.gpu import detect_gpu

    local = detect_gpu()
    if local is None:
        print("note: no CUDA GPU found here; planning for h100 (pass --gpu NAME for another)", file=sys.stderr)
        return "h100"
    if local.profile is None:
        print(f"note: no profile matches {local.name}; planning for h100 (pass --gpu NAME)", file=sys.stderr)
        return "h100"
    print(f"note: planning for this machine's {local.name} (profile {local.profile})", file=sys.stderr)
    return local.profile


def run_command(best: Any, source: str = "webcam", sink: str = "virtualcam", weights_dir: Path | None = None) -> str:
    """The ``livestyle run`` line that runs plan ``best`` (a :class:`~livestyle.planning.budget.Prediction`)."""
    import shlex

    from livestyle.planning.budget import MODEL_SHAPES

    c = best.candidate
    parts = [f"livestyle run --source {source} --sink {sink} --model {c.model} --size {c.size_text}",
             f"--set model.steps={c.steps} --set model.vae={c.decoder}"]
    if MODEL_SHAPES[c.model].kv_mode == "stream_batch":  # SDV2: stream batch or steps in turn
        parts.append(f"--set model.stream_batch={'true' if c.stream_batch else 'false'}")
    if weights_dir is not None:
        parts.append(f"--weights-dir {shlex.quote(str(weights_dir))}")
    return " ".join(parts)


def _models_to_plan(model: list[str] | None, all_models: bool, weights_dir: Path | None) -> tuple[tuple[str, ...], list[str], str]:
    """The models to plan for, those among them whose weights are here, and a note to print with the plan.

    ``--model`` names them; else only the models whose weights are present, unless ``--all-models``
    or none is present, when every model is planned for.
    """
    from livestyle.planning import auto
    from livestyle.planning.budget import MODEL_SHAPES

    if model:
        unknown = [m for m in model if m not in MODEL_SHAPES]
        if unknown:
            raise ConfigError(f"unknown model {unknown[0]!r} for --model; choose from {', '.join(MODEL_SHAPES)}")
        return tuple(model), auto.present_models(str(weights_dir) if weights_dir else None, list(model)), ""
    present = auto.present_models(str(weights_dir) if weights_dir else None)
    if all_models:
        return tuple(MODEL_SHAPES), present, ""
    if not present:
        return tuple(MODEL_SHAPES), present, "note: no model weights found here; planning for every model (the plan says which to pull)"
    return tuple(present), present, (f"note: planning for the models whose weights are here: {', '.join(present)} "
                                     "(--all-models for every model)")


def budget(
    gpu: Annotated[str, typer.Option(help="GPU profile: auto (this machine's GPU, else h100) or one of: " + ", ".join(_profile_names()))] = "auto",
    fps: Annotated[float, typer.Option(help="Output frames per second to sustain")] = 30.0,
    latency_ms: Annotated[float, typer.Option("--latency-ms", help="Glass-to-glass latency budget in ms")] = 250.0,
    input_fps: Annotated[float, typer.Option("--input-fps", help="Camera frame rate")] = 30.0,
    model: Annotated[list[str] | None, typer.Option(help="Only consider these models (repeatable; default: the models whose weights are here, else all)")] = None,
    all_models: Annotated[bool, typer.Option("--all-models", help="Consider every model, also those whose weights are not here")] = False,
    weights_dir: Annotated[Path | None, typer.Option("--weights-dir", help="Local weights folder to look in: DIR/MODEL/FILE (default $LIVESTYLE_WEIGHTS_DIR, then the Hugging Face cache)")] = None,
    max_steps: Annotated[int | None, typer.Option("--max-steps", help="Never plan more steps than this")] = None,
    explain: Annotated[bool, typer.Option(help="Also print how the profile was derived")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as one JSON line")] = False,
    gpus: Annotated[int, typer.Option("--gpus", min=1, max=64, help="Plan for N GPUs of this kind, the model's blocks split into N pipeline stages (run --gpus N)")] = 1,
    link_gbs: Annotated[float, typer.Option("--link-gbs", min=0.1, help="GPU-to-GPU bandwidth in GB/s for --gpus (100: NVLink-class; ~25: PCIe 4)")] = 100.0,
) -> None:
    """Print the plan that meets an fps and latency budget on a GPU, or say which constraint cannot be met."""
    from rich.console import Console
    from rich.table import Table

    from livestyle.planning.budget import Target, load_profile, plan

    models, present, note = _models_to_plan(model, all_models, weights_dir)
    profile = load_profile(_resolve_gpu(gpu))
    target = Target(fps=fps, latency_ms=latency_ms, input_fps=input_fps, models=models, max_steps=max_steps)
    split = None
    try:
        if gpus > 1:
            from livestyle.planning.multi_gpu import plan_gpus

            split = plan_gpus(profile, target, gpus, link_gbs=link_gbs)
            best = split.prediction
        else:
            best = plan(profile, target)
    except PipelineError as exc:
        if model or all_models or not present:
            raise
        raise PipelineError(f"{exc} (planned only for the models whose weights are here; --all-models for every model)") from exc
    has_weights = best.candidate.model in present
    if note:
        print(note, file=sys.stderr)
    if as_json:
        extra = {} if split is None else {"gpus": gpus, "split": [[sp.start, sp.stop - 1] for sp in split.stages.spans],
                                          "bound": split.stages.bound, "activation_bytes": split.stages.activation_bytes}
        print(json.dumps({"gpu": profile.name, **best.as_dict(), **extra, "weights_present": has_weights}))
        return
    console = Console()
    c = best.candidate
    on = profile.title if split is None else f"{gpus} x {profile.title}"
    table = Table(title=f"Plan for {fps:g} fps within {latency_ms:g} ms on {on}", show_header=False)
    table.add_row("model", c.model)
    table.add_row("size", c.size_text)
    table.add_row("steps", str(c.steps))
    table.add_row("decoder", c.decoder)
    table.add_row("stream batch", "yes" if c.stream_batch else "no")
    table.add_row("frames per chunk", str(best.chunk_frames))
    for stage, ms in best.stages_ms.items():
        table.add_row(f"{stage} ms/chunk", f"{ms:.1f}")
    if split is not None:
        table.add_row("stages", "; ".join(f"{sp.start}-{sp.stop - 1}" for sp in split.stages.spans)
                      + f" (blocks; paced by {split.stages.bound}, imbalance {split.stages.imbalance:.2f})")
        table.add_row("activation per hop", f"{split.stages.activation_bytes / 2**20:.1f} MiB at {link_gbs:g} GB/s (estimate)")
    table.add_row("predicted fps", f"{best.fps:.1f}")
    table.add_row("predicted latency", f"{best.latency_ms:.0f} ms (p95 {best.latency_p95_ms:.0f} ms)")
    table.add_row("predicted memory", f"{best.memory_gib:.1f} GiB of {profile.memory_gib:g}")
    console.print(table)
    if not has_weights:
        console.print(f"its weights are not here yet; get them first ({_planned_size(c.model)}, once):")
        print(f"livestyle weights pull {c.model}", flush=True)
    console.print("run it (swap --source/--sink for yours; `livestyle serve` takes the same options):")
    print(run_command(best, weights_dir=weights_dir) + (f" --gpus {gpus}" if split is not None else ""), flush=True)  # plain print: never wrapped, copy-pastable as printed
    if explain or not profile.measured:
        console.print(f"profile: {profile.source}" + ("" if profile.measured else " (not measured)"))
        for note in profile.notes:
            console.print(f"  {note}")


def _planned_size(name: str) -> str:
    """The download size of model ``name`` as ``weights list`` shows it (``≥40.5 GB``)."""
    from livestyle.models.weights import get_model

    return get_model(name).download_text


def register(app: typer.Typer) -> None:
    app.command("budget", help=(budget.__doc__ or "") + "\n\n" + EXAMPLES)(budget)
