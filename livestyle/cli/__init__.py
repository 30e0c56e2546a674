"""The ``livestyle`` command line. The only place that turns errors into messages and exit codes.

Each verb lives in ``livestyle/cli/<verb>.py`` and exposes ``register(app)``; heavy imports
(torch, av, aiortc) happen inside the command functions so ``--help`` stays fast and the model
commands work on machines without the I/O extras.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable

import typer

try:  # typer >= 0.20 vendors click
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover - older typer on real click
    from click import ClickException

from livestyle.cli.signals import SignalWatch, Terminated, signal_exit_code
from livestyle.errors import LivestyleError

__all__ = ["app", "main"]

_PLAIN_TYPES = {"str": "TEXT", "int": "INTEGER", "float": "FLOAT", "Path": "PATH"}


def _plain_type_hint(original: Callable[..., str | None]) -> Callable[..., str | None]:
    """Help's type column in the conventions a streamer knows: nothing for flags, ``TEXT``,
    ``PATH``, ``[full|tiny]`` (typer 0.29 prints Python types: ``<bool>``, ``<list[str]>``)."""

    def hint(self: object, ctx: object) -> str | None:
        if getattr(self, "is_flag", False):
            return None
        metavar = getattr(self, "metavar", None)
        if metavar and not str(metavar).startswith("<"):
            return str(metavar)
        inner = (original(self, ctx) or "").removeprefix("<").removesuffix(">")
        if inner.startswith("list[") and inner.endswith("]"):
            inner = inner[5:-1]
        if "|" in inner:
            return f"[{inner}]"
        return _PLAIN_TYPES.get(inner, inner.upper()) or None

    return hint


for _kind in ("TyperOption", "TyperArgument"):  # typer >= 0.25 renders the type column through these
    _cls = getattr(getattr(typer, "core", None), _kind, None)
    if _cls is not None and hasattr(_cls, "display_type_rich"):
        _cls.display_type_rich = _plain_type_hint(_cls.display_type_rich)  # type: ignore[method-assign]

app = typer.Typer(
    name="livestyle",
    help="Live video re-styling for streamers: webcam/OBS/browser in, styled video out.",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)

def _version(value: bool) -> None:
    if value:
        from livestyle import __version__

        print(f"livestyle {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", "-V", callback=_version, is_eager=True,
                                 help="Print the version and exit"),
) -> None:
    """Live video re-styling for streamers: webcam/OBS/browser in, styled video out."""


from livestyle.cli import bench, budget, demo, doctor, run, serve, weights  # noqa: E402 - they register on app

for _command in (budget, run, demo, doctor, serve, weights, bench):  # the order of `livestyle --help`
    _command.register(app)


def _setup_logging() -> None:
    from livestyle.logs import setup_logging

    setup_logging()  # "warning: text"; logger names only with LIVESTYLE_LOG=INFO or DEBUG


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the process exit code instead of raising.

    Exit codes (docs/exit-codes.md): 0 done; 1 an error (a source that broke, a model that would
    not load, ...); 2 a bad option or config value; 3 the run ended but a sink failed on the way;
    128 + N when signal N stopped it (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP), recordings finalized.
    An error outranks a failed sink, which outranks a signal.
    """
    _setup_logging()
    if not (sys.argv[1:] if argv is None else argv):
        argv = ["--help"]  # bare `livestyle`: the help, exit 0 (not a usage error)
    with SignalWatch() as signals:
        code = _run_app(argv)
        first = signals.first()
    if code == 0 and first is not None:
        print(f"stopped by {signal.Signals(first).name}", file=sys.stderr)
        return signal_exit_code(first)
    return code


def _run_app(argv: list[str] | None) -> int:
    try:
        result = app(args=argv, prog_name="livestyle", standalone_mode=False)
    except LivestyleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except typer.Exit as exc:
        return int(exc.exit_code)
    except ClickException as exc:
        exc.show()
        return int(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        print("stopped", file=sys.stderr)
        return signal_exit_code(signal.SIGINT)
    except Terminated as exc:
        print(f"stopped by {signal.Signals(exc.signum).name}", file=sys.stderr)
        return signal_exit_code(exc.signum)
    # without standalone mode, click hands back a `typer.Exit(code)` raised in a verb as the result
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
