"""How log records reach the user: ``warning: message``, like every other message the CLI prints.

Logger names (``livestyle.engine.runner``) are for developers: they appear only when
``LIVESTYLE_LOG`` asks for ``INFO`` or ``DEBUG``.
"""

from __future__ import annotations

import logging
import os

__all__ = ["UserFormatter", "setup_logging"]


class UserFormatter(logging.Formatter):
    """``warning: text`` / ``error: text``; with ``verbose``, ``info livestyle.x: text``."""

    def __init__(self, *, verbose: bool = False) -> None:
        super().__init__()
        self.verbose = verbose

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.exc_info and self.verbose:
            text += "\n" + self.formatException(record.exc_info)
        level = record.levelname.lower()
        return f"{level} {record.name}: {text}" if self.verbose else f"{level}: {text}"


def setup_logging(env: str = "LIVESTYLE_LOG") -> None:
    """Log to stderr at ``$LIVESTYLE_LOG`` (default ``WARNING``) in the user format."""
    level = os.environ.get(env, "WARNING").upper()
    handler = logging.StreamHandler()
    verbose = level in ("DEBUG", "INFO")
    handler.setFormatter(UserFormatter(verbose=verbose))
    logging.basicConfig(level=level, handlers=[handler], force=True)
