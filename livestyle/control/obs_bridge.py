"""The OBS bridge: OBS (through obs-websocket 5) changes the look; livestyle never depends on OBS.

What it listens to, once connected:

- ``CustomEvent`` with our payload ``{"livestyle": {"command": ...}}`` (:mod:`livestyle.control.wire`):
  sent by ``obs/livestyle-hotkeys.lua`` on an OBS hotkey, or by any websocket client such as a
  Stream Deck or Touch Portal button (``BroadcastCustomEvent``). Malformed payloads are logged
  and ignored; other tools' custom events pass by.
- ``CurrentProgramSceneChanged``: a scene named in ``scene_presets`` selects that preset.
- ``SceneItemEnableStateChanged``: showing a scene item whose source is named in ``item_presets``
  selects that preset (OBS's native per-item show/hide hotkeys, no script needed).

Optionally it writes the current prompt into an OBS text source (``prompt_source``).

obs-websocket-py's rules are honoured by a small adapter: its callbacks run on its receive thread,
so ours only put the event on a bounded queue (inside try/except: an exception there would kill
that thread); one worker thread connects, reconnects with exponential backoff while OBS is away
(quietly: state ``"connecting"`` in :meth:`ObsBridge.stats`), and does all the work. A wrong
password stops the retries (state ``"auth_failed"`` with :data:`AUTH_FAILED_MESSAGE`) instead of
hammering OBS. Nothing here can stop the stream.
"""

from __future__ import annotations

import functools
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from livestyle.control.controller import Controller, Params
from livestyle.control.wire import command_from_custom_event
from livestyle.errors import ConfigError, ControlError
from livestyle.engine.commands import SelectPreset, SetPrompt, StreamCommand

__all__ = ["ObsBridge", "ObsSettings", "ObsAuthError", "AUTH_FAILED_MESSAGE", "BRIDGE_STATES"]

log = logging.getLogger(__name__)

AUTH_FAILED_MESSAGE = (
    "OBS rejected the websocket password: copy it from OBS (Tools -> WebSocket Server Settings -> "
    "Show Connect Info) into obs.password (--set obs.password=...); not retrying until restarted"
)
"""What the bridge reports (stats ``last_error``, the log, :class:`ObsAuthError`) on a wrong password."""

BRIDGE_STATES = ("stopped", "connecting", "connected", "auth_failed")

_WATCHED_EVENTS = frozenset({"CustomEvent", "CurrentProgramSceneChanged", "SceneItemEnableStateChanged"})
_CLOSE_AUTH_FAILED = 4009
_QUEUE_SIZE = 256


class ObsAuthError(ControlError):
    """OBS refused our password (obs-websocket close code 4009)."""


@dataclass(frozen=True)
class ObsSettings:
    """Where OBS is and what maps to what.

    ``scene_presets``: OBS scene name -> preset name. ``item_presets``: source name of a scene
    item -> preset name (applied when the item is shown). ``prompt_source``: name of an OBS text
    input whose ``text`` follows the prompt. Backoff runs from ``backoff_min`` doubling up to
    ``backoff_max`` seconds while OBS is unreachable.
    """

    host: str = "127.0.0.1"
    port: int = 4455
    password: str | None = None
    scene_presets: Mapping[str, str] = field(default_factory=dict)
    item_presets: Mapping[str, str] = field(default_factory=dict)
    prompt_source: str | None = None
    connect_timeout: float = 3.0
    request_timeout: float = 3.0
    backoff_min: float = 0.5
    backoff_max: float = 10.0

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"


def _import_client() -> tuple[Any, Any, Any, Any]:
    try:
        import websocket
        from obswebsocket import exceptions, obsws, requests
    except ImportError as exc:
        raise ConfigError(f"the OBS bridge needs obs-websocket-py: pip install 'livestyle[obs]' ({exc})") from None
    return obsws, requests, exceptions, websocket


@functools.cache
def _make_client_class() -> type:
    """obs-websocket-py's ``obsws`` with a connect timeout, a clear auth failure and a disconnect
    that is safe to run on its own receive thread (the library joins that thread from itself)."""
    obsws, _, exceptions, websocket = _import_client()

    class _Client(obsws):  # type: ignore[misc, valid-type]
        def __init__(self, settings: ObsSettings, on_disconnect: Callable[[Any], None]) -> None:
            super().__init__(
                settings.host,
                settings.port,
                settings.password or "",
                legacy=False,
                timeout=settings.request_timeout,
                authreconnect=0,
                on_disconnect=on_disconnect,
            )
            self._connect_timeout = settings.connect_timeout

        def connect(self) -> None:
            from obswebsocket.core import RecvThread

            self.ws = websocket.WebSocket()
            self.ws.connect(f"ws://{self.host}:{self.port}", timeout=self._connect_timeout)
            try:
                self._identify()
            except BaseException:
                self._close_socket()
                raise
            self.ws.settimeout(None)
            self.thread_recv = RecvThread(self)
            self.thread_recv.daemon = True
            self.thread_recv.start()

        def _identify(self) -> None:
            hello = json.loads(self.ws.recv())
            if hello.get("op") != 0:
                raise exceptions.ConnectionFailure(f"not an obs-websocket 5 server (got {str(hello)[:80]})")
            self.server_version = hello["d"].get("obsWebSocketVersion")
            challenge = hello["d"].get("authentication")
            auth = self._build_auth_string(challenge["salt"], challenge["challenge"]) if challenge else ""
            self.ws.send(json.dumps({"op": 1, "d": {"rpcVersion": 1, "authentication": auth, "eventSubscriptions": 1023}}))
            opcode, data = self.ws.recv_data()
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                code = int.from_bytes(data[:2], "big") if len(data) >= 2 else 0
                if code == _CLOSE_AUTH_FAILED:
                    raise ObsAuthError(AUTH_FAILED_MESSAGE)
                reason = data[2:].decode("utf-8", "replace")
                raise exceptions.ConnectionFailure(f"OBS closed the connection (code {code}: {reason})")
            identified = json.loads(data)
            if identified.get("op") != 2:
                raise exceptions.ConnectionFailure(f"unexpected reply to Identify: {str(identified)[:80]}")

        def _close_socket(self) -> None:
            sock = self.ws
            if sock is None:
                return
            for action in (sock.abort, sock.shutdown):
                try:
                    action()
                except Exception:  # the socket may already be gone; closing is best effort
                    log.debug("closing the OBS socket", exc_info=True)

        def disconnect(self) -> None:
            recv = self.thread_recv
            if recv is not None and recv.running:
                recv.running = False
                if self.on_disconnect:
                    self.on_disconnect(self)
            self._close_socket()
            if recv is not None and recv is not threading.current_thread():
                recv.join(timeout=2.0)
            self.thread_recv = None

        def alive(self) -> bool:
            recv = self.thread_recv
            return recv is not None and recv.running and recv.is_alive()

    return _Client


class ObsBridge:
    """Connects to OBS and turns its events into controller commands; see the module docstring.

    ``start()`` returns at once; the worker keeps (re)connecting until ``stop()``. Mappings are
    checked against the controller's presets at construction (:class:`ControlError` listing the
    valid names).
    """

    def __init__(self, controller: Controller, settings: ObsSettings, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._controller = controller
        self._settings = settings
        self._clock = clock
        for kind, mapping in (("scene_presets", settings.scene_presets), ("item_presets", settings.item_presets)):
            for obs_name, preset in mapping.items():
                try:
                    controller.presets.index_of(preset)
                except ControlError as exc:
                    raise ControlError(f"obs.{kind}[{obs_name!r}]: {exc}") from None
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=_QUEUE_SIZE)
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._client: Any = None
        self._remove_listener: Callable[[], None] | None = None
        self._items: dict[tuple[str, int], str] = {}
        self._state = "stopped"
        self._last_error: str | None = None
        self._obs_version: str | None = None
        self._connected_at: float | None = None
        self._counts = {"attempts": 0, "connects": 0, "events": 0, "commands": 0, "ignored": 0, "dropped": 0}

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker (idempotent). Never blocks on OBS."""
        if self._thread is not None:
            return
        _import_client()
        self._stop.clear()
        if self._settings.prompt_source:
            self._remove_listener = self._controller.add_listener(self._on_params)
        self._set_state("connecting")
        self._thread = threading.Thread(target=self._run, name="livestyle-obs", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Disconnect and end the worker."""
        self._stop.set()
        if self._remove_listener is not None:
            self._remove_listener()
            self._remove_listener = None
        self._enqueue(("wake", None))
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)
        self._set_state("stopped")

    def __enter__(self) -> ObsBridge:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- status -------------------------------------------------------------------------------

    @property
    def state(self) -> str:
        """One of :data:`BRIDGE_STATES`."""
        return self._state

    @property
    def last_error(self) -> str | None:
        return self._last_error

    def stats(self) -> dict[str, Any]:
        """JSON-ready status for ``/api/stats``: state, url, counters, last error, OBS version."""
        connected_for = None
        if self._state == "connected" and self._connected_at is not None:
            connected_for = round(self._clock() - self._connected_at, 3)
        return {
            "state": self._state,
            "url": self._settings.url,
            "obs_version": self._obs_version,
            "connected_for_s": connected_for,
            "last_error": self._last_error,
            **self._counts,
        }

    def wait_for_state(self, *states: str, timeout: float) -> bool:
        """Block until the bridge is in one of ``states``; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._state not in states:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def wait_connected(self, timeout: float) -> None:
        """Block until connected; :class:`ObsAuthError` on a wrong password, ControlError on timeout."""
        self.wait_for_state("connected", "auth_failed", timeout=timeout)
        if self._state == "auth_failed":
            raise ObsAuthError(AUTH_FAILED_MESSAGE)
        if self._state != "connected":
            raise ControlError(
                f"OBS did not answer at {self._settings.url} within {timeout:g} s ({self._last_error}); "
                "is OBS running with Tools -> WebSocket Server Settings -> Enable enabled?"
            )

    def _set_state(self, state: str) -> None:
        with self._cond:
            self._state = state
            self._cond.notify_all()

    # -- receive-thread side: enqueue only ----------------------------------------------------

    def _enqueue(self, item: tuple[str, Any]) -> None:
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self._counts["dropped"] += 1

    def _on_event(self, event: Any) -> None:
        try:
            name = getattr(event, "name", None)
            if name in _WATCHED_EVENTS:
                self._enqueue(("event", (name, dict(getattr(event, "datain", {}) or {}))))
        except Exception:  # never let anything escape onto obs-websocket-py's receive thread
            log.exception("dropped an OBS event that could not be queued")

    def _on_disconnect(self, _client: Any) -> None:
        try:
            self._enqueue(("closed", None))
        except Exception:  # same rule: nothing escapes onto the receive thread
            log.exception("could not queue OBS's disconnect")

    def _on_params(self, params: Params, applied: tuple[StreamCommand, ...]) -> None:
        if any(isinstance(c, SetPrompt) for c in applied):
            self._enqueue(("prompt", params.prompt))

    # -- worker -------------------------------------------------------------------------------

    def _run(self) -> None:
        delay = self._settings.backoff_min
        quiet = False
        while not self._stop.is_set():
            self._counts["attempts"] += 1
            try:
                client = self._connect()
            except ObsAuthError:
                self._last_error = AUTH_FAILED_MESSAGE
                log.error("%s", AUTH_FAILED_MESSAGE)
                self._set_state("auth_failed")
                self._stop.wait()
                return
            except Exception as exc:  # refused, timed out, reset: OBS is not there (yet)
                self._last_error = f"OBS not reachable at {self._settings.url}: {exc}"
                if not quiet:
                    log.info("%s; retrying quietly in the background", self._last_error)
                    quiet = True
                else:
                    log.debug("%s", self._last_error)
                self._set_state("connecting")
                self._stop.wait(delay)
                delay = min(delay * 2, self._settings.backoff_max)
                continue
            delay = self._settings.backoff_min
            quiet = False
            self._serve(client)
            client.disconnect()
            self._client = None
            if not self._stop.is_set():
                log.warning("lost the connection to OBS at %s; reconnecting", self._settings.url)
                self._set_state("connecting")

    def _connect(self) -> Any:
        client_class = _make_client_class()
        _, requests, _, _ = _import_client()
        self._drain()
        client = client_class(self._settings, self._on_disconnect)
        client.register(self._on_event)
        client.connect()
        try:
            version = client.call(requests.GetVersion())
        except BaseException:
            client.disconnect()
            raise
        self._client = client
        self._obs_version = version.datain.get("obsVersion") if version.status else None
        self._items.clear()
        self._last_error = None
        self._counts["connects"] += 1
        self._connected_at = self._clock()
        log.info("connected to OBS %s at %s", self._obs_version or "?", self._settings.url)
        self._set_state("connected")
        if self._settings.prompt_source:
            self._enqueue(("prompt", self._controller.params.prompt))
        return client

    def _drain(self) -> None:
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return

    def _serve(self, client: Any) -> None:
        _, _, exceptions, websocket = _import_client()
        lost = (websocket.WebSocketException, OSError, exceptions.MessageTimeout)
        while not self._stop.is_set():
            if not client.alive():
                return
            try:
                kind, payload = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            if kind == "closed":
                return
            try:
                if kind == "event":
                    self._handle_event(client, *payload)
                elif kind == "prompt":
                    self._write_prompt(client, payload)
            except lost as exc:
                log.debug("OBS request failed: %s", exc)
                return
            except ControlError as exc:
                self._counts["ignored"] += 1
                log.warning("OBS: %s", exc)
            except Exception:  # a surprise in one event must not end the bridge (or the stream)
                self._counts["ignored"] += 1
                log.exception("OBS: handling %s failed", kind)

    def _handle_event(self, client: Any, name: str, data: dict[str, Any]) -> None:
        self._counts["events"] += 1
        if name == "CustomEvent":
            try:
                command = command_from_custom_event(data)
            except ControlError as exc:
                self._counts["ignored"] += 1
                log.warning("ignored a malformed livestyle CustomEvent %s: %s", json.dumps(data)[:200], exc)
                return
            if command is not None:
                self._apply(command)
        elif name == "CurrentProgramSceneChanged":
            preset = self._settings.scene_presets.get(str(data.get("sceneName")))
            if preset is not None:
                self._apply(SelectPreset(preset))
        elif name == "SceneItemEnableStateChanged" and data.get("sceneItemEnabled") is True and self._settings.item_presets:
            source = self._item_source(client, str(data.get("sceneName")), int(data.get("sceneItemId", -1)))
            preset = self._settings.item_presets.get(source) if source else None
            if preset is not None:
                self._apply(SelectPreset(preset))

    def _apply(self, command: Any) -> None:
        self._controller.apply(command)
        self._counts["commands"] += 1

    def _item_source(self, client: Any, scene: str, item_id: int) -> str | None:
        key = (scene, item_id)
        if key not in self._items:
            _, requests, _, _ = _import_client()
            reply = client.call(requests.GetSceneItemList(sceneName=scene))
            if not reply.status:
                return None
            for item in reply.datain.get("sceneItems", []):
                self._items[(scene, int(item.get("sceneItemId", -1)))] = str(item.get("sourceName"))
        return self._items.get(key)

    def _write_prompt(self, client: Any, text: str) -> None:
        _, requests, _, _ = _import_client()
        source = self._settings.prompt_source
        reply = client.call(requests.SetInputSettings(inputName=source, inputSettings={"text": text}, overlay=True))
        if not reply.status:
            raise ControlError(f"cannot write the prompt into OBS text source {source!r}: no input by that name")
