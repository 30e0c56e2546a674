"""The livestyle exception hierarchy.

Library code raises these; only ``livestyle.cli`` turns them into a one-line message and an exit
code. Each message names the problem and what to do about it.
"""

from __future__ import annotations

__all__ = [
    "LivestyleError",
    "ConfigError",
    "ModelLoadError",
    "WeightsError",
    "SourceError",
    "SinkError",
    "SinkFailedError",
    "PipelineError",
    "StageFailedError",
    "ControlError",
    "CommandRefusedError",
    "ServerError",
    "one_line",
]


class LivestyleError(Exception):
    """Base of every error livestyle raises on purpose. ``exit_code`` is what the CLI returns."""

    exit_code: int = 1


class ConfigError(LivestyleError):
    """A bad configuration value, unknown key or invalid command-line option."""

    exit_code = 2


class ModelLoadError(LivestyleError):
    """A checkpoint that cannot be read, is in an unknown format or does not fit the model."""


class WeightsError(LivestyleError):
    """A registry name that does not exist, a missing file, a failed download or verification."""


class SourceError(LivestyleError):
    """A video source that cannot be opened or read (missing file, absent camera, bad URL)."""


class SinkError(LivestyleError):
    """A video sink that cannot be opened or written (unwritable path, missing device)."""


class SinkFailedError(SinkError):
    """A run that went to its end but lost a sink on the way (exit code 3: the stream and the
    other sinks went on, that sink's output is incomplete)."""

    exit_code = 3


class PipelineError(LivestyleError):
    """The generator cannot run with the requested settings."""


class StageFailedError(PipelineError):
    """A stage process of a ``--gpus N`` stream died or failed; the message names the stage."""


class ControlError(LivestyleError):
    """A command that cannot be applied (unknown preset, value out of range)."""


class CommandRefusedError(ControlError):
    """A valid command the stream cannot apply now (a precondition such as a missing mask model is
    unmet); the API answers 409 with this message."""


class ServerError(LivestyleError):
    """The web server cannot start or a session cannot be created."""


def one_line(exc: BaseException) -> str:
    """``exc`` as one line for a status or report: a livestyle error's message as is, anything else
    prefixed with its type (``ValueError: ...``)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if isinstance(exc, LivestyleError) else f"{type(exc).__name__}: {text}"
