"""URL checks shared by sources and sinks: a malformed URL is a one-line error, never a traceback.

``urlsplit`` raises ``ValueError`` for an unclosed ``[`` IPv6 bracket and ``.port`` for a port that
is not a number in 0..65535; FFmpeg would otherwise be handed ``udp://127.0.0.1:99999`` and send
to port 99999 mod 65536.
"""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit

__all__ = ["check_url"]


def check_url(spec: str, error: type[Exception]) -> SplitResult | None:
    """``spec`` split, when it is a URL (has ``://``); raises ``error`` naming what is malformed."""
    if "://" not in spec:
        return None
    try:
        parts = urlsplit(spec)
        parts.port  # noqa: B018 - validates the port (a number in 0..65535)
    except ValueError as exc:
        raise error(f"malformed URL {spec!r}: {exc}") from None
    return parts
