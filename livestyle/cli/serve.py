"""``livestyle serve``: the web page, WebRTC in/out, WHIP in, WHEP out and the control API.

The browser page (or a WHIP publisher such as OBS 30+) is the source; the page, the ``/view``
page and WHEP players are the sinks, plus any ``--sink`` given (a recording, a virtual camera).
"""

from __future__ import annotations

import dataclasses
import os
import ssl
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from livestyle.cli.help_text import examples
from livestyle.cli.run import (
    BypassOption,
    ControlOptions,
    FitOption,
    FpsOption,
    LoraOption,
    ModelOption,
    NoGovernorOption,
    NoKeysOption,
    ObsOption,
    ObsPasswordOption,
    PresetOption,
    PresetsOption,
    PromptOption,
    QuietOption,
    StatsFn,
    SystemHotkeysOption,
    DeviceOption,
    GpusOption,
    WeightsDirOption,
    build_config,
    model_overrides,
    stream,
)

__all__ = ["register", "serve"]

EXAMPLES = examples(
    "livestyle serve                                   # http://127.0.0.1:8080, --model auto",
    'livestyle serve --model sdv2-1.3b --prompt "oil painting" --size 832x480',
    "livestyle serve --host 0.0.0.0 --port 8443        # token generated and printed",
    "livestyle serve --host 0.0.0.0 --port 8443 --tls  # HTTPS: remote cameras",
    "livestyle serve --codec h264 --bitrate 4000000 --sink rec.mp4",
    "livestyle serve --model sdv2-1.3b --presets my-looks.yaml --preset noir --obs",
    notes='OBS 30+: Settings → Stream → Service WHIP, Server http://HOST:PORT/whip, Bearer Token = the token.\n\nViewer for an OBS browser source: http://HOST:PORT/view?token=TOKEN (WHEP: POST /whep).',
)


def _server_overrides(**values: Any) -> list[str]:
    return [f"server.{k}={v}" for k, v in values.items() if v is not None]


def _tls_context(host: str, tls: bool, cert: Path | None, key: Path | None) -> ssl.SSLContext | None:
    """The HTTPS context of ``--tls`` / ``--tls-cert`` / ``--tls-key`` (None: plain http)."""
    if not (tls or cert or key):
        return None
    from livestyle.server.tls import load_or_create, server_context

    folder = Path(os.environ.get("LIVESTYLE_CACHE_DIR") or Path.home() / ".cache" / "livestyle") / "tls"
    files = load_or_create(host, folder, cert, key)
    if files.generated:
        print(f"note: HTTPS with a self-signed certificate ({files.cert}, SHA-256 {files.fingerprint()}): "
              "a browser asks once to accept it; --tls-cert/--tls-key serve your own", file=sys.stderr)
    return server_context(files)


def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default 127.0.0.1). A loopback address (127.x.x.x, ::1, localhost) needs no token; any other needs one, generated and printed")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port (default 8080)")] = None,
    tls: Annotated[bool, typer.Option("--tls", help="HTTPS: a browser on another machine gives the page its camera only over https (a self-signed certificate is made on first use)")] = False,
    tls_cert: Annotated[Path | None, typer.Option("--tls-cert", help="Your PEM certificate for HTTPS (implies --tls; with --tls-key)")] = None,
    tls_key: Annotated[Path | None, typer.Option("--tls-key", help="The PEM private key of --tls-cert")] = None,
    token: Annotated[str | None, typer.Option(help="Bearer token (generated when --host is not loopback)")] = None,
    codec: Annotated[str | None, typer.Option(help="Output video codec: vp8 or h264")] = None,
    bitrate: Annotated[int | None, typer.Option(help="Output video bitrate in bits/s")] = None,
    max_publishers: Annotated[int | None, typer.Option("--max-publishers", help="Publishing sessions at once")] = None,
    sink: Annotated[list[str] | None, typer.Option("--sink", "-o", help="Extra sinks besides the page/WHEP (repeatable)")] = None,
    prompt: PromptOption = None,
    model: ModelOption = None,
    size: Annotated[str | None, typer.Option(help="Pipeline size WIDTHxHEIGHT")] = None,
    fps: FpsOption = None,
    preset: PresetOption = None,
    presets: PresetsOption = None,
    no_keys: NoKeysOption = False,
    system_hotkeys: SystemHotkeysOption = False,
    obs: ObsOption = False,
    obs_password: ObsPasswordOption = None,
    weights_dir: WeightsDirOption = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML config file")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a config key: section.key=value")] = None,
    bypass: BypassOption = False,
    no_governor: NoGovernorOption = False,
    quiet: QuietOption = False,
    fit: FitOption = None,
    lora: LoraOption = None,
    gpus: GpusOption = None,
    device: DeviceOption = None,
) -> None:
    """Serve the web page: a browser camera or WHIP publisher in, the styled stream out to the page and WHEP."""
    from livestyle.control.api import control_routes
    from livestyle.ingest.webrtc import WebRTCSource
    from livestyle.output.webrtc import WebRTCSink
    from livestyle.server.app import (
        ServerSettings,
        ServerThread,
        is_loopback,
        register_server,
    )
    from livestyle.server.hub import set_hub

    if host is not None and not is_loopback(host) and token is None:
        print("note: --host is not loopback: a token is required (generated below)", file=sys.stderr)
    overrides = [*(set_ or ()), *_server_overrides(host=host, port=port, codec=codec, bitrate=bitrate,
                                                   max_publishers=max_publishers),
                 *(["governor.enabled=false"] if no_governor else []), *model_overrides(gpus, device)]
    cfg = build_config(config, overrides, model=model, prompt=prompt, size=size, fps=fps, preset=preset,
                       weights_dir=weights_dir, obs=True if obs else None, obs_password=obs_password,
                       fit=fit, loras=lora or ())
    if token is not None:
        cfg = dataclasses.replace(cfg, server=dataclasses.replace(cfg.server, token=token))
    settings = ServerSettings.from_config(cfg.server).resolved()
    ssl_context = _tls_context(settings.host, tls, tls_cert, tls_key)  # before the model loads: fails fast
    hub = settings.make_hub()
    set_hub(hub)
    s = cfg.stream

    def start_server(controller: Any, stats: StatsFn) -> Callable[[], None]:
        routes = control_routes(controller, stats=lambda: {**stats(), "webrtc": hub.stats()})
        server = ServerThread(settings, hub, control_routes=routes, ssl_context=ssl_context).start()
        register_server(server)
        query = f"?token={settings.token}" if settings.token else ""
        url = server.browser_url  # never http://0.0.0.0:...: an address another machine can open
        print(f"livestyle: open {url}/{query}  (viewer: {url}/view{query}, WHIP: {url}/whip, "
              f"WHEP: {url}/whep)", file=sys.stderr)
        if ssl_context is None and not is_loopback(settings.host):
            print("note: browsers give the camera only to https pages or localhost: add --tls for a camera "
                  "on another machine (the viewer page, WHIP and WHEP work over http)", file=sys.stderr)
        if settings.token:
            print(f"token: {settings.token}", file=sys.stderr)

        def stop() -> None:
            server.stop()
            register_server(None)

        return stop

    options = ControlOptions(preset_paths=tuple(presets or ()), keys=not no_keys, system_hotkeys=system_hotkeys)
    sinks = [WebRTCSink(hub, fps=s.fps), *(sink or ())]
    # without --size the publisher's first frame sets the working size (its aspect ratio: a 4:3
    # camera is not centre-cropped), as a camera's does in `run`
    follow = s.aspect == "source"
    report = stream(cfg, WebRTCSource(hub, size=None if follow else s.size, fps=s.fps, fit=s.fit), sinks, bypass=bypass, status=not quiet,
                    controls=options, serve=start_server)
    print(f"done ({report.stop_reason}): {report.frames_out} frames out, {report.frames_in} in", file=sys.stderr)


def register(app: typer.Typer) -> None:
    app.command("serve", help=(serve.__doc__ or "") + "\n\n" + EXAMPLES)(serve)
