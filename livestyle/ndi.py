"""NDI® (``ndi://NAME``), shared by the NDI source (:mod:`livestyle.ingest.ndi`) and sink
(:mod:`livestyle.output.ndi`): the spec, the runtime's discovery settings, loading ``cyndilib``.

A leaf module beside :mod:`livestyle.optional` (it imports only ``errors``, ``optional`` and
``urls``), so ``ingest/`` and ``output/`` can share it.

Specs: ``ndi://NAME`` names a sender. NDI calls a sender ``HOST (NAME)``; a source spec matches
that full name or, without the host, the ``NAME`` part on any machine. A sink's ``NAME`` is the
stream name it announces (receivers see ``HOST (NAME)``). ``?ips=10.0.0.5,10.0.0.6`` lists the
machines whose sources a receiver asks for directly, the NDI SDK's "extra IPs": no mDNS is needed
for those (``?ips=127.0.0.1`` on one machine). ``?groups=a,b`` puts a sink's sender in NDI groups.

Discovery settings are the NDI runtime's own: ``NDI_CONFIG_DIR`` (a folder with
``ndi-config.v1.json``, ``{"ndi": {"networks": {"ips": "...", "discovery": "..."}}}``), else
``~/.ndi/ndi-config.v1.json``. The runtime reads them when its first finder, sender or receiver
is made in a process, so :func:`load_cyndilib` applies ``ips`` before that and warns when it
comes too late.

NDI® is a registered trademark of Vizrt NDI AB (https://ndi.video/).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import ModuleType
from urllib.parse import parse_qs, unquote, urlsplit

from livestyle.errors import LivestyleError
from livestyle.optional import require
from livestyle.urls import check_url

__all__ = ["NDI_NOTICE", "NdiSpec", "frame_rate", "load_cyndilib", "matches", "parse_ndi_spec"]

log = logging.getLogger(__name__)

NDI_NOTICE = "NDI® is a registered trademark of Vizrt NDI AB (https://ndi.video/)"

_lock = threading.Lock()
_started = False  # a finder, sender or receiver was made in this process: the config is read
_applied_ips: tuple[str, ...] = ()


@dataclass(frozen=True)
class NdiSpec:
    """A parsed ``ndi://`` spec.

    Attributes:
        name: the sender's name (``HOST (NAME)`` or ``NAME``), decoded, never empty.
        ips: extra IPs (or hosts) to ask for sources without mDNS.
        groups: the sink's NDI groups, comma-separated ('' for the default group).
    """

    name: str
    ips: tuple[str, ...] = ()
    groups: str = ""

    @property
    def url(self) -> str:
        return f"ndi://{self.name}"


def parse_ndi_spec(spec: str, error: type[LivestyleError]) -> NdiSpec:
    """``ndi://NAME[?ips=A,B&groups=G]`` parsed, or ``error`` naming what is wrong."""
    check_url(spec, error)
    parts = urlsplit(spec)
    if parts.scheme.lower() != "ndi":
        raise error(f"not an NDI spec: {spec!r} (use ndi://NAME)")
    name = unquote(spec.split("://", 1)[1].split("?", 1)[0]).strip().rstrip("/")
    if not name:
        raise error(f"{spec!r} names no NDI sender: use ndi://NAME (e.g. ndi://livestyle)")
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - {"ips", "groups"})
    if unknown:
        raise error(f"{spec!r}: unknown NDI option {unknown[0]!r} (use ips= or groups=)")
    ips = tuple(ip.strip() for v in query.get("ips", []) for ip in v.split(",") if ip.strip())
    groups = ",".join(g.strip() for v in query.get("groups", []) for g in v.split(",") if g.strip())
    return NdiSpec(name, ips, groups)


def matches(source_name: str, wanted: str) -> bool:
    """Whether the NDI source ``HOST (NAME)`` is the one ``wanted`` (full name or ``NAME``)."""
    if source_name.casefold() == wanted.casefold():
        return True
    host, sep, rest = source_name.partition(" (")
    return bool(sep) and rest.endswith(")") and rest[:-1].casefold() == wanted.casefold()


def frame_rate(fps: float) -> Fraction:
    """The NDI frame rate for ``fps``: exact for 30 and the NTSC rates (29.97 -> 30000/1001)."""
    for base in (24, 30, 48, 60, 120):
        if abs(fps - base * 1000 / 1001) < 0.005:
            return Fraction(base * 1000, 1001)
    rate = Fraction(fps).limit_denominator(1000)
    return rate if rate > 0 else Fraction(30)


def _write_config(ips: tuple[str, ...]) -> None:
    """Point ``NDI_CONFIG_DIR`` at a copy of the user's NDI config with ``ips`` added."""
    base = Path(os.environ.get("NDI_CONFIG_DIR") or Path.home() / ".ndi") / "ndi-config.v1.json"
    config: dict = {}
    if base.is_file():
        try:
            config = json.loads(base.read_text())
        except (OSError, ValueError) as exc:
            log.warning("NDI config %s not read (%s); using extra IPs alone", base, exc)
    networks = config.setdefault("ndi", {}).setdefault("networks", {})
    have = [ip.strip() for ip in str(networks.get("ips", "")).split(",") if ip.strip()]
    networks["ips"] = ",".join(dict.fromkeys([*have, *ips]))
    folder = Path(tempfile.mkdtemp(prefix="livestyle-ndi-"))
    (folder / "ndi-config.v1.json").write_text(json.dumps(config))
    os.environ["NDI_CONFIG_DIR"] = str(folder)


def load_cyndilib(error: type[LivestyleError], ips: tuple[str, ...] = ()) -> ModuleType:
    """``cyndilib`` (the NDI runtime inside its wheel), after applying ``ips`` to the runtime's
    config; ``error`` with the ``pip install 'livestyle[ndi]'`` hint when it is missing. Call it
    right before making a finder, sender or receiver."""
    global _started, _applied_ips
    cyndilib = require("cyndilib", error, extra="ndi")
    with _lock:
        new = tuple(ip for ip in ips if ip not in _applied_ips)
        if new and _started:
            log.warning("NDI is already running in this process: ips=%s not applied; put them in "
                        "ndi-config.v1.json (NDI_CONFIG_DIR) instead", ",".join(new))
        elif new:
            _write_config(new)
            _applied_ips += new
        _started = True
    return cyndilib
