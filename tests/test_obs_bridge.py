"""The OBS bridge against real OBS Studio, headless on Xvfb, inside a private network namespace.

OBS 29's websocket listens on every interface, so the module moves this test process (its main
thread, hence every thread and child it starts afterwards) into a fresh network namespace where
only loopback exists, runs Xvfb and OBS there with a random password and a throwaway HOME, and
moves back at the end. One OBS instance serves the whole module (restarted once by the
reconnect test). Needs: obs-studio, xvfb, libgl1-mesa-dri, util-linux (unshare), iproute2, root.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ctypes
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from host_helpers import free_udp_port, start_xvfb, wait_for

from livestyle.control.controller import Controller, Params
from livestyle.control.obs_bridge import (
    AUTH_FAILED_MESSAGE,
    ObsAuthError,
    ObsBridge,
    ObsSettings,
)
from livestyle.control.presets import Preset, PresetBook
from livestyle.engine.commands import SetPrompt

pytestmark = [pytest.mark.obs, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "obs" / "livestyle-hotkeys.lua"
PORT = 4455
CLONE_NEWNET = 0x40000000
SCENES = ("Main", "Anime", "Sketch")
BOOK = PresetBook(
    [
        Preset("ink", "an ink drawing", strength=0.5),
        Preset("neon", "neon city at night", strength=0.7),
        Preset("clay", "claymation figures"),
    ]
)


def _missing() -> str | None:
    for tool in ("obs", "Xvfb", "unshare", "ip"):
        if shutil.which(tool) is None:
            return f"needs {tool} (apt-get install -y obs-studio xvfb libgl1-mesa-dri xdotool iproute2)"
    if os.geteuid() != 0:
        return "needs root for a private network namespace (OBS's websocket binds every interface)"
    return None


class NetNamespace:
    """Moves the calling thread into a new network namespace (loopback only) and back."""

    def __init__(self) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._holder = subprocess.Popen(["unshare", "--net", "sleep", "infinity"])
        own = os.readlink("/proc/self/ns/net")
        wait_for(lambda: os.readlink(f"/proc/{self._holder.pid}/ns/net") != own, 5, "unshare")
        self._home = os.open("/proc/self/ns/net", os.O_RDONLY)
        self._new = os.open(f"/proc/{self._holder.pid}/ns/net", os.O_RDONLY)

    def enter(self) -> None:
        if self._libc.setns(self._new, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns into the test network namespace failed")
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)

    def leave(self) -> None:
        self._libc.setns(self._home, CLONE_NEWNET)
        os.close(self._home)
        os.close(self._new)
        self._holder.kill()
        self._holder.wait()


def _write_obs_home(home: Path, password: str) -> None:
    cfg = home / ".config" / "obs-studio"
    (cfg / "basic" / "scenes").mkdir(parents=True)
    (cfg / "basic" / "profiles" / "livestyle").mkdir(parents=True)
    (cfg / "plugin_config" / "obs-websocket").mkdir(parents=True)
    (cfg / "global.ini").write_text(
        "[General]\nFirstRun=true\nLastVersion=486539266\nEnableAutoUpdates=false\nConfirmOnExit=false\n"
        "[BasicWindow]\nSysTrayEnabled=false\n"
        "[Basic]\nProfile=livestyle\nProfileDir=livestyle\nSceneCollection=livestyle\nSceneCollectionFile=livestyle\n"
        f"[OBSWebSocket]\nFirstLoad=false\nServerEnabled=true\nServerPort={PORT}\nAlertsEnabled=false\n"
        f"AuthRequired=true\nServerPassword={password}\n"
    )
    (cfg / "plugin_config" / "obs-websocket" / "config.json").write_text(
        json.dumps({"first_load": False, "server_enabled": True, "server_port": PORT, "alerts_enabled": False,
                    "auth_required": True, "server_password": password})
    )
    (cfg / "basic" / "profiles" / "livestyle" / "basic.ini").write_text(
        "[General]\nName=livestyle\n[Video]\nBaseCX=320\nBaseCY=240\nOutputCX=320\nOutputCY=240\nFPSCommon=30\n"
    )
    scenes = [
        {"id": "scene", "versioned_id": "scene", "name": name, "settings": {"items": [], "id_counter": 0}, "enabled": True}
        for name in SCENES
    ]
    collection = {
        "name": "livestyle",
        "current_scene": "Main",
        "current_program_scene": "Main",
        "scene_order": [{"name": name} for name in SCENES],
        "sources": scenes,
        "groups": [],
        "transitions": [],
        "current_transition": "Cut",
        "modules": {"scripts-tool": [{"path": str(SCRIPT), "settings": {}}]},
    }
    (cfg / "basic" / "scenes" / "livestyle.json").write_text(json.dumps(collection))


@dataclass
class Obs:
    """A running headless OBS that tests can kill and start again."""

    home: Path
    password: str
    display: str
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "HOME": str(self.home), "DISPLAY": self.display, "LIBGL_ALWAYS_SOFTWARE": "1"}
        with open(self.home / "obs.log", "ab") as log:
            self.proc = subprocess.Popen(
                ["obs", "--multi", "--disable-missing-files-check", "--disable-updater", "--minimize-to-tray"],
                env=env, stdout=log, stderr=subprocess.STDOUT, cwd=self.home, start_new_session=True,
            )
        wait_for(self._ready, 30, "OBS's websocket to answer")

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"OBS exited with {self.proc.returncode}: {self.log_tail()}")
        try:
            client = self.client()
        except Exception:
            return False
        client.disconnect()
        return True

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def client(self, password: str | None = None) -> Any:
        from obswebsocket import obsws

        client = obsws("127.0.0.1", PORT, self.password if password is None else password, legacy=False, timeout=5)
        client.connect()
        return client

    def call(self, name: str, **fields: Any) -> dict[str, Any]:
        from obswebsocket import requests

        client = self.client()
        try:
            reply = client.call(getattr(requests, name)(**fields))
        finally:
            client.disconnect()
        assert reply.status, f"OBS request {name}({fields}) failed"
        return dict(reply.datain)

    def log_tail(self) -> str:
        path = self.home / "obs.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""


@pytest.fixture(scope="module")
def obs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Obs]:
    reason = _missing()
    if reason:
        pytest.skip(reason)
    netns = NetNamespace()
    try:
        netns.enter()
        display, xvfb = start_xvfb("-screen", "0", "1280x720x24", "+extension", "GLX")
    except BaseException:
        netns.leave()
        raise
    home = tmp_path_factory.mktemp("obs-home")
    instance = Obs(home=home, password=secrets.token_urlsafe(12), display=display)
    _write_obs_home(home, instance.password)
    try:
        instance.start()
        yield instance
    finally:
        instance.kill()
        xvfb.terminate()
        xvfb.wait(10)
        netns.leave()


def make_controller() -> Controller:
    return Controller(BOOK, lambda command: None, Params("start", 0.6, 2, 42))


@contextlib.contextmanager
def bridge(obs: Obs, controller: Controller, **settings: Any) -> Iterator[ObsBridge]:
    fields: dict[str, Any] = {"port": PORT, "password": obs.password, "backoff_min": 0.2, "backoff_max": 1.0}
    fields.update(settings)
    instance = ObsBridge(controller, ObsSettings(**fields))
    instance.start()
    try:
        yield instance
    finally:
        instance.stop()


# -- tests -----------------------------------------------------------------------------------


def test_connects_and_authenticates(obs: Obs) -> None:
    with bridge(obs, make_controller()) as b:
        b.wait_connected(10)
        stats = b.stats()
        assert stats["state"] == "connected"
        assert stats["obs_version"] == obs.call("GetVersion")["obsVersion"]
        assert stats["last_error"] is None and stats["connects"] == 1
    assert b.state == "stopped"


def test_wrong_password_reports_the_documented_error_without_retrying(obs: Obs) -> None:
    with bridge(obs, make_controller(), password="not-the-password", backoff_min=0.05) as b:
        assert b.wait_for_state("auth_failed", timeout=10)
        assert b.last_error == AUTH_FAILED_MESSAGE
        with pytest.raises(ObsAuthError) as info:
            b.wait_connected(1)
        assert str(info.value) == AUTH_FAILED_MESSAGE
        time.sleep(1.0)
        assert b.stats()["attempts"] == 1  # no retry storm


def test_lua_script_hotkeys_change_the_prompt_seen_through_the_api(obs: Obs) -> None:
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from livestyle.control.api import add_control_routes

    hotkeys = {h for h in obs.call("GetHotkeyList")["hotkeys"] if h.startswith("livestyle.")}
    assert {"livestyle.preset.1", "livestyle.preset.9", "livestyle.next", "livestyle.previous", "livestyle.bypass"} <= hotkeys

    controller = make_controller()
    with bridge(obs, controller) as b:
        b.wait_connected(10)

        async def main() -> None:
            app = web.Application()
            add_control_routes(app, controller, stats=b.stats)
            async with TestClient(TestServer(app, host="127.0.0.1")) as client:

                async def params() -> dict[str, Any]:
                    return await (await client.get("/api/params")).json()

                async def until(check: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
                    deadline = time.monotonic() + 10
                    while time.monotonic() < deadline:
                        current = await params()
                        if check(current):
                            return current
                        await asyncio.sleep(0.02)
                    raise AssertionError(f"timed out waiting for {what}; params {await params()}")

                await asyncio.to_thread(obs.call, "TriggerHotkeyByName", hotkeyName="livestyle.preset.2")
                state = await until(lambda p: p["prompt"] == "neon city at night", "preset 2")
                assert state["preset"] == "neon" and state["strength"] == 0.7
                await asyncio.to_thread(obs.call, "TriggerHotkeyByName", hotkeyName="livestyle.next")
                await until(lambda p: p["preset"] == "clay", "next preset")
                await asyncio.to_thread(obs.call, "TriggerHotkeyByName", hotkeyName="livestyle.bypass")
                await until(lambda p: p["bypass"] is True, "bypass")
                stats = await (await client.get("/api/stats")).json()
                assert stats["state"] == "connected" and stats["commands"] == 3

        asyncio.run(main())


def test_scene_switch_applies_the_mapped_preset(obs: Obs) -> None:
    controller = make_controller()
    with bridge(obs, controller, scene_presets={"Anime": "neon", "Sketch": "ink"}) as b:
        b.wait_connected(10)
        obs.call("SetCurrentProgramScene", sceneName="Anime")
        wait_for(lambda: controller.params.preset == "neon", what="scene Anime -> neon")
        obs.call("SetCurrentProgramScene", sceneName="Sketch")
        wait_for(lambda: controller.params.preset == "ink", what="scene Sketch -> ink")
        obs.call("SetCurrentProgramScene", sceneName="Main")  # unmapped: nothing changes
        time.sleep(0.3)
        assert controller.params.preset == "ink"


def test_showing_a_hidden_scene_item_applies_its_preset(obs: Obs) -> None:
    created = obs.call(
        "CreateInput", sceneName="Main", inputName="look: clay", inputKind="color_source_v3",
        inputSettings={"width": 8, "height": 8}, sceneItemEnabled=False,
    )
    item = created["sceneItemId"]
    controller = make_controller()
    with bridge(obs, controller, item_presets={"look: clay": "clay"}) as b:
        b.wait_connected(10)
        obs.call("SetSceneItemEnabled", sceneName="Main", sceneItemId=item, sceneItemEnabled=True)
        wait_for(lambda: controller.params.preset == "clay", what="item shown -> clay")
        controller.apply(SetPrompt("typed"))
        obs.call("SetSceneItemEnabled", sceneName="Main", sceneItemId=item, sceneItemEnabled=False)
        time.sleep(0.3)
        assert controller.params.prompt == "typed"  # hiding does not select


def test_stream_deck_style_custom_events_and_malformed_payloads(obs: Obs, caplog: pytest.LogCaptureFixture) -> None:
    controller = make_controller()
    with bridge(obs, controller) as b:
        b.wait_connected(10)
        with caplog.at_level(logging.WARNING, logger="livestyle.control.obs_bridge"):
            obs.call("BroadcastCustomEvent", eventData={"livestyle": {"command": "explode"}})
            obs.call("BroadcastCustomEvent", eventData={"livestyle": {"command": "preset", "number": 7}})
            obs.call("BroadcastCustomEvent", eventData={"touchportal": {"page": 2}})  # someone else's
            obs.call("BroadcastCustomEvent", eventData={"livestyle": {"command": "prompt", "text": "stained glass"}})
            wait_for(lambda: controller.params.prompt == "stained glass", what="custom event prompt")
        stats = b.stats()
        assert stats["ignored"] == 2 and stats["commands"] == 1 and b.state == "connected"
        messages = [r.getMessage() for r in caplog.records]
        assert any("ignored a malformed livestyle CustomEvent" in m and "unknown command 'explode'" in m for m in messages)
        assert any("no preset number 7" in m for m in messages)


def test_current_prompt_is_written_into_a_text_source(obs: Obs) -> None:
    obs.call("CreateInput", sceneName="Main", inputName="livestyle prompt", inputKind="text_ft2_source_v2",
             inputSettings={"text": "-"}, sceneItemEnabled=True)
    controller = make_controller()

    def text() -> str:
        return obs.call("GetInputSettings", inputName="livestyle prompt")["inputSettings"].get("text", "")

    with bridge(obs, controller, prompt_source="livestyle prompt") as b:
        b.wait_connected(10)
        wait_for(lambda: text() == "start", what="initial prompt in the text source")
        controller.apply(SetPrompt("a mosaic of tiny tiles"))
        wait_for(lambda: text() == "a mosaic of tiny tiles", what="new prompt in the text source")


def test_obs_killed_and_restarted_the_bridge_reconnects_and_keeps_working(obs: Obs) -> None:
    controller = make_controller()
    with bridge(obs, controller, scene_presets={"Anime": "neon"}) as b:
        b.wait_connected(10)
        obs.kill()
        assert b.wait_for_state("connecting", timeout=10)
        controller.apply(SetPrompt("still streaming"))  # control keeps working while OBS is away
        time.sleep(1.0)
        assert b.state == "connecting" and "not reachable" in (b.last_error or "")
        obs.start()
        b.wait_connected(15)
        assert b.stats()["connects"] == 2
        obs.call("SetCurrentProgramScene", sceneName="Main")
        obs.call("SetCurrentProgramScene", sceneName="Anime")
        wait_for(lambda: controller.params.preset == "neon", what="scene mapping after reconnect")
        obs.call("TriggerHotkeyByName", hotkeyName="livestyle.preset.3")
        wait_for(lambda: controller.params.preset == "clay", what="Lua hotkey after reconnect")


def test_livestyle_output_reaches_obs_as_a_udp_media_source(obs: Obs) -> None:
    pytest.importorskip("av")
    import cv2

    from livestyle.output import open_sink
    from livestyle.engine.frames import Frame, StreamInfo

    port = free_udp_port()
    sink = open_sink(f"udp://127.0.0.1:{port}", fps=30)
    sink.open(StreamInfo(width=320, height=240, fps=30))
    obs.call("CreateInput", sceneName="Main", inputName="livestyle video", inputKind="ffmpeg_source",
             inputSettings={"is_local_file": False, "input": f"udp://127.0.0.1:{port}", "input_format": "mpegts",
                            "buffering_mb": 0, "restart_on_activate": False},
             sceneItemEnabled=True)
    magenta = np.zeros((240, 320, 3), np.uint8)
    magenta[..., 0] = 230
    magenta[..., 2] = 200
    stop = threading.Event()

    def send() -> None:
        index = 0
        while not stop.is_set():
            sink.write(Frame(magenta, pts=index * 3000, time_base=Fraction(1, 90000), capture_time=time.monotonic(), index=index))
            index += 1
            time.sleep(1 / 30)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()

    def shows_our_frames() -> bool:
        shot = obs.call("GetSourceScreenshot", sourceName="livestyle video", imageFormat="png", imageWidth=64, imageHeight=48)
        png = base64.b64decode(shot["imageData"].split(",", 1)[1])
        image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]  # BGR -> RGB
        mean = image.reshape(-1, 3).mean(axis=0)
        return bool(abs(mean[0] - 230) < 25 and mean[1] < 40 and abs(mean[2] - 200) < 25)

    try:
        wait_for(shows_our_frames, 30, "OBS's media source to show the frames livestyle sent")
        status = obs.call("GetMediaInputStatus", inputName="livestyle video")
        assert status["mediaState"] == "OBS_MEDIA_STATE_PLAYING"
    finally:
        stop.set()
        sender.join(5)
        sink.close()
