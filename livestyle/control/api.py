"""The control API: HTTP + WebSocket routes that drive a :class:`Controller`.

Routes (all JSON; token auth comes from the app's ``token_middleware``):

=========================  ====================================================================
``GET /api/params``        the current parameters
``PATCH /api/params``      change any of prompt, transition_chunks, strength, steps, seed,
                           bypass, effect, preset, loras (all validated before anything applies)
``POST /api/prompt``       ``{"prompt": "...", "transition_chunks": 2}``
``POST /api/presets/{k}``  select a preset by name or 1-based number
``GET /api/presets``       the preset list and which one is active
``GET /api/loras``         the LoRA folder's files (``name``, ``file``, ``bytes``) and the active LoRAs;
                           switch with ``PATCH /api/params {"loras": [{"name": ..., "scale": ...}]}``
``POST /api/reset``        drop the generator's temporal state
``GET /api/stats``         the runner's stats (fps, latency, drops, OBS bridge state, ...)
``GET /api/events``        WebSocket: ``{"type": "params"|"stats"|"error", ...}`` messages; the
                           client may send commands in the JSON form of :mod:`livestyle.control.wire`
=========================  ====================================================================

Errors answer ``{"error": "<one line>"}``: 400 for malformed JSON or bad values (prompts with
surrogates or control characters included: :mod:`livestyle.control.text`), 415 for a body that is
not ``application/json``, 404 (plus ``"valid"``) for an unknown preset, 409 when the stream cannot
apply a valid command now (e.g. ``effect: person`` without the person-mask model). WebSocket
messages are limited to ``WS_MAX_MESSAGE_BYTES`` (the socket closes with 1009 past it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web

from livestyle.control.controller import Controller, Params
from livestyle.control.presets import UnknownPresetError
from livestyle.control.wire import command_from_message, commands_from_fields
from livestyle.errors import CommandRefusedError, ControlError
from livestyle.engine.commands import Reset, SelectPreset, StreamCommand
from livestyle.server.security import WS_MAX_MESSAGE_BYTES, read_json_body

__all__ = ["EVENTS_KEY", "add_control_routes", "control_routes"]

log = logging.getLogger(__name__)

StatsFn = Callable[[], dict[str, Any]]

_CLIENT_QUEUE = 64


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str)


def _json(value: Any, status: int = 200) -> web.Response:
    return web.json_response(value, status=status, dumps=_dumps)


def _params_message(params: Params, applied: tuple[StreamCommand, ...] = ()) -> dict[str, Any]:
    return {"type": "params", "params": params.to_dict(), "applied": [type(c).__name__ for c in applied]}


class _EventHub:
    """Fans controller changes (from any thread) and periodic stats out to WebSocket clients."""

    def __init__(self, controller: Controller, stats: StatsFn, interval: float) -> None:
        self.controller = controller
        self.stats = stats
        self.interval = interval
        self.clients: set[asyncio.Queue[dict[str, Any]]] = set()
        self.sockets: set[web.WebSocketResponse] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._remove: Callable[[], None] | None = None
        self._ticker: asyncio.Task[None] | None = None

    async def on_startup(self, _app: web.Application) -> None:
        self._loop = asyncio.get_running_loop()
        self._remove = self.controller.add_listener(self._on_change)
        self._ticker = asyncio.create_task(self._tick())

    async def on_shutdown(self, _app: web.Application) -> None:
        if self._remove is not None:
            self._remove()
            self._remove = None
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        for ws in list(self.sockets):
            await ws.close(code=1001, message=b"server shutting down")

    def _on_change(self, params: Params, applied: tuple[StreamCommand, ...]) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        message = _params_message(params, applied)
        with contextlib.suppress(RuntimeError):  # the loop closed between the check and the call
            loop.call_soon_threadsafe(self.publish, message)

    def publish(self, message: dict[str, Any]) -> None:
        for q in self.clients:
            if q.full():  # a slow client loses its oldest messages, never blocks the others
                q.get_nowait()
            q.put_nowait(message)

    def stats_message(self) -> dict[str, Any]:
        try:
            return {"type": "stats", "stats": self.stats()}
        except Exception as exc:  # stats come from other parts; a failure must not end the stream
            log.warning("stats callback failed: %s", exc)
            return {"type": "error", "error": f"stats unavailable: {exc}"}

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            if self.clients:
                self.publish(self.stats_message())


EVENTS_KEY = web.AppKey("livestyle_control_events", _EventHub)


def _parse_message(text: str) -> Any:
    """A WebSocket message's JSON value; ControlError (one line) for anything unparsable."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ControlError(f"malformed JSON message: {exc}") from None
    except RecursionError:
        raise ControlError("malformed JSON message: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer longer than Python's digit limit
        raise ControlError(f"malformed JSON message: {str(exc).splitlines()[0]}") from None


def _error(exc: ControlError, controller: Controller) -> web.Response:
    if isinstance(exc, UnknownPresetError):
        return _json({"error": str(exc), "valid": list(controller.presets.names)}, status=404)
    if isinstance(exc, CommandRefusedError):
        return _json({"error": str(exc)}, status=409)
    return _json({"error": str(exc)}, status=400)


def control_routes(controller: Controller, *, stats: StatsFn,
                   events_interval: float = 1.0) -> Callable[[web.Application], None]:
    """What ``livestyle.server.app.create_app`` / ``ServerThread`` take as ``control_routes``:
    mounts :func:`add_control_routes` for ``controller`` and ``stats`` on the app it is given."""
    def install(app: web.Application) -> None:
        add_control_routes(app, controller, stats=stats, events_interval=events_interval)

    return install


def add_control_routes(
    app: web.Application,
    controller: Controller,
    *,
    stats: StatsFn,
    events_interval: float = 1.0,
) -> None:
    """Mount the control routes on ``app`` (before it starts). ``stats`` is called for
    ``GET /api/stats`` and every ``events_interval`` seconds for WebSocket clients."""
    hub = _EventHub(controller, stats, events_interval)
    app[EVENTS_KEY] = hub
    app.on_startup.append(hub.on_startup)
    app.on_shutdown.append(hub.on_shutdown)

    async def apply(*commands: Any) -> web.Response:
        # off the event loop: the stream's precondition may open a mask model first
        try:
            params = await asyncio.to_thread(controller.apply, *commands)
        except ControlError as exc:
            return _error(exc, controller)
        notice = controller.notice(*commands)  # e.g. a prompt on passthrough: applied, and it changes nothing
        return _json({**params.to_dict(), **({"notice": notice} if notice else {})})

    async def get_params(_request: web.Request) -> web.Response:
        return _json(controller.params.to_dict())

    async def patch_params(request: web.Request) -> web.Response:
        body = await read_json_body(request)
        try:
            commands = commands_from_fields(body)
        except ControlError as exc:
            return _error(exc, controller)
        return await apply(*commands)

    async def post_prompt(request: web.Request) -> web.Response:
        body = await read_json_body(request)
        if not isinstance(body, dict) or "prompt" not in body:
            return _json({"error": 'expected {"prompt": "...", "transition_chunks": N (optional)}'}, status=400)
        extra = set(body) - {"prompt", "transition_chunks"}
        if extra:
            return _json({"error": f"unknown field(s) {', '.join(sorted(extra))}; valid: prompt, transition_chunks"}, status=400)
        try:
            commands = commands_from_fields(body)
        except ControlError as exc:
            return _error(exc, controller)
        return await apply(*commands)

    async def post_preset(request: web.Request) -> web.Response:
        key: str | int = request.match_info["key"]
        if isinstance(key, str) and key.isascii() and key.isdigit() and len(key) <= 6:
            key = int(key) - 1
        return await apply(SelectPreset(key))

    async def get_presets(_request: web.Request) -> web.Response:
        presets = [{"number": i + 1, **p.to_dict()} for i, p in enumerate(controller.presets)]
        return _json({"presets": presets, "current": controller.params.preset})

    async def get_loras(_request: web.Request) -> web.Response:
        return _json(await asyncio.to_thread(controller.lora_catalog))  # a folder walk: off the loop

    async def post_reset(_request: web.Request) -> web.Response:
        return await apply(Reset())

    async def get_stats(_request: web.Request) -> web.Response:
        message = hub.stats_message()
        if message["type"] == "error":
            return _json({"error": message["error"]}, status=500)
        return _json(message["stats"])

    async def events(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=WS_MAX_MESSAGE_BYTES)
        await ws.prepare(request)
        q: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=_CLIENT_QUEUE)
        hub.clients.add(q)
        hub.sockets.add(ws)
        await ws.send_str(_dumps(_params_message(controller.params)))
        await ws.send_str(_dumps(hub.stats_message()))

        async def pump() -> None:
            while True:
                await ws.send_str(_dumps(await q.get()))

        sender = asyncio.create_task(pump())
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    command = command_from_message(_parse_message(msg.data))
                    await asyncio.to_thread(controller.apply, command)
                    notice = controller.notice(command)
                    if notice:
                        await ws.send_str(_dumps({"type": "notice", "notice": notice}))
                except ControlError as exc:
                    await ws.send_str(_dumps({"type": "error", "error": str(exc)}))
        finally:
            hub.clients.discard(q)
            hub.sockets.discard(ws)
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await sender
        return ws

    app.router.add_get("/api/params", get_params)
    app.router.add_patch("/api/params", patch_params)
    app.router.add_post("/api/prompt", post_prompt)
    app.router.add_get("/api/presets", get_presets)
    app.router.add_post("/api/presets/{key}", post_preset)
    app.router.add_get("/api/loras", get_loras)
    app.router.add_post("/api/reset", post_reset)
    app.router.add_get("/api/stats", get_stats)
    app.router.add_get("/api/events", events)
