"""Wiring for the verbs (``run``, ``serve``): a controller from the config, and every command source.

::

    controller = build_controller(cfg, runner.submit, preset_paths=presets_option)
    with Controls(controller, cfg, terminal=True, system_hotkeys=False) as controls:
        stats = lambda: {**runner.stats(), "controls": controls.stats()}
        runner.run()

:class:`Controls` starts terminal hotkeys when stdin is a TTY, pynput hotkeys when asked, and the
OBS bridge when ``obs.enabled``; none of them can stop the stream by failing (the OBS bridge keeps
retrying in the background; a missing pynput raises :class:`~livestyle.errors.ConfigError` at start,
before the stream begins).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from livestyle.config import Config, ObsConfig
from livestyle.control.controller import Controller, LoraCatalog, Params, Precondition
from livestyle.control.hotkeys import TERMINAL_HELP, GlobalHotkeys, TerminalHotkeys
from livestyle.control.obs_bridge import ObsBridge, ObsSettings
from livestyle.control.presets import PresetBook, UnknownPresetError, load_presets
from livestyle.engine.commands import StreamCommand, parse_lora_list
from livestyle.errors import ConfigError
from livestyle.server.app import ServerSettings, ServerThread

if TYPE_CHECKING:
    from aiohttp import web

__all__ = ["ControlApiServer", "Controls", "build_controller", "initial_params", "load_preset_book", "obs_settings"]


def initial_params(cfg: Config, *, bypass: bool = False) -> Params:
    """The controller's starting snapshot from ``model.*`` and ``effects.mode``."""
    m = cfg.model
    return Params(
        prompt=m.prompt,
        strength=m.strength,
        steps=m.steps,
        seed=m.seed,
        bypass=bypass,
        effect=cfg.effects.mode,
        transition_chunks=m.transition_chunks,
        loras=parse_lora_list(m.loras),
    )


def load_preset_book(cfg: Config, preset_paths: Sequence[str | Path] = ()) -> PresetBook:
    """The presets of a stream: ``--presets`` paths, else ``presets.file``, else the bundled set.

    ``presets.start`` is checked here, so a wrong name fails in a moment, before any model loads
    (a :class:`~livestyle.errors.ConfigError`, exit 2, listing the valid names).
    """
    paths = list(preset_paths) or ([cfg.presets.file] if cfg.presets.file else [])
    book = load_presets(*paths)
    if cfg.presets.start:
        try:
            book.index_of(cfg.presets.start)
        except UnknownPresetError as exc:  # a bad option at start (exit 2), not a refused live command
            raise ConfigError(str(exc)) from None
    return book


def build_controller(
    cfg: Config,
    submit: Callable[[StreamCommand], None],
    *,
    preset_paths: Sequence[str | Path] = (),
    presets: PresetBook | None = None,
    max_steps: int = 8,
    bypass: bool = False,
    precondition: Precondition | None = None,
    lora_catalog: LoraCatalog | None = None,
    takes_loras: bool = True,
    styles: bool = True,
) -> Controller:
    """A controller over ``presets`` (default: :func:`load_preset_book` of ``preset_paths``) that
    selects ``presets.start`` when set. ``max_steps`` is the model family's limit; ``precondition``
    lets the stream refuse what it cannot apply (409 in the API); ``lora_catalog`` lists the LoRA
    folder (``GET /api/loras``); ``takes_loras`` False (passthrough): LoRA switches are refused and
    the params list none; ``styles`` False (passthrough): a look sent live is applied with a notice that it
    changes nothing (:meth:`Controller.notice`)."""
    book = presets if presets is not None else load_preset_book(cfg, preset_paths)
    controller = Controller(
        book, submit, initial_params(cfg, bypass=bypass), max_steps=max_steps, precondition=precondition,
        lora_catalog=lora_catalog, takes_loras=takes_loras, styles=styles,
    )
    if cfg.presets.start:
        controller.select(cfg.presets.start)
    return controller


def obs_settings(obs: ObsConfig) -> ObsSettings:
    """Bridge settings from the ``obs`` config section."""
    return ObsSettings(
        host=obs.host,
        port=obs.port,
        password=obs.password,
        scene_presets=dict(obs.scene_presets),
        item_presets=dict(obs.item_presets),
        prompt_source=obs.prompt_source,
    )


class Controls:
    """Starts and stops the command sources around a stream; see the module docstring."""

    def __init__(
        self,
        controller: Controller,
        cfg: Config,
        *,
        terminal: bool = True,
        system_hotkeys: bool = False,
        on_message: Callable[[str], None] | None = None,
    ) -> None:
        self._controller = controller
        self._terminal = (TerminalHotkeys(controller, on_notice=on_message) if on_message is not None
                          else TerminalHotkeys(controller)) if terminal else None
        self._system = GlobalHotkeys(controller) if system_hotkeys else None
        self._bridge = ObsBridge(controller, obs_settings(cfg.obs)) if cfg.obs.enabled else None
        self._on_message = on_message
        self._terminal_on = False

    def start(self) -> Controls:
        if self._system is not None:
            self._system.start()
        if self._terminal is not None:
            self._terminal_on = self._terminal.start()
            if self._terminal_on and self._on_message is not None:
                self._on_message(TERMINAL_HELP)
        if self._bridge is not None:
            self._bridge.start()
        return self

    def stop(self) -> None:
        if self._bridge is not None:
            self._bridge.stop()
        if self._terminal is not None:
            self._terminal.stop()
        if self._system is not None:
            self._system.stop()

    def __enter__(self) -> Controls:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def bridge(self) -> ObsBridge | None:
        return self._bridge

    def stats(self) -> dict[str, Any]:
        """``{"obs": bridge stats or None, "terminal_hotkeys": bool, "system_hotkeys": bool}``."""
        return {
            "obs": self._bridge.stats() if self._bridge is not None else None,
            "terminal_hotkeys": self._terminal_on,
            "system_hotkeys": self._system is not None,
        }


class ControlApiServer(ServerThread):
    """Serves the control API alone (``livestyle run --api``): no page, no WebRTC, no WHIP/WHEP.

    The same rules as ``livestyle serve``: 127.0.0.1 by default; bound beyond loopback, a token
    is required (generated when ``settings.token`` is unset). ``GET /health`` needs no token.
    """

    def __init__(self, settings: ServerSettings, controller: Controller, stats: Callable[[], dict[str, Any]]) -> None:
        super().__init__(settings, settings.make_hub())
        self.controller = controller
        self.stats = stats

    async def _make_app(self) -> web.Application:
        from aiohttp import web

        from livestyle.control.api import add_control_routes
        from livestyle.server.app import base_middlewares, health
        from livestyle.server.security import add_security_headers

        app = web.Application(
            client_max_size=self.settings.max_body_bytes,
            middlewares=base_middlewares(self.settings, ["/health"]),
        )
        add_security_headers(app)
        app.router.add_get("/health", health)
        add_control_routes(app, self.controller, stats=self.stats)
        return app
