"""WHEP egress: ``POST /whep`` with a receive-only SDP offer plays the styled output.

Same resource shape as WHIP (see :mod:`livestyle.server.whip`): ``201`` + ``Location`` +
answer SDP, ``DELETE`` to stop, ``405`` for ``PATCH``, ``400`` for a bad offer and ``503`` past
the viewer limit. Every WHEP player shares the one encoded output stream (relay): adding viewers
costs packetization only, not another encode.
"""

from __future__ import annotations

from aiohttp import web

from livestyle.server.whip import add_sdp_resource_routes

__all__ = ["add_whep_routes"]


def add_whep_routes(app: web.Application) -> None:
    """``POST /whep`` (play), ``DELETE /whep/{id}``."""
    add_sdp_resource_routes(app, "/whep", "view")
