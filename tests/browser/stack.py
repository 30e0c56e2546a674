"""Shared pieces of the WebRTC tests: a non-identity generator and the server + runner stack."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from livestyle.control.api import control_routes
from livestyle.control.controller import Controller, Params
from livestyle.control.presets import load_presets
from livestyle.ingest.webrtc import WebRTCSource
from livestyle.output.webrtc import WebRTCSink
from livestyle.engine.frames import Frame
from livestyle.engine.runner import Runner
from livestyle.server.app import ServerSettings, ServerThread

__all__ = ["InvertGenerator", "Stack"]


class InvertGenerator:
    """A deterministic non-identity generator: 255 - pixel."""

    name = "invert"

    def frames_needed(self) -> int:
        return 1

    def process(self, frames: Sequence[Frame]) -> list[Frame]:
        return [f.with_image(255 - f.image) for f in frames]

    def apply(self, command: object) -> None:
        return None

    def reset(self) -> None:
        return None

    def stats(self) -> dict[str, Any]:
        return {}


class Stack:
    """Server + runner (webrtc source -> generator -> webrtc sink), all in the namespace."""

    def __init__(self, generator: Any, settings: ServerSettings, size: tuple[int, int] = (320, 240), *,
                 controls: bool = False) -> None:
        hub = settings.make_hub()
        self.source = WebRTCSource(hub, size=size, fps=30)
        self.sink = WebRTCSink(hub, fps=30)
        self.runner = Runner(self.source, generator, [self.sink], size=size, fps=30)
        self.controller = None
        if controls:  # the control API, wired as `livestyle serve` wires it
            self.controller = Controller(load_presets(), self.runner.submit, Params("start", 0.6, 2, 42))
        routes = control_routes(self.controller, stats=self.runner.stats) if self.controller is not None else None
        self.server = ServerThread(settings, hub, control_routes=routes).start()
        self.runner.start()
        self.url = self.server.url

    def close(self) -> None:
        self.runner.stop()
        self.runner.wait(10)
        self.server.stop()
