"""Token authentication for every route that can publish, view or change the stream.

Clients send ``Authorization: Bearer <token>`` or, where headers cannot be set (a browser
``<video>``, an OBS browser source, a WebSocket), ``?token=<token>``. With no token configured
(the loopback default) every request passes.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web

__all__ = ["token_middleware", "new_token", "request_token"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def new_token() -> str:
    """A fresh random token, safe to put in a URL."""
    return secrets.token_urlsafe(24)


def request_token(request: web.Request) -> str | None:
    """The token a request carries, from the Authorization header or the ``token`` query parameter."""
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[len("Bearer ") :].strip()
    return request.query.get("token")


def token_middleware(token: str | None, *, public_paths: Iterable[str] = ()) -> Callable:
    """An aiohttp middleware that answers 401 unless the request carries ``token``.

    ``public_paths`` (exact paths, e.g. static assets of the page) skip the check; the page itself
    then needs the token in its URL to reach anything that matters.
    """
    public = frozenset(public_paths)

    @web.middleware
    async def check_token(request: web.Request, handler: Handler) -> web.StreamResponse:
        if token is None or request.path in public or request.method == "OPTIONS":
            return await handler(request)
        given = request_token(request)
        # undecodable header bytes arrive as lone surrogates: "surrogatepass" never raises (401, not 500)
        if given is None or not hmac.compare_digest(given.encode("utf-8", "surrogatepass"), token.encode()):
            return web.json_response(
                {"error": "missing or wrong token: pass 'Authorization: Bearer <token>' or '?token=<token>'"},
                status=401,
            )
        return await handler(request)

    return check_token
