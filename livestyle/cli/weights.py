"""``livestyle weights``: list the registry's models, download them, check them, print where they are."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from livestyle.cli.help_text import examples
from livestyle.errors import WeightsError

__all__ = ["register", "weights_app"]

EXAMPLES = examples(
    "livestyle weights list",
    "livestyle weights pull sdv2-1.3b",
    "livestyle weights pull tiny                       # writes the random test model locally",
    "livestyle weights verify sdv2-1.3b --weights-dir /data/weights",
    "livestyle weights path sdv2-1.3b --role vae",
)

weights_app = typer.Typer(
    help="Model files: list the registry, download (Hugging Face Hub), verify, show paths.\n\n" + EXAMPLES,
    no_args_is_help=True,
)

WeightsDir = Annotated[
    Path | None,
    typer.Option(
        "--weights-dir",
        envvar="LIVESTYLE_WEIGHTS_DIR",
        help="Local folder searched before the Hugging Face cache (DIR/MODEL/FILE); pull downloads into it",
    ),
]


def _status_text(model: object, weights_dir: Path | None) -> str:
    from livestyle.models.weights import ModelSpec, locate

    assert isinstance(model, ModelSpec)
    required = [r for r, s in model.files.items() if not s.optional]
    present = sum(1 for r in required if locate(model, r, weights_dir=weights_dir)[0] is not None)
    if present == len(required):
        return "[green]ready[/green]"
    return f"[yellow]{present}/{len(required)} files[/yellow]" if present else "[red]not downloaded[/red]"


@weights_app.command("list")
def list_cmd(weights_dir: WeightsDir = None) -> None:
    """Show every model in the registry with its family, size and whether its files are here."""
    from rich.console import Console
    from rich.table import Table

    from livestyle.models.weights import list_models

    models = list_models()
    table = Table(title="livestyle models")
    # the names are what `weights pull NAME` and `--model NAME` take: never cut, never wrapped
    table.add_column("name", no_wrap=True, min_width=max((len(m.name) for m in models), default=4))
    table.add_column("title", overflow="fold")
    table.add_column("family", no_wrap=True)
    table.add_column("dit", no_wrap=True)
    table.add_column("download", no_wrap=True)
    table.add_column("status")
    for model in models:
        # generated with nothing to fetch (the tiny test model) is "local"; a writer that fetches (url) has a size
        size = "local" if all(s.generate and not s.repo and not s.url for s in model.files.values()) else model.download_text
        table.add_row(model.name, model.title, model.family, model.dit or "-", size, _status_text(model, weights_dir))
    Console().print(table)


@weights_app.command("pull")
def pull_cmd(
    name: Annotated[str, typer.Argument(help="Registry name (see `livestyle weights list`), or OWNER/REPO of a Wan 2.1 LoRA on the Hub")],
    weights_dir: WeightsDir = None,
    role: Annotated[list[str] | None, typer.Option(help="Only these files (dit, vae, text_encoder, tokenizer, taehv, lora)")] = None,
    no_optional: Annotated[bool, typer.Option("--no-optional", help="Skip optional files (the TAEHV fast decoder)")] = False,
    file: Annotated[str | None, typer.Option("--file", help="LoRA repos: the file to take when the repo holds several")] = None,
    lora_dir: Annotated[Path | None, typer.Option("--lora-dir", help="LoRA repos: the LoRA folder (default: $LIVESTYLE_LORA_DIR, else ~/.cache/livestyle/loras)")] = None,
) -> None:
    """Download a model's files into the Hugging Face cache (or --weights-dir), resuming partial downloads;
    or a LoRA (OWNER/REPO) into the LoRA folder, where --lora, presets and the page find it by name."""
    from rich.console import Console

    from livestyle.models.weights import FileSpec, get_model, list_models
    from livestyle.models.weights_pull import pull

    console = Console(stderr=True)
    if "/" in name and name not in {m.name for m in list_models()}:
        from livestyle.diffusion.loras import default_lora_dir, lora_name, pull_lora

        path = pull_lora(name, filename=file, folder=lora_dir)
        folder = lora_dir or default_lora_dir()
        short = lora_name(path, folder)
        console.print(f"[green]downloaded[/green] {path}\n[bold]LoRA {short}[/bold] is ready: --lora {short}")
        return
    model = get_model(name)

    def report(spec: FileSpec, path: Path, status: str) -> None:
        colour = {"present": "dim", "downloaded": "green", "generated": "cyan"}[status]
        console.print(f"[{colour}]{status:>10}[/{colour}] {spec.role:<13} {path}")

    pull(model, weights_dir=weights_dir, roles=role, include_optional=not no_optional, on_file=report)
    console.print(f"[bold]{model.name}[/bold] is ready")


@weights_app.command("verify")
def verify_cmd(
    name: Annotated[str, typer.Argument(help="Registry name")],
    weights_dir: WeightsDir = None,
    no_hash: Annotated[bool, typer.Option("--no-hash", help="Skip content hashes (sizes, headers and tensor shapes are still checked)")] = False,
) -> None:
    """Check each file: exact size and hash where the registry knows them, the format header, tensor
    names and shapes against the model config; list what could not be checked as unverified."""
    from rich.console import Console
    from rich.table import Table

    from livestyle.models.weights import get_model, human_size
    from livestyle.models.weights_verify import verify

    model = get_model(name)
    results = verify(model, weights_dir=weights_dir, check_hashes=not no_hash)
    table = Table(title=f"{model.name}: {model.title}")
    for col in ("role", "result", "size", "checked", "unverified", "path / problem"):
        table.add_column(col)
    colours = {"verified": "green", "checked": "yellow", "FAIL": "red", "missing": "red", "optional, absent": "dim"}
    for r in results:
        colour = colours[r.state]
        where = r.problem if r.problem and not r.path else str(r.path) + (f" ({r.problem})" if r.problem else "")
        table.add_row(r.spec.role, f"[{colour}]{r.state}[/{colour}]", human_size(r.size), "; ".join(r.checked) or "-",
                      "; ".join(r.unverified) or "-", where)
    Console().print(table)
    bad = [r for r in results if not r.ok]
    if bad:
        first = bad[0]
        raise WeightsError(
            f"{len(bad)} of {len(results)} files of {model.name!r} failed verification ({first.spec.role}: {first.problem}); "
            f"run `livestyle weights pull {model.name}`"
        )
    partial = sum(1 for r in results if r.path is not None and r.unverified)
    if partial:
        Console(stderr=True).print(f"{model.name}: every check that could run passed; {partial} of {len(results)} files "
                                   "are partly unverified (see the 'unverified' column)")


@weights_app.command("path")
def path_cmd(
    name: Annotated[str, typer.Argument(help="Registry name")],
    weights_dir: WeightsDir = None,
    role: Annotated[str | None, typer.Option(help="Print only this file's path (for scripts)")] = None,
) -> None:
    """Print where each of a model's files is (or fail naming the missing file)."""
    from livestyle.models.weights import get_model, resolve

    model = get_model(name)
    if role is not None:
        print(resolve(model, role, weights_dir=weights_dir))
        return
    for r, spec in model.files.items():
        if spec.optional:
            from livestyle.models.weights import locate

            found, _ = locate(model, r, weights_dir=weights_dir)
            print(f"{r}\t{found if found else '(optional, not downloaded)'}")
        else:
            print(f"{r}\t{resolve(model, r, weights_dir=weights_dir)}")


def register(app: typer.Typer) -> None:
    """Add the ``weights`` verb group to the CLI."""
    app.add_typer(weights_app, name="weights")
