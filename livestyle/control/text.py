"""Command text checked at the edge: what a prompt may contain before it reaches the stream.

Every command source (API, WebSocket, OBS, hotkeys, presets, ``--prompt``) goes through
:func:`normalize_prompt` (via the :class:`~livestyle.control.controller.Controller`), so text that
would break the prompt cache or the tokenizer never reaches the generator thread:

- Unicode is NFC-normalised, so the same words typed on two systems are one cache entry;
- tabs and line breaks become spaces, runs of whitespace collapse, the ends are stripped;
- lone UTF-16 surrogates (``"\\ud800"``: not encodable as UTF-8) and other control characters
  (C0, DEL, C1) are refused with a one-line :class:`~livestyle.errors.ControlError` naming the
  first offending character and its position.
"""

from __future__ import annotations

import re
import unicodedata

from livestyle.errors import ControlError

__all__ = ["normalize_prompt", "first_bad_character"]

_WHITESPACE = re.compile(r"\s+")
_SPACE_CONTROLS = frozenset("\t\n\r\v\f")


def first_bad_character(text: str) -> tuple[int, str] | None:
    """``(index, reason)`` of the first surrogate or control character in ``text``; None if clean."""
    for i, ch in enumerate(text):
        code = ord(ch)
        if 0xD800 <= code <= 0xDFFF:
            return i, f"a lone surrogate U+{code:04X}"
        if ch in _SPACE_CONTROLS:
            continue
        if unicodedata.category(ch) == "Cc":
            return i, f"a control character U+{code:04X}"
    return None


def normalize_prompt(text: object, *, what: str = "the prompt") -> str:
    """``text`` NFC-normalised with whitespace collapsed; :class:`ControlError` for non-text,
    surrogates and control characters (the length limit is the caller's)."""
    if not isinstance(text, str):
        raise ControlError(f"{what} must be text, got {type(text).__name__}")
    bad = first_bad_character(text)
    if bad is not None:
        index, reason = bad
        raise ControlError(f"{what} contains {reason} at position {index}; send plain text")
    text = unicodedata.normalize("NFC", text)
    return _WHITESPACE.sub(" ", text).strip()
