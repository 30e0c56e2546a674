"""Loopback hardening over real sockets: Host allow-list, Origin checks, early 413, timeouts,
WebSocket message cap, security headers, pending offers that expire (livestyle.server.security)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from livestyle.control.api import control_routes
from livestyle.control.controller import Controller, Params
from livestyle.control.presets import load_presets
from livestyle.server.app import ServerSettings, ServerThread
from livestyle.server.security import WS_MAX_MESSAGE_BYTES, HostPolicy
from livestyle.server.webrtc import CONNECT_TIMEOUT_S


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[ServerThread, list[Any]]]:
    sent: list[Any] = []
    controller = Controller(load_presets(), sent.append, Params("start", 0.6, 2, 42))
    settings = ServerSettings(port=0, idle_timeout=0.5, max_body_bytes=8192)
    server = ServerThread(settings, settings.make_hub(), control_routes=control_routes(controller, stats=lambda: {"fps": 1.0})).start()
    yield server, sent
    server.stop()


def raw(port: int, request: bytes, *, wait: float = 5.0) -> bytes:
    """Send ``request`` bytes on a fresh connection; everything answered until close or ``wait``."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as s:
        s.sendall(request)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except TimeoutError:
            pass
        return out


def request(port: int, method: str, path: str, *, host: str | None = None, headers: dict[str, str] | None = None,
            body: bytes = b"") -> tuple[int, bytes, bytes]:
    """``(status, header block, body)`` of one HTTP/1.1 request with exactly these headers."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host or f'127.0.0.1:{port}'}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body or method in ("POST", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    answer = raw(port, ("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    head, _, rest = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), head, rest


def test_host_policy_allows_loopback_names_and_refuses_others() -> None:
    loop = HostPolicy("127.0.0.1")
    for ok in ("127.0.0.1:8080", "localhost:8080", "LOCALHOST", "app.localhost:1", "[::1]:8080", "127.0.0.2"):
        assert loop.allows(ok), ok
    for bad in ("evil.test:8080", "192.168.1.5:8080", "", None, "[::1", "127.0.0.1.evil.test"):
        assert not loop.allows(bad), bad
    wild = HostPolicy("0.0.0.0", ["studio.lan"])
    assert wild.allows("192.168.1.5:8080") and wild.allows("studio.lan:8080") and not wild.allows("evil.test")


@pytest.mark.parametrize("path", ["/", "/health", "/api/params", "/sessions", "/static/app.js"])
def test_unknown_host_names_are_refused_on_every_route(stack: tuple[ServerThread, list[Any]], path: str) -> None:
    server, _ = stack
    status, _, body = request(server.port, "GET", path, host=f"rebind.evil.test:{server.port}")
    assert status == 403 and b"unknown Host" in body
    status, _, _ = request(server.port, "GET", "/health", host=f"localhost:{server.port}")
    assert status == 200


@pytest.mark.parametrize("origin", ["null", "http://evil.test", "http://127.0.0.1:1", "http://localhost"])
def test_foreign_and_null_origins_cannot_change_anything(stack: tuple[ServerThread, list[Any]], origin: str) -> None:
    server, sent = stack
    before = len(sent)
    for ctype in ("text/plain", "application/json"):
        status, _, body = request(server.port, "POST", "/api/prompt", headers={"Origin": origin, "Content-Type": ctype},
                                  body=b'{"prompt": "hijacked"}')
        assert status == 403 and b"cross-origin" in body
    status, _, _ = request(server.port, "POST", "/offer", headers={"Origin": origin, "Content-Type": "application/json"},
                           body=b"{}")
    assert status == 403
    assert len(sent) == before


def test_same_origin_json_is_accepted_and_other_content_types_are_not(stack: tuple[ServerThread, list[Any]]) -> None:
    server, sent = stack
    origin = f"http://127.0.0.1:{server.port}"
    status, _, body = request(server.port, "POST", "/api/prompt", headers={"Origin": origin, "Content-Type": "text/plain"},
                              body=b'{"prompt": "x"}')
    assert status == 415 and b"application/json" in body
    status, _, _ = request(server.port, "POST", "/api/prompt", headers={"Origin": origin, "Content-Type": "application/json"},
                           body=b'{"prompt": "same origin"}')
    assert status == 200 and sent[-1].text == "same origin"


def test_cross_site_fetch_metadata_without_origin_is_refused(stack: tuple[ServerThread, list[Any]]) -> None:
    server, _ = stack
    status, _, _ = request(server.port, "POST", "/api/reset", headers={"Sec-Fetch-Site": "cross-site"})
    assert status == 403


def test_pages_and_api_answers_carry_csp_and_frame_denial(stack: tuple[ServerThread, list[Any]]) -> None:
    server, _ = stack
    for path in ("/", "/view", "/api/params", "/nope"):
        _, head, _ = request(server.port, "GET", path)
        text = head.decode().lower()
        assert "content-security-policy:" in text and "frame-ancestors 'none'" in text, path
        assert "x-frame-options: deny" in text and "x-content-type-options: nosniff" in text


def test_oversized_content_length_is_answered_at_once(stack: tuple[ServerThread, list[Any]]) -> None:
    server, _ = stack
    t0 = time.monotonic()
    answer = raw(server.port, f"POST /api/prompt HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                              "Content-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n{".encode())
    assert answer.startswith(b"HTTP/1.1 413") and b"too large" in answer
    assert time.monotonic() - t0 < 2.0  # answered and closed, not read for 10 GB


def test_slow_headers_and_idle_connections_are_closed(stack: tuple[ServerThread, list[Any]]) -> None:
    server, _ = stack  # idle_timeout=0.5 s in this fixture
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # headers never finish
        t0 = time.monotonic()
        assert s.recv(100) == b""  # closed by the server
        assert time.monotonic() - t0 < 3.0
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        t0 = time.monotonic()
        assert s.recv(100) == b""  # a connection that never sends anything
        assert time.monotonic() - t0 < 3.0


def _ws(server: ServerThread, headers: dict[str, str], messages: list[str]) -> tuple[int | None, list[Any]]:
    async def go() -> tuple[int | None, list[Any]]:
        async with aiohttp.ClientSession() as s:
            try:
                ws = await s.ws_connect(f"{server.url}/api/events", headers=headers, max_msg_size=0)
            except aiohttp.WSServerHandshakeError as exc:
                return exc.status, []
            got: list[Any] = []
            async with ws:
                for m in messages:
                    await ws.send_str(m)
                while True:
                    msg = await asyncio.wait_for(ws.receive(), 5)
                    if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
                        return ws.close_code, got
                    got.append(msg.json() if msg.type == aiohttp.WSMsgType.TEXT else msg.type)
                    if len(got) >= 3:
                        return None, got
            return ws.close_code, got

    return asyncio.run(go())


def test_websocket_upgrade_from_another_origin_is_refused(stack: tuple[ServerThread, list[Any]]) -> None:
    server, _ = stack
    for origin in ("null", "http://evil.test"):
        status, _ = _ws(server, {"Origin": origin}, [])
        assert status == 403


def test_websocket_messages_past_the_cap_close_the_socket(stack: tuple[ServerThread, list[Any]]) -> None:
    server, sent = stack
    before = len(sent)
    big = '{"command": "prompt", "text": "' + "x" * WS_MAX_MESSAGE_BYTES + '"}'
    code, _ = _ws(server, {"Origin": server.url}, [big])
    # closed: with 1009 (message too big), or 1006 when the unread rest of the message makes the
    # kernel reset the connection before the client reads the close frame
    assert code in (1009, 1006)
    assert len(sent) == before


def test_websocket_bad_messages_answer_errors_and_the_socket_stays(stack: tuple[ServerThread, list[Any]]) -> None:
    server, _ = stack
    deep = "[" * 5000 + "]" * 5000
    code, got = _ws(server, {"Origin": server.url}, [deep, '{"command": "prompt", "text": "x\\ud800y"}'])
    errors = [m["error"] for m in got if isinstance(m, dict) and m.get("type") == "error"]
    assert code is None and len(errors) >= 1
    assert any("nested too deeply" in e or "surrogate" in e for e in errors), errors


def test_pending_offers_that_never_connect_expire_in_seconds(stack: tuple[ServerThread, list[Any]]) -> None:
    from aiortc import RTCPeerConnection

    server, _ = stack
    assert CONNECT_TIMEOUT_S <= 10

    async def offer() -> str:
        pc = RTCPeerConnection()
        pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        sdp = pc.localDescription.sdp
        await pc.close()  # never connects
        return sdp

    sdp = asyncio.run(offer())
    status, _, _ = request(server.port, "POST", "/whep", headers={"Content-Type": "application/sdp"}, body=sdp.encode())
    assert status == 201
    assert server.sessions is not None and server.sessions.count("viewer") == 1
    deadline = time.monotonic() + CONNECT_TIMEOUT_S + 3
    while server.sessions.count("viewer") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert server.sessions.count("viewer") == 0
