"""Loopback hardening: what a web page of another origin, or a DNS name rebound to 127.0.0.1,
cannot make the server do.

The server has no token on loopback by default, so the browser itself is the threat: any page the
user visits can send requests to ``http://127.0.0.1:PORT``. Every request therefore passes these
checks (middleware order: host, size, origin, then the route):

- **Host allow-list** (every route): ``localhost`` / ``*.localhost``, loopback IPs, the bind
  address, any IP literal when bound to a wildcard address, and ``server.allowed_hosts``.
  A rebinding attack reaches us under the attacker's *name*, so a name we do not know → 403.
- **Early 413**: a ``Content-Length`` above ``max_body_bytes`` is answered at once and the
  connection closed, before a byte of the body is read.
- **Origin** (every request that carries one, so every state-changing request and WebSocket
  upgrade a browser sends): same origin only; ``Origin: null`` (sandboxed frames, ``file:``
  pages) → 403. Clients that send no Origin (curl, OBS, WHIP/WHEP players) are not browsers'
  cross-site requests and pass (the token, when set, still applies).
- **Response headers** on everything: a Content-Security-Policy with ``frame-ancestors 'none'``,
  ``X-Frame-Options: DENY``, ``nosniff``, no referrer, same-origin resource and opener policies.
- **Timeouts**: a connection must complete its request headers within ``idle_timeout`` seconds of
  opening (or of its previous response), else it is closed (aiohttp's keep-alive timer, which
  also closes idle keep-alive connections); a plain HTTP request must be answered within
  ``request_timeout`` seconds (408), which bounds slow bodies. WebSockets are exempt (they have
  heartbeats and a message cap, :data:`WS_MAX_MESSAGE_BYTES`).

JSON bodies are read by :func:`read_json_body`: ``Content-Type: application/json`` only (415),
strict UTF-8, and malformed, too-deep or too-long-number JSON → 400, never a 500.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from aiohttp import hdrs, web

__all__ = [
    "CSP",
    "IDLE_TIMEOUT_S",
    "REQUEST_TIMEOUT_S",
    "SECURITY_HEADERS",
    "WS_MAX_MESSAGE_BYTES",
    "HostPolicy",
    "add_security_headers",
    "json_error",
    "read_json_body",
    "read_text_body",
    "runner_options",
    "security_middleware",
]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

IDLE_TIMEOUT_S = 10.0
"""Seconds a connection may take to send its request headers, or sit idle between requests."""

REQUEST_TIMEOUT_S = 30.0
"""Seconds a plain HTTP request (body read + handler) may take; WebSockets are exempt."""

WS_MAX_MESSAGE_BYTES = 16 * 1024
"""Largest WebSocket message a client may send (a command: the longest prompt fits many times)."""

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; media-src 'self' blob: mediastream:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
"""The pages load only their own scripts and talk only to their own origin; no one may frame them."""

SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}

_WILDCARDS = frozenset({"0.0.0.0", "::", ""})
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def json_error(message: str, status: int, **extra: Any) -> web.Response:
    """``{"error": message}`` with ``status``."""
    return web.json_response({"error": message, **extra}, status=status)


_HOST_VALUE = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::[0-9]{1,5})?")
"""A whole ``Host`` value (RFC 9110 ``uri-host [":" port]``, no userinfo): a list (``a, b``), a
userinfo (``x@127.0.0.1``) or anything after the port is refused, not cut down to its first host."""


def _split_host(value: str) -> str | None:
    """The host name or IP of a ``Host``/netloc value (``[::1]:80`` → ``::1``), lower case; None if
    unparsable or not one plain host (see ``_HOST_VALUE``)."""
    if _HOST_VALUE.fullmatch(value.strip()) is None:
        return None
    try:
        host = urlsplit("//" + value.strip()).hostname
    except ValueError:
        return None
    return host.lower().rstrip(".") if host else None


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


class HostPolicy:
    """Which ``Host`` header values the server answers (DNS-rebinding defence).

    Args:
        bind_host: the address the server listens on (``server.host``).
        extra: further names or addresses to accept (``server.allowed_hosts``).
    """

    def __init__(self, bind_host: str, extra: Iterable[str] = ()) -> None:
        self.bind_host = bind_host.strip("[]").lower()
        self.wildcard = self.bind_host in _WILDCARDS
        self.names = frozenset(h.strip("[]").lower().rstrip(".") for h in (self.bind_host, *extra) if h)

    def allows(self, host_header: str | None) -> bool:
        """Whether a request whose ``Host`` is ``host_header`` may be answered."""
        if not host_header:
            return False
        host = _split_host(host_header)
        if host is None:
            return False
        if host == "localhost" or host.endswith(".localhost") or host in self.names:
            return True
        ip = _ip(host)
        if ip is None:
            return False
        return ip.is_loopback or self.wildcard


def _same_origin(origin: str, request: web.Request) -> bool:
    try:
        parts = urlsplit(origin)
        port = parts.port
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        return False
    host = request.headers.get(hdrs.HOST, "")
    try:
        req = urlsplit("//" + host)
        req_port = req.port
    except ValueError:
        return False
    default = 443 if parts.scheme == "https" else 80
    return (
        parts.scheme == request.scheme
        and (parts.hostname or "").lower() == (req.hostname or "").lower()
        and (port or default) == (req_port or default)
    )


def _is_websocket(request: web.Request) -> bool:
    return request.headers.get(hdrs.UPGRADE, "").lower() == "websocket"


def security_middleware(
    policy: HostPolicy,
    *,
    max_body_bytes: int,
    request_timeout: float = REQUEST_TIMEOUT_S,
) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """The middleware doing the host, size, origin and time checks of the module docstring."""

    @web.middleware
    async def secure(request: web.Request, handler: Handler) -> web.StreamResponse:
        hosts = request.headers.getall(hdrs.HOST, [])
        host = hosts[0] if len(hosts) == 1 else ", ".join(hosts) or None  # two Host headers: refused
        if not policy.allows(host):
            return json_error(
                f"unknown Host {host!r}: open the server as http://127.0.0.1:PORT or http://localhost:PORT "
                "(other names: server.allowed_hosts)",
                403,
            )
        length = request.content_length
        if length is not None and length > max_body_bytes:
            response = json_error(f"request body too large: {length} bytes, the limit is {max_body_bytes}", 413)
            return await _answer_and_close(request, response)
        origin = request.headers.get(hdrs.ORIGIN)
        if origin is not None and not _same_origin(origin, request):
            return json_error(f"cross-origin request from {origin!r} refused", 403)
        if origin is None and request.method not in _SAFE_METHODS:
            site = request.headers.get("Sec-Fetch-Site")
            if site in ("cross-site", "same-site"):
                return json_error(f"{site} request refused", 403)
        if _is_websocket(request):
            return await handler(request)
        try:
            async with asyncio.timeout(request_timeout):
                return await handler(request)
        except TimeoutError:
            return await _answer_and_close(request, json_error(f"request not completed within {request_timeout:g} s", 408))

    return secure


async def _answer_and_close(request: web.Request, response: web.Response) -> web.Response:
    """Send ``response`` and close the connection without reading the rest of the body."""
    response.force_close()
    await response.prepare(request)
    await response.write_eof()
    if request.transport is not None:
        request.transport.close()
    return response


async def _add_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


def add_security_headers(app: web.Application) -> None:
    """Send :data:`SECURITY_HEADERS` with every response of ``app``."""
    app.on_response_prepare.append(_add_headers)


def runner_options(idle_timeout: float = IDLE_TIMEOUT_S) -> dict[str, Any]:
    """``web.AppRunner`` keyword arguments: headers must arrive, and idle connections close, within ``idle_timeout``."""
    return {"keepalive_timeout": idle_timeout}


async def read_text_body(request: web.Request) -> str:
    """The body as strict UTF-8 text; 400 for bytes that are not UTF-8 (never a 500)."""
    raw = await request.read()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": f"body is not valid UTF-8 (byte {exc.start})"}), content_type="application/json"
        ) from None


def _bad_request(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": message}), content_type="application/json")


async def read_json_body(request: web.Request, *, want_object: bool = True) -> Any:
    """The JSON body of ``request``: ``application/json`` only (415), strict UTF-8, a JSON value
    (an object when ``want_object``); anything else → 400 with a one-line reason."""
    if request.content_type != "application/json":
        raise web.HTTPUnsupportedMediaType(
            text=json.dumps({"error": f"send JSON with Content-Type: application/json, not {request.content_type or 'none'}"}),
            content_type="application/json",
        )
    text = await read_text_body(request)
    if not text.strip():
        raise _bad_request("empty body: send a JSON object")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _bad_request(f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise _bad_request("malformed JSON: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer longer than Python's digit limit
        raise _bad_request(f"malformed JSON: {str(exc).splitlines()[0]}") from None
    if want_object and not isinstance(data, dict):
        raise _bad_request("malformed JSON: expected an object")
    return data
