"""Issue 28, points 7, 14, 15: LoRA names and the LoRA folder over a real server.

A name from a client reaches the file system only after it is checked (a name over 255 bytes is a
400, not a 500 with a traceback, and over the WebSocket an error message, not a dropped socket); a
symlink loop in the folder is skipped; ``GET /api/loras`` lists only files inside the folder (a
symlink to a file elsewhere is not shown, nor its size); and passthrough, which applies no LoRA,
refuses one (409) instead of listing it as active."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from host_helpers import free_tcp_port
from test_cli_controls import Proc

from livestyle.control.api import control_routes
from livestyle.control.controller import Controller, Params
from livestyle.control.presets import load_presets
from livestyle.engine.commands import SetLora
from livestyle.diffusion.loras import LoraLibrary
from livestyle.server.app import ServerSettings, ServerThread


def _http(method: str, url: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture(scope="module")
def folder_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerThread, Path]]:
    root = tmp_path_factory.mktemp("loras")
    folder = root / "loras"
    folder.mkdir()
    (folder / "good.safetensors").write_bytes(b"x" * 10)
    secret = root / "secret.safetensors"
    secret.write_bytes(b"s" * 12345)
    (folder / "outside.safetensors").symlink_to(secret)  # points out of the folder
    (folder / "loop.safetensors").symlink_to(folder / "loop2.safetensors")
    (folder / "loop2.safetensors").symlink_to(folder / "loop.safetensors")  # a symlink loop
    library = LoraLibrary(folder)

    def precondition(command: object) -> None:  # what StreamPipeline.precondition does with a SetLora
        if isinstance(command, SetLora):
            for ref in command.value:
                library.load_checked(ref.name)

    controller = Controller(load_presets(), lambda c: None, Params("start", 0.6, 2, 42), precondition=precondition,
                            lora_catalog=library.catalog)
    settings = ServerSettings(port=0)
    thread = ServerThread(settings, settings.make_hub(), control_routes=control_routes(controller, stats=lambda: {})).start()
    yield thread, folder
    thread.stop()


def test_the_listing_shows_only_files_inside_the_folder(folder_server: tuple[ServerThread, Path]) -> None:
    server, _ = folder_server
    status, body = _http("GET", server.url + "/api/loras")
    assert status == 200, body
    assert [(item["name"], item["bytes"]) for item in body["loras"]] == [("good", 10)], body


@pytest.mark.parametrize(("name", "words"), [
    ("a" * 300, "names are at most 255 bytes"),
    ("loop", "unknown LoRA 'loop'"),
    ("outside", "unknown LoRA 'outside'"),
    ("../secret", "unknown LoRA '../secret'"),
])
def test_a_bad_lora_name_is_a_400_with_one_line(folder_server: tuple[ServerThread, Path], name: str, words: str) -> None:
    server, _ = folder_server
    status, body = _http("PATCH", server.url + "/api/params", {"loras": [{"name": name, "scale": 1.0}]})
    assert status == 400 and words in body["error"], body
    assert _http("GET", server.url + "/api/params")[1]["loras"] == []


def test_a_bad_lora_name_over_the_websocket_answers_an_error_and_the_socket_stays(
        folder_server: tuple[ServerThread, Path]) -> None:
    server, _ = folder_server

    async def go() -> list[Any]:
        async with aiohttp.ClientSession() as s, s.ws_connect(f"{server.url}/api/events", headers={"Origin": server.url}) as ws:
            await ws.send_str(json.dumps({"command": "lora", "name": "a" * 300, "scale": 1.0}))
            await ws.send_str(json.dumps({"command": "strength", "value": 0.5}))
            got = []
            while len(got) < 4:
                msg = await asyncio.wait_for(ws.receive(), 5)
                assert msg.type == aiohttp.WSMsgType.TEXT, (msg, got)
                got.append(msg.json())
                if any(m.get("type") == "params" and m.get("params", {}).get("strength") == 0.5 for m in got):
                    break
            return got

    got = asyncio.run(go())
    errors = [m["error"] for m in got if m.get("type") == "error"]
    assert any("names are at most 255 bytes" in e for e in errors), got


def test_passthrough_refuses_a_lora_instead_of_listing_it_as_active(tmp_path: Path) -> None:
    port = free_tcp_port()
    proc = Proc(["-i", "pattern", "-o", "null", "--size", "64x48", "-q", "--no-keys", "--api", "--api-port", str(port)])
    try:
        proc.read_until("livestyle: control API on")
        base = f"http://127.0.0.1:{port}"
        status, body = _http("PATCH", base + "/api/params", {"loras": [{"name": "anything", "scale": 1.0}]})
        assert status == 409 and "takes no LoRA" in body["error"], body
        assert _http("GET", base + "/api/params")[1]["loras"] == []
        assert _http("GET", base + "/api/loras")[1]["active"] == []
        assert _http("PATCH", base + "/api/params", {"loras": []})[0] == 200  # clearing is fine
    finally:
        proc.finish()


def test_a_fifo_given_as_a_lora_is_refused_instead_of_read_forever(tmp_path: Path) -> None:
    """Issue 28, point 11 (``--lora FIFO``): the operator's path is checked before it is read."""
    import os

    from livestyle.errors import ControlError

    fifo = tmp_path / "style.safetensors"
    os.mkfifo(fifo)
    with pytest.raises(ControlError, match="not a regular file"):
        LoraLibrary(tmp_path / "folder").allow(str(fifo))
    assert LoraLibrary(tmp_path).list() == []  # nor listed from the folder
