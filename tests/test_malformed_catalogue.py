"""The malformed-input catalogue (docs/malformed-input.md), case by case: every HTTP case against a
real server on 127.0.0.1, every CLI case through ``livestyle.cli.main``; and the table in the doc
lists exactly these cases with these answers."""

from __future__ import annotations

import json
import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from media_helpers import write_h264

from livestyle.control.api import control_routes
from livestyle.cli import main
from livestyle.config import EffectsConfig, PersonMaskConfig
from livestyle.control.controller import Controller, Params
from livestyle.control.presets import load_presets
from livestyle.effects.generator import EffectGenerator
from livestyle.engine.passthrough import PassthroughGenerator
from livestyle.server.app import ServerSettings, ServerThread

DOC = Path(__file__).resolve().parents[1] / "docs" / "malformed-input.md"
JSON = {"Content-Type": "application/json"}
SDP = {"Content-Type": "application/sdp"}

# id: (method, path, headers, body, status, words in the error)
HTTP_CASES: dict[str, tuple[str, str, dict[str, str], bytes, int, str]] = {
    "H1": ("GET", "/api/params", {"Host": "rebind.evil.test"}, b"", 403, "unknown Host"),
    "H2": ("POST", "/api/prompt", {**JSON, "Origin": "null"}, b'{"prompt": "x"}', 403, "cross-origin"),
    "H3": ("POST", "/api/prompt", {**JSON, "Origin": "http://evil.test"}, b'{"prompt": "x"}', 403, "cross-origin"),
    "H4": ("POST", "/api/prompt", {"Content-Type": "text/plain"}, b'{"prompt": "x"}', 415, "application/json"),
    "H5": ("POST", "/api/prompt", JSON, b"{not json", 400, "malformed JSON"),
    "H6": ("POST", "/api/prompt", JSON, b'{"prompt": "x\\ud800y"}', 400, "lone surrogate U+D800"),
    "H7": ("POST", "/api/prompt", JSON, b'{"prompt": "x\\u0007y"}', 400, "control character U+0007"),
    "H8": ("PATCH", "/api/params", JSON, b'{"seed": ' + b"9" * 5000 + b"}", 400, "malformed JSON"),
    "H9": ("PATCH", "/api/params", JSON, b"[" * 30000 + b"]" * 30000, 400, "nested too deeply"),
    "H10": ("PATCH", "/api/params", JSON, b'{"effect": "person"}', 409, "cannot switch to effect 'person'"),
    "H11": ("POST", "/api/presets/%C2%B2", {}, b"", 404, "preset"),
    "H12": ("POST", "/offer", JSON, b'{"type": "offer", "sdp": "\xff\xfe"}', 400, "not valid UTF-8"),
    "H13": ("POST", "/whip", SDP, b"v=0\r\n\xff\xfe", 400, "not valid UTF-8"),
    "H14": ("POST", "/offer", {**JSON, "Content-Length": "10000000000"}, b"", 413, "too large"),
    "H15": ("POST", "/whip", {"Content-Type": "text/plain"}, b"v=0", 415, "application/sdp"),
    "H16": ("GET", "/api/events", {"Origin": "null", "Upgrade": "websocket", "Connection": "Upgrade",
                                   "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13"},
            b"", 403, "cross-origin"),
    "H17": ("PATCH", "/whip/abc", {}, b"", 405, "trickle ICE"),
    "H18": ("POST", "/offer", JSON, b'{"sdp": 3}', 400, '"type": "offer"'),
    "H19": ("PATCH", "/api/params", JSON, b'{"strength": 2}', 400, "strength must be a number in [0, 1]"),
    "H20": ("POST", "/api/presets/nope", {}, b"", 404, "preset"),
    "H21": ("POST", "/api/prompt", JSON, b'{"prompt": "   "}', 400, "the prompt is empty"),
    "H22": ("DELETE", "/whep/nope", {}, b"", 404, "no session"),
    "H23": ("GET", "/api/params", {"Host": "127.0.0.1:80, evil.test"}, b"", 403, "unknown Host"),
    "H24": ("GET", "/api/params", {"Host": "evil.test@127.0.0.1:80"}, b"", 403, "unknown Host"),
}

TOKEN = "catalogue-token-1234"
# the same, against a server that has a token (any host beyond loopback gets one)
TOKEN_CASES: dict[str, tuple[str, str, dict[str, str], bytes, int, str]] = {
    "T1": ("GET", "/api/params", {"Authorization": "Bearer \xff\xfe"}, b"", 401, "missing or wrong token"),
    "T2": ("GET", "/api/params", {"Authorization": "Bearer caf\xe9"}, b"", 401, "missing or wrong token"),
    "T3": ("GET", "/api/params?token=%FF%FE", {}, b"", 401, "missing or wrong token"),
}

_RUN = ["run", "--model", "passthrough", "-q", "--no-keys", "--size", "64x64", "--max-frames", "2"]
# id: (argv, exit code, words in stderr)
CLI_CASES: dict[str, tuple[list[str], int, str]] = {
    "C1": ([*_RUN, "--source", "http://[::1", "--sink", "null"], 1, "malformed URL"),
    "C2": ([*_RUN, "--source", "pattern", "--sink", "udp://[::1"], 1, "malformed URL"),
    "C3": ([*_RUN, "--source", "pattern", "--sink", "udp://127.0.0.1:99999"], 1, "Port out of range"),
    "C4": ([*_RUN, "--source", "pattern", "--sink", "rtmp://[::1"], 1, "malformed URL"),
    "C5": (["run", "--source", "pattern", "--sink", "null", "--max-frames", "0"], 2, "--max-frames must be at least 1"),
    "C6": (["run", "--source", "pattern", "--sink", "null", "--fps", "-1"], 2, "--fps must be positive"),
    "C7": ([*_RUN, "--source", "pattern", "--sink", "null", "--set", "nope.key=1"], 2, "unknown config key"),
    "C8": ([*_RUN, "--source", "pattern", "--sink", "out.xyz"], 1, "unknown sink"),
    "C9": ([*_RUN, "--source", "missing.mp4", "--sink", "null"], 1, "file not found"),
    "C10": ([*_RUN, "--source", "pattern", "--sink", "null", "--prompt", "x\x07y"], 1, "control character U+0007"),
    "C11": ([*_RUN, "--source", "pattern", "--sink", "null", "--set", "recording.mp4=moov"], 2, "recording.mp4"),
    "C12": ([*_RUN, "--source", "pattern", "--sink", "null", "--set", "server.port=99999"], 2, "server.port"),
    # issue 28: every case runs next to in.mp4 (and link.mp4 -> in.mp4), which must come out unchanged
    "C13": ([*_RUN, "--source", "in.mp4", "--sink", "in.mp4", "--no-loop", "--no-pace"], 2, "is the same file as --source"),
    "C14": ([*_RUN, "--source", "in.mp4", "--sink", "link.mp4", "--no-loop"], 2, "is the same file as --source"),
    "C15": ([*_RUN, "--source", "in.mp4", "--sink", "out.mkv", "--sink", "./out.mkv"], 2, "is the same file as --sink"),
    "C16": ([*_RUN, "--source", "pattern", "--sink", "null", "--fps", "0.0001"], 2, "--fps must be between 1 and 240"),
    "C17": ([*_RUN, "--source", "pattern", "--sink", "null", "--set", "stream.fps=0.0001"], 2, "stream.fps"),
    "C18": ([*_RUN, "--source", "a" * 300 + ".mp4", "--sink", "null"], 1, "names are at most 255 bytes"),
    "C19": ([*_RUN, "--source", "pattern", "--sink", "a" * 300 + ".mp4"], 1, "names are at most 255 bytes"),
    "C20": ([*_RUN, "--source", "fifo.mp4", "--sink", "null"], 1, "is not a regular file"),
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    missing = tmp_path_factory.mktemp("nomodel") / "modnet.ckpt"
    effects = EffectGenerator(PassthroughGenerator(), EffectsConfig(mask="person-hq", person=PersonMaskConfig(checkpoint=str(missing))))
    controller = Controller(load_presets(), lambda c: None, Params("start", 0.6, 2, 42), precondition=effects.precondition)
    settings = ServerSettings(port=0)
    thread = ServerThread(settings, settings.make_hub(), control_routes=control_routes(controller, stats=lambda: {})).start()
    yield thread
    thread.stop()


@pytest.fixture(scope="module")
def token_server() -> Iterator[ServerThread]:
    controller = Controller(load_presets(), lambda c: None, Params("start", 0.6, 2, 42))
    settings = ServerSettings(port=0, token=TOKEN)
    thread = ServerThread(settings, settings.make_hub(), control_routes=control_routes(controller, stats=lambda: {})).start()
    yield thread
    thread.stop()


def _send(port: int, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, str]:
    head = {"Host": f"127.0.0.1:{port}", "Connection": "close", **headers}
    if "Content-Length" not in head and (body or method in ("POST", "PATCH")):
        head["Content-Length"] = str(len(body))
    data = f"{method} {path} HTTP/1.1\r\n".encode() + "".join(f"{k}: {v}\r\n" for k, v in head.items()).encode("latin-1")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data + b"\r\n" + body)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    status_line, _, rest = out.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2].decode(errors="replace")


@pytest.mark.parametrize("case", list(HTTP_CASES))
def test_http_case(server: ServerThread, case: str) -> None:
    method, path, headers, body, status, words = HTTP_CASES[case]
    got, text = _send(server.port, method, path, headers, body)
    assert got == status, (case, text)
    assert words in json.loads(text)["error"], (case, text)


@pytest.mark.parametrize("case", list(TOKEN_CASES))
def test_token_case(token_server: ServerThread, case: str) -> None:
    method, path, headers, body, status, words = TOKEN_CASES[case]
    got, text = _send(token_server.port, method, path, headers, body)
    assert got == status, (case, text)
    assert words in json.loads(text)["error"], (case, text)


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_cli_case(case: str, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    clip = write_h264(tmp_path / "in.mp4", [np.full((64, 64, 3), 10 * i, np.uint8) for i in range(6)])
    (tmp_path / "link.mp4").symlink_to(clip.name)
    os.mkfifo(tmp_path / "fifo.mp4")  # no writer: opening it for reading would wait forever
    before = clip.read_bytes()
    argv, code, words = CLI_CASES[case]
    assert main(argv) == code
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err, err
    assert len([line for line in err.splitlines() if line.startswith("error:")]) == 1, err
    assert clip.read_bytes() == before, "the input was overwritten"


def _doc_rows() -> dict[str, tuple[str, ...]]:
    rows = {}
    for line in DOC.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and re.fullmatch(r"[HCT]\d+", cells[0]):
            rows[cells[0]] = tuple(cells[1:])
    return rows


def test_the_doc_lists_every_case_with_its_answer() -> None:
    rows = _doc_rows()
    assert set(rows) == set(HTTP_CASES) | set(TOKEN_CASES) | set(CLI_CASES)
    for case, (*_, status, _words) in {**HTTP_CASES, **TOKEN_CASES}.items():
        assert rows[case][-1].startswith(str(status)), (case, rows[case])
    for case, (_, code, _words) in CLI_CASES.items():
        assert rows[case][-1].startswith(f"exit {code}"), (case, rows[case])
