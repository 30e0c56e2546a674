"""The aiohttp application: the page, ``/offer`` signalling, WHIP, WHEP and the control API.

Routes (``token``: needs the server token when one is set — always when bound beyond loopback):

| route | token | what |
|---|---|---|
| ``GET /``, ``GET /view``, ``GET /static/*`` | no | the page, the viewer page (OBS browser source), assets |
| ``GET /health`` | no | ``{"ok": true}`` |
| ``POST /offer`` | yes | JSON ``{"sdp", "type": "offer"}`` → ``{"sdp", "type": "answer", "session"}`` |
| ``DELETE /session/{id}`` | yes | end a page session |
| ``GET /sessions`` | yes | session counts and stream counters |
| ``POST /whip``, ``DELETE /whip/{id}`` | yes | WHIP publish |
| ``POST /whep``, ``DELETE /whep/{id}`` | yes | WHEP play |
| ``/api/...`` | yes | control API (``livestyle.control.api``), when a controller is given |

Request bodies are limited to ``max_body_bytes``; unknown ``Host`` names, cross-origin and
``Origin: null`` requests are refused (no CORS headers are ever sent); every response carries a
CSP with ``frame-ancestors 'none'``: see :mod:`livestyle.server.security`.
"""

from __future__ import annotations

import asyncio
import importlib
import ipaddress
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from aiohttp import web

from livestyle.errors import ServerError
from livestyle.server.auth import new_token, token_middleware
from livestyle.server.hub import CODECS, SessionLimitError, StreamHub, get_hub
from livestyle.server.security import (
    IDLE_TIMEOUT_S,
    REQUEST_TIMEOUT_S,
    HostPolicy,
    add_security_headers,
    read_json_body,
    runner_options,
    security_middleware,
)
from livestyle.server.webrtc import OfferError, SessionManager
from livestyle.server.whep import add_whep_routes
from livestyle.server.whip import SESSIONS_KEY, add_whip_routes

__all__ = [
    "HUB_KEY",
    "ServerSettings",
    "ServerThread",
    "base_middlewares",
    "create_app",
    "ensure_server",
    "is_loopback",
    "register_server",
    "running_server",
]

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("static")
STATIC_FILES: tuple[str, ...] = ("app.js", "view.js", "common.js", "style.css")
HUB_KEY: web.AppKey[StreamHub] = web.AppKey("livestyle_hub", StreamHub)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServerSettings:
    """The ``server`` config section.

    Attributes:
        host: bind address; 127.0.0.1 by default. Anything else requires a token.
        port: TCP port (0: any free port, for tests).
        token: bearer token for every route that publishes, views or changes the stream.
        max_publishers: publishing sessions at once (page cameras + WHIP); more get 409.
        max_viewers: viewing sessions at once (viewer pages + WHEP); more get 503.
        codec: output video codec, ``vp8`` or ``h264``.
        bitrate: output video bitrate, bits per second.
        max_body_bytes: largest accepted request body.
        allowed_hosts: ``Host`` names accepted besides loopback names/IPs and ``host``.
        idle_timeout: seconds to send request headers / idle keep-alive before the connection closes.
        request_timeout: seconds a plain HTTP request may take (408 after).
    """

    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = None
    max_publishers: int = 1
    max_viewers: int = 16
    codec: str = "vp8"
    bitrate: int = 2_000_000
    max_body_bytes: int = 64 * 1024
    allowed_hosts: tuple[str, ...] = ()
    idle_timeout: float = IDLE_TIMEOUT_S
    request_timeout: float = REQUEST_TIMEOUT_S

    @classmethod
    def from_config(cls, server: Any) -> ServerSettings:
        """Settings from the config tree's ``server`` section (``livestyle.config.ServerConfig``)."""
        values = {f: getattr(server, f) for f in cls.__dataclass_fields__ if hasattr(server, f)}
        if isinstance(values.get("allowed_hosts"), str):  # the config's comma-separated form
            values["allowed_hosts"] = tuple(h.strip() for h in values["allowed_hosts"].split(",") if h.strip())
        return cls(**values)

    def resolved(self) -> ServerSettings:
        """Validated settings; a generated token when bound beyond loopback without one."""
        if self.codec not in CODECS:
            raise ServerError(f"server.codec {self.codec!r} is not supported: use one of {', '.join(CODECS)}")
        if not 0 <= self.port <= 65535:
            raise ServerError(f"server.port {self.port} is out of range 0..65535")
        if self.token is not None and len(self.token) < 8:
            raise ServerError("server.token is too short: use at least 8 characters (or omit it to generate one)")
        if self.token is None and not is_loopback(self.host):
            return replace(self, token=new_token())
        return self

    def make_hub(self) -> StreamHub:
        return StreamHub(
            max_publishers=self.max_publishers,
            max_viewers=self.max_viewers,
            codec=self.codec,
            bitrate=self.bitrate,
        )


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer every HTTP error with a JSON body naming the reason."""
    try:
        return await handler(request)
    except web.HTTPRequestEntityTooLarge as exc:
        return web.json_response({"error": f"request body too large: {exc.text}"}, status=413)
    except web.HTTPException as exc:
        if exc.status >= 400 and exc.content_type != "application/json":
            return web.json_response({"error": exc.reason}, status=exc.status, headers={
                k: v for k, v in exc.headers.items() if k.lower() == "allow"
            })
        raise


def base_middlewares(settings: ServerSettings, public_paths: list[str]) -> list[Any]:
    """JSON errors, the checks of :mod:`livestyle.server.security`, then the token check."""
    policy = HostPolicy(settings.host, settings.allowed_hosts)
    return [
        json_errors,
        security_middleware(policy, max_body_bytes=settings.max_body_bytes, request_timeout=settings.request_timeout),
        token_middleware(settings.token, public_paths=public_paths),
    ]


async def offer(request: web.Request) -> web.Response:
    """Page signalling: JSON offer in, JSON answer out."""
    data = await read_json_body(request)
    if data.get("type") != "offer" or not isinstance(data.get("sdp"), str):
        return web.json_response({"error": 'expected {"type": "offer", "sdp": "<SDP text>"}'}, status=400)
    sessions = request.app[SESSIONS_KEY]
    try:
        session, answer = await sessions.create(data["sdp"])
    except OfferError as exc:
        return web.json_response({"error": str(exc)}, status=400)
    except SessionLimitError as exc:
        return web.json_response({"error": str(exc)}, status=exc.status)
    return web.json_response({"type": "answer", "sdp": answer, "session": session.id, "role": session.role})


async def delete_session(request: web.Request) -> web.Response:
    sid = request.match_info["sid"]
    if not await request.app[SESSIONS_KEY].close(sid):
        return web.json_response({"error": f"no session {sid}"}, status=404)
    return web.json_response({"closed": sid})


async def list_sessions(request: web.Request) -> web.Response:
    sessions = request.app[SESSIONS_KEY]
    return web.json_response(
        {
            "publishers": sessions.count("publisher"),
            "viewers": sessions.count("viewer"),
            "stream": request.app[HUB_KEY].stats(),
        }
    )


async def health(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


def _page(name: str) -> Handler:
    path = STATIC_DIR / name

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(path, headers={"Cache-Control": "no-store"})

    return handler


def _mount_control(app: web.Application, controller: object, stats: Callable[[], dict[str, Any]]) -> None:
    api = importlib.import_module("livestyle.control.api")
    api.add_control_routes(app, controller, stats=stats)


def create_app(
    settings: ServerSettings,
    hub: StreamHub,
    *,
    controller: object | None = None,
    stats: Callable[[], dict[str, Any]] | None = None,
    sessions: SessionManager | None = None,
) -> web.Application:
    """The aiohttp application for ``settings`` (use :meth:`ServerSettings.resolved` first).

    ``controller`` (a :class:`livestyle.control.controller.Controller`) mounts the ``/api``
    routes of ``livestyle.control.api.add_control_routes`` with ``stats`` (default: the hub's
    counters) behind ``/api/stats``; without one the page's controls are disabled.
    """
    public = ["/", "/view", "/health", "/favicon.ico"] + [f"/static/{f}" for f in STATIC_FILES]
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=base_middlewares(settings, public))
    add_security_headers(app)
    manager = sessions or SessionManager(hub)
    app[SESSIONS_KEY] = manager
    app[HUB_KEY] = hub
    app.router.add_get("/", _page("index.html"))
    app.router.add_get("/view", _page("view.html"))
    app.router.add_get("/health", health)
    for name in STATIC_FILES:
        app.router.add_get(f"/static/{name}", _page(name))
    app.router.add_post("/offer", offer)
    app.router.add_delete("/session/{sid}", delete_session)
    app.router.add_get("/sessions", list_sessions)
    add_whip_routes(app)
    add_whep_routes(app)
    if controller is not None:
        _mount_control(app, controller, stats or hub.stats)

    async def on_shutdown(app: web.Application) -> None:
        await manager.close_all()

    app.on_shutdown.append(on_shutdown)
    return app


class ServerThread:
    """Runs the app on its own event loop in a daemon thread, beside the runner's threads."""

    def __init__(
        self,
        settings: ServerSettings,
        hub: StreamHub,
        *,
        controller: object | None = None,
        stats: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.settings = settings.resolved()
        self.hub = hub
        self.controller = controller
        self.stats = stats
        self.loop: asyncio.AbstractEventLoop | None = None
        self.sessions: SessionManager | None = None
        self.port: int | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:8080``."""
        host = self.settings.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 10.0) -> ServerThread:
        """Start serving; raises :class:`ServerError` when the port cannot be bound."""
        self._thread = threading.Thread(target=self._run, name="livestyle-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise ServerError(f"the web server did not start within {timeout:.0f} s")
        if self._error is not None:
            err = self._error
            raise ServerError(
                f"cannot serve on {self.settings.host}:{self.settings.port} ({err}): choose another --port"
            ) from None
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self.loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._start())
        except BaseException as exc:  # reported to start() and re-raised there as ServerError
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._shutdown())
            loop.close()

    async def _make_app(self) -> web.Application:
        """The app to serve, built on the server's loop (subclasses serve a different app)."""
        self.hub.attach_loop(asyncio.get_running_loop())
        self.sessions = SessionManager(self.hub)
        return create_app(self.settings, self.hub, controller=self.controller, stats=self.stats, sessions=self.sessions)

    async def _start(self) -> None:
        app = await self._make_app()
        self._runner = web.AppRunner(app, access_log=None, **runner_options(self.settings.idle_timeout))
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.host, self.settings.port)
        await site.start()
        server = site._server  # the bound asyncio server: read the real port (port 0 in tests)
        self.port = int(server.sockets[0].getsockname()[1]) if server else self.settings.port

    async def _shutdown(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        self.hub.detach_loop()

    def call(self, coro: Awaitable[Any], timeout: float = 10.0) -> Any:
        """Run ``coro`` on the server's loop from another thread and return its result."""
        if self.loop is None:
            raise ServerError("the web server is not running")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)  # type: ignore[arg-type]

    def stop(self) -> None:
        """Close every session and stop serving (idempotent)."""
        loop, thread = self.loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        self.loop = None


_running: ServerThread | None = None
_running_lock = threading.Lock()


def running_server() -> ServerThread | None:
    """The server :func:`ensure_server` started (or :func:`register_server` registered), if any."""
    return _running


def register_server(server: ServerThread | None) -> None:
    """Make ``server`` the process's server (``livestyle serve`` starts its own, with controls)."""
    global _running
    with _running_lock:
        _running = server


def ensure_server(settings: ServerSettings | None = None, *, hub: StreamHub | None = None) -> ServerThread:
    """The process's server, started on first call (used by ``--source webrtc`` / ``--sink webrtc``)."""
    global _running
    with _running_lock:
        if _running is None or _running.loop is None:
            server = ServerThread(settings or ServerSettings(), hub or get_hub()).start()
            log.warning("livestyle page: %s/%s", server.url, f"?token={server.settings.token}" if server.settings.token else "")
            _running = server
        return _running
