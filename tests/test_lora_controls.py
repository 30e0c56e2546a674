"""SetLora on every control surface (issue 19): presets, the JSON wire form (WebSocket, OBS events),
PATCH /api/params, GET /api/loras, the controller's checks, coalescing, --lora."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from livestyle.control.api import add_control_routes
from livestyle.control.controller import Controller, Params
from livestyle.control.presets import PresetBook, parse_presets
from livestyle.control.wire import (
    command_from_custom_event,
    command_from_message,
    commands_from_fields,
)
from livestyle.errors import CommandRefusedError, ConfigError, ControlError
from livestyle.engine.channels import coalesce_key
from livestyle.engine.commands import (
    LoraRef,
    SelectPreset,
    SetLora,
    SetPrompt,
    parse_lora_list,
    parse_lora_ref,
)
from livestyle.diffusion.loras import LoraLibrary

PRESETS = """
presets:
  - name: ink
    prompt: an ink drawing
    lora: ink-wash:0.8
  - name: both
    prompt: film still
    loras: [ink-wash, {name: film-grain, scale: 0.5}]
  - name: clean
    prompt: a photo
    lora: none
  - name: keep
    prompt: as before
"""


def test_lora_refs_parse_from_cli_and_config_text() -> None:
    assert parse_lora_ref("ink.safetensors:0.8") == LoraRef("ink.safetensors", 0.8)
    assert parse_lora_ref("C:\\loras\\ink") == LoraRef("C:\\loras\\ink", 1.0)
    assert parse_lora_list("a:0.5, b ,") == (LoraRef("a", 0.5), LoraRef("b", 1.0))
    assert parse_lora_list("") == ()
    assert str(LoraRef("a", 0.5)) == "a:0.5" and str(LoraRef("a")) == "a"


def test_presets_resolve_to_set_lora() -> None:
    book = PresetBook(parse_presets(PRESETS, "p.yaml"))
    assert book.get("ink").loras == (LoraRef("ink-wash", 0.8),)
    assert book.get("both").loras == (LoraRef("ink-wash"), LoraRef("film-grain", 0.5))
    assert book.get("clean").loras == () and book.get("keep").loras is None
    sent: list[Any] = []
    ctl = Controller(book, sent.append, Params("p", 0.6, 2, 42))
    assert ctl.apply(SelectPreset("ink")).loras == (LoraRef("ink-wash", 0.8),)
    assert SetLora((LoraRef("ink-wash", 0.8),)) in sent
    sent.clear()
    ctl.apply(SelectPreset("keep"))  # no lora field: the LoRA stays
    assert not any(isinstance(c, SetLora) for c in sent) and ctl.params.loras == (LoraRef("ink-wash", 0.8),)
    assert ctl.apply(SelectPreset("clean")).loras == ()
    with pytest.raises(ConfigError, match=r"p.yaml:5: preset 'x': give 'lora' or 'loras', not both"):
        parse_presets("presets:\n  - name: x\n    prompt: y\n    lora: a\n    loras: [b]\n", "p.yaml")
    with pytest.raises(ConfigError, match="a LoRA is NAME, NAME:SCALE"):
        parse_presets("presets:\n  - name: x\n    prompt: y\n    lora: {file: a}\n", "p.yaml")


def test_controller_checks_and_the_inbox_coalesces() -> None:
    ctl = Controller(PresetBook(), lambda c: None, Params("p", 0.6, 2, 42))
    for bad, match in (((LoraRef("a", float("nan")),), "scale must be a number"), ((LoraRef("a", 9.0),), "scale must be"),
                       ((LoraRef(""),), "LoRA name"), ((LoraRef("a"), LoraRef("a")), "listed twice"),
                       (tuple(LoraRef(str(i)) for i in range(5)), "at most 4")):
        with pytest.raises(ControlError, match=match):
            ctl.apply(SetLora(bad))
    assert coalesce_key(SetLora(())) == coalesce_key(SetLora((LoraRef("a"),))) == "SetLora"  # the newest look wins

    def refuse(command: object) -> None:
        if isinstance(command, SetLora) and command.value:
            raise CommandRefusedError("no")

    sent: list[Any] = []
    strict = Controller(PresetBook(), sent.append, Params("p", 0.6, 2, 42), precondition=refuse)
    with pytest.raises(CommandRefusedError):
        strict.apply(SetPrompt("x"), SetLora((LoraRef("a"),)))
    assert sent == []  # nothing of the group went


def test_wire_forms_for_websocket_and_obs() -> None:
    assert command_from_message({"command": "lora", "name": "ink", "scale": 0.5}) == SetLora((LoraRef("ink", 0.5),))
    assert command_from_message({"command": "lora", "loras": ["a:0.5", {"name": "b"}]}) == SetLora((LoraRef("a", 0.5), LoraRef("b")))
    assert command_from_message({"command": "lora", "loras": []}) == SetLora(())
    assert command_from_custom_event({"livestyle": {"command": "lora", "name": "ink"}}) == SetLora((LoraRef("ink"),))
    for bad in ({"command": "lora"}, {"command": "lora", "name": "a", "loras": []}, {"command": "lora", "loras": "a"},
                {"command": "lora", "name": 3}, {"command": "lora", "loras": [{"name": "a", "x": 1}]},
                {"command": "lora", "loras": [], "scale": 1}):
        with pytest.raises(ControlError):
            command_from_message(bad)
    assert commands_from_fields({"loras": None}) == [SetLora(())]
    assert commands_from_fields({"prompt": "x", "loras": [{"name": "a", "scale": 2}]})[-1] == SetLora((LoraRef("a", 2.0),))


def test_api_lists_the_folder_and_switches(tmp_path: Path) -> None:
    from livestyle.models.testing.lora import random_lora, write_lora

    write_lora(tmp_path / "ink-wash.safetensors", random_lora(rank=2), "kohya")
    (tmp_path / "notes.txt").write_text("not a LoRA")
    library = LoraLibrary(tmp_path)
    sent: list[Any] = []

    def precondition(command: object) -> None:
        if isinstance(command, SetLora):
            for ref in command.value:
                library.load_checked(ref.name)

    controller = Controller(PresetBook(), sent.append, Params("p", 0.6, 2, 42), precondition=precondition,
                            lora_catalog=library.catalog)

    async def main() -> None:
        app = web.Application()
        add_control_routes(app, controller, stats=dict)
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            r = await client.get("/api/loras")
            body = await r.json()
            assert r.status == 200 and body["folder"] == str(tmp_path) and body["active"] == []
            assert [x["name"] for x in body["loras"]] == ["ink-wash"] and body["loras"][0]["bytes"] > 0
            r = await client.patch("/api/params", json={"loras": [{"name": "ink-wash", "scale": 0.7}]})
            assert r.status == 200 and (await r.json())["loras"] == [{"name": "ink-wash", "scale": 0.7}]
            assert sent == [SetLora((LoraRef("ink-wash", 0.7),))]
            assert (await (await client.get("/api/loras")).json())["active"] == [{"name": "ink-wash", "scale": 0.7}]
            r = await client.patch("/api/params", json={"loras": ["../../etc/passwd"]})
            assert r.status == 400 and "unknown LoRA" in (await r.json())["error"]
            r = await client.patch("/api/params", json={"loras": [{"name": "ink-wash", "scale": "big"}]})
            assert r.status == 400
            async with client.ws_connect("/api/events") as ws:
                await ws.send_json({"command": "lora", "loras": []})
                for _ in range(10):
                    msg = await ws.receive_json(timeout=5)
                    if msg["type"] == "params" and msg["applied"] == ["SetLora"]:
                        assert msg["params"]["loras"] == []
                        break
                else:
                    raise AssertionError("no params message after the SetLora")

    asyncio.run(main())


def test_cli_lora_options_add_to_the_config() -> None:
    from livestyle.cli.run import build_config
    from livestyle.control.setup import initial_params

    cfg = build_config(None, ["model.loras=base:0.5"], loras=["/x/ink.safetensors:0.8", "film"])
    assert cfg.model.loras == "base:0.5,/x/ink.safetensors:0.8,film"
    assert initial_params(cfg).loras == (LoraRef("base", 0.5), LoraRef("/x/ink.safetensors", 0.8), LoraRef("film"))


def test_weights_pull_of_a_hub_lora_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from typer.testing import CliRunner

    from livestyle.cli import app
    from livestyle.errors import WeightsError
    from livestyle.models.testing.lora import random_lora, write_lora
    from livestyle.diffusion.loras import pull_lora

    src = write_lora(tmp_path / "src" / "style.safetensors", random_lora(rank=2), "wan")
    calls: list[tuple[str, str]] = []

    def download(repo: str, filename: str, revision: str | None = None, local_dir: str = "") -> str:
        calls.append((repo, filename))
        out = Path(local_dir) / filename
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, out)
        return str(out)

    def files(repo: str, revision: str | None = None) -> list[str]:
        return ["README.md", "style.safetensors"] if repo == "me/ink" else ["a.safetensors", "b.safetensors"]

    folder = tmp_path / "loras"
    path = pull_lora("me/ink", folder=folder, download=download, list_files=files)
    assert path == folder / "me--ink" / "style.safetensors" and calls == [("me/ink", "style.safetensors")]
    assert [x["name"] for x in LoraLibrary(folder).list()] == ["me--ink/style"]
    with pytest.raises(WeightsError, match="holds 2 LoRA files .*name one with --file"):
        pull_lora("me/two", folder=folder, download=download, list_files=files)
    assert pull_lora("me/two", filename="b.safetensors", folder=folder, download=download, list_files=files).is_file()
    with pytest.raises(WeightsError, match="not a Hub repo id"):
        pull_lora("a/b/c", folder=folder, download=download, list_files=files)

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    monkeypatch.setattr(huggingface_hub, "list_repo_files", files)
    result = CliRunner().invoke(app, ["weights", "pull", "me/ink", "--lora-dir", str(tmp_path / "cli")])
    assert result.exit_code == 0, result.output
    assert "--lora me--ink/style" in result.output.replace("\n", "")
