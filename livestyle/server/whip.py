"""WHIP ingest (RFC 9725): ``POST /whip`` with an SDP offer publishes into livestyle.

The shape, shared with WHEP (:mod:`livestyle.server.whep`):

- ``POST <prefix>`` with ``Content-Type: application/sdp`` → ``201 Created``, the answer SDP as
  body and ``Location: <prefix>/<session id>``;
- ``DELETE <prefix>/<session id>`` ends the session (``200``; ``404`` if unknown);
- ``PATCH`` (trickle ICE / ICE restart) → ``405``: the answer carries every candidate, as the
  RFC allows;
- a bad offer (or a body that is not UTF-8) → ``400`` with the reason; past the session limit → ``409`` (publishers) or
  ``503`` (viewers).

OBS 30+: Settings → Stream → Service "WHIP", Server ``http://HOST:PORT/whip``, Bearer Token = the
server's token (if any).
"""

from __future__ import annotations

from typing import Literal

from aiohttp import web

from livestyle.server.hub import SessionLimitError
from livestyle.server.security import read_text_body
from livestyle.server.webrtc import OfferError, SessionManager

__all__ = ["SESSIONS_KEY", "add_sdp_resource_routes", "add_whip_routes"]

SESSIONS_KEY: web.AppKey[SessionManager] = web.AppKey("livestyle_sessions", SessionManager)


def add_sdp_resource_routes(app: web.Application, prefix: str, want: Literal["publish", "view"]) -> None:
    """Add WHIP/WHEP-shaped routes under ``prefix`` (e.g. ``/whip``) answering offers of kind ``want``."""

    async def post(request: web.Request) -> web.Response:
        if request.content_type != "application/sdp":
            return web.json_response(
                {"error": f"send the offer with Content-Type: application/sdp, not {request.content_type or 'none'}"},
                status=415,
            )
        offer = await read_text_body(request)
        sessions = request.app[SESSIONS_KEY]
        try:
            session, answer = await sessions.create(offer, want=want)
        except OfferError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        except SessionLimitError as exc:
            return web.json_response({"error": str(exc)}, status=exc.status)
        location = f"{prefix}/{session.id}"
        return web.Response(
            status=201,
            text=answer,
            content_type="application/sdp",
            headers={"Location": location, "ETag": f'"{session.id}"'},
        )

    async def delete(request: web.Request) -> web.Response:
        sessions = request.app[SESSIONS_KEY]
        sid = request.match_info["sid"]
        if not await sessions.close(sid):
            return web.json_response({"error": f"no session {sid}"}, status=404)
        return web.Response(status=200)

    async def patch(request: web.Request) -> web.Response:
        return web.json_response(
            {"error": "trickle ICE and ICE restarts are not supported: the answer has every candidate"},
            status=405,
        )

    app.router.add_post(prefix, post)
    app.router.add_delete(prefix + "/{sid}", delete)
    app.router.add_patch(prefix + "/{sid}", patch)


def add_whip_routes(app: web.Application) -> None:
    """``POST /whip`` (publish), ``DELETE /whip/{id}``."""
    add_sdp_resource_routes(app, "/whip", "publish")
