"""The control API over real HTTP and WebSocket (aiohttp test server on 127.0.0.1), with token auth."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient, TestServer

from livestyle.control.api import add_control_routes
from livestyle.control.controller import Controller, Params
from livestyle.control.presets import Preset, PresetBook
from livestyle.engine.commands import Reset, SetPrompt, SetStrength
from livestyle.server.auth import token_middleware

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BOOK = PresetBook([Preset("ink", "an ink drawing", strength=0.5), Preset("neon", "neon city", steps=3)])


def run(test: Callable[[TestClient, Controller, list[Any]], Awaitable[None]], *, stats: Callable[[], dict[str, Any]] | None = None) -> None:
    sent: list[Any] = []
    controller = Controller(BOOK, sent.append, Params("start", 0.6, 2, 42))
    counter = {"n": 0}

    def default_stats() -> dict[str, Any]:
        counter["n"] += 1
        return {"fps": 30.0, "calls": counter["n"]}

    async def main() -> None:
        app = web.Application(middlewares=[token_middleware(TOKEN)])
        add_control_routes(app, controller, stats=stats or default_stats, events_interval=0.05)
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            await test(client, controller, sent)

    asyncio.run(main())


def test_requests_without_the_token_are_refused() -> None:
    async def body(client: TestClient, controller: Controller, sent: list[Any]) -> None:
        for method, path in (("GET", "/api/params"), ("POST", "/api/presets/ink"), ("GET", "/api/events")):
            r = await client.request(method, path)
            assert r.status == 401, path
            assert "token" in (await r.json())["error"]
        r = await client.get("/api/params", params={"token": "wrong"})
        assert r.status == 401
        assert sent == []

    run(body)


def test_get_and_patch_params() -> None:
    async def body(client: TestClient, controller: Controller, sent: list[Any]) -> None:
        r = await client.get("/api/params", headers=AUTH)
        assert r.status == 200
        assert (await r.json())["prompt"] == "start"
        r = await client.patch("/api/params", headers=AUTH, json={"strength": 0.25, "prompt": "oil paint", "transition_chunks": 2})
        assert r.status == 200
        data = await r.json()
        assert data["strength"] == 0.25 and data["prompt"] == "oil paint"
        assert sent == [SetPrompt("oil paint", 2), SetStrength(0.25)]
        # query-string token works too (browsers, OBS)
        r = await client.get("/api/params", params={"token": TOKEN})
        assert (await r.json())["strength"] == 0.25

    run(body)


def test_bad_bodies_get_400_with_a_reason_and_change_nothing() -> None:
    async def body(client: TestClient, controller: Controller, sent: list[Any]) -> None:
        cases = [
            ("PATCH", "/api/params", "{not json", "malformed JSON: Expecting property name"),
            ("PATCH", "/api/params", "", "empty body"),
            ("PATCH", "/api/params", '{"strength": 2}', "strength must be a number in [0, 1], got 2"),
            ("PATCH", "/api/params", '{"steps": 1, "strength": -1}', "strength must be a number in [0, 1]"),
            ("PATCH", "/api/params", '{"colour": 1}', "params: unknown field(s) 'colour'"),
            ("POST", "/api/prompt", '{"text": "x"}', 'expected {"prompt"'),
            ("POST", "/api/prompt", '{"prompt": ""}', "the prompt is empty"),
            ("POST", "/api/prompt", '{"prompt": "x", "mood": 1}', "unknown field(s) mood"),
        ]
        for method, path, data, error in cases:
            r = await client.request(method, path, headers={**AUTH, "Content-Type": "application/json"}, data=data)
            assert r.status == 400, (path, data)
            assert (await r.json())["error"].startswith(error), (data, await r.text())
        assert sent == []
        assert controller.params.prompt == "start"

    run(body)


def test_prompt_and_presets() -> None:
    async def body(client: TestClient, controller: Controller, sent: list[Any]) -> None:
        r = await client.post("/api/prompt", headers=AUTH, json={"prompt": "a pencil sketch"})
        assert r.status == 200 and (await r.json())["prompt"] == "a pencil sketch"
        r = await client.get("/api/presets", headers=AUTH)
        listing = await r.json()
        assert [p["name"] for p in listing["presets"]] == ["ink", "neon"]
        assert listing["presets"][1]["number"] == 2 and listing["current"] is None
        r = await client.post("/api/presets/neon", headers=AUTH)
        assert (await r.json())["preset"] == "neon"
        r = await client.post("/api/presets/1", headers=AUTH)  # 1-based number
        assert (await r.json())["prompt"] == "an ink drawing"
        assert (await (await client.get("/api/presets", headers=AUTH)).json())["current"] == "ink"
        r = await client.post("/api/presets/vaporwave", headers=AUTH)
        assert r.status == 404
        err = await r.json()
        assert err["error"] == "unknown preset 'vaporwave'; valid: 1:ink, 2:neon"
        assert err["valid"] == ["ink", "neon"]
        r = await client.post("/api/presets/7", headers=AUTH)
        assert r.status == 404 and "no preset number 7" in (await r.json())["error"]
        r = await client.post("/api/reset", headers=AUTH)
        assert r.status == 200 and sent[-1] == Reset()

    run(body)


def test_stats() -> None:
    async def body(client: TestClient, controller: Controller, sent: list[Any]) -> None:
        r = await client.get("/api/stats", headers=AUTH)
        assert r.status == 200
        assert (await r.json())["fps"] == 30.0

    run(body)

    def broken() -> dict[str, Any]:
        raise RuntimeError("runner gone")

    async def failing(client: TestClient, controller: Controller, sent: list[Any]) -> None:
        r = await client.get("/api/stats", headers=AUTH)
        assert r.status == 500 and "runner gone" in (await r.json())["error"]

    run(failing, stats=broken)


def test_events_stream_params_and_stats_and_accept_commands() -> None:
    async def body(client: TestClient, controller: Controller, sent: list[Any]) -> None:
        ws = await client.ws_connect("/api/events", headers=AUTH)
        first = json.loads((await ws.receive(timeout=5)).data)
        assert first["type"] == "params" and first["params"]["prompt"] == "start"

        async def next_of(kind: str) -> dict[str, Any]:
            while True:
                msg = await ws.receive(timeout=5)
                assert msg.type == WSMsgType.TEXT
                data = json.loads(msg.data)
                if data["type"] == kind:
                    return data

        stats = await next_of("stats")
        assert stats["stats"]["fps"] == 30.0
        ticks = (await next_of("stats"))["stats"]["calls"]
        assert ticks > stats["stats"]["calls"]  # stats keep coming

        # a change from another thread (a hotkey, OBS) reaches the socket
        t = threading.Thread(target=controller.apply, args=(SetStrength(0.1),))
        t.start()
        t.join()
        change = await next_of("params")
        assert change["params"]["strength"] == 0.1 and change["applied"] == ["SetStrength"]

        # commands over the socket, in the shared JSON form
        await ws.send_str(json.dumps({"command": "preset", "name": "neon"}))
        change = await next_of("params")
        assert change["params"]["preset"] == "neon" and change["params"]["steps"] == 3
        await ws.send_str("{oops")
        assert (await next_of("error"))["error"].startswith("malformed JSON message")
        await ws.send_str(json.dumps({"command": "preset", "number": 9}))
        assert "no preset number 9" in (await next_of("error"))["error"]
        await ws.close()

    run(body)
