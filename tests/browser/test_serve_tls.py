"""`livestyle serve --tls` beyond loopback (issue 27, point 3): a browser gives `getUserMedia` only to
a secure context, so over plain http from another address the page gets no camera; over the
certificate serve generates on first use it does. A real `livestyle serve` and a real Chromium, in
a network namespace where 10.77.0.1 is a non-loopback address of this "machine"."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from chromium import Chromium, chromium_path
from netns import NetnsRunner

pytestmark = pytest.mark.browser

ADDRESS = "10.77.0.1"
PROBE = "({secure: window.isSecureContext, camera: Boolean(navigator.mediaDevices && navigator.mediaDevices.getUserMedia)})"
APP_LOADED = "document.readyState === 'complete' && document.querySelector('script[src*=\"app.js\"]') !== null"
"""The page itself, not a browser error page (whose readyState is complete too, and which a loaded
machine can show for a first connection that comes too early or too slowly)."""


def _probe(chrome: Any, url: str, tries: int = 3) -> tuple[dict[str, Any], dict[str, Any]]:
    """Open ``url`` until the app's page is there (a fresh tab per try), then the PROBE; with the
    page's address and title for the assertion message when it never came."""
    page: dict[str, Any] = {}
    for _ in range(tries):
        page = chrome.open(url)
        try:
            chrome.wait_for(page, APP_LOADED, timeout=20)
        except TimeoutError:
            continue
        return page, chrome.evaluate(page, PROBE)
    where = chrome.evaluate(page, "({href: location.href, title: document.title})")
    return page, {"never_loaded": where}


def _serve(port: int, cache: Path, *extra: str) -> tuple[subprocess.Popen[str], str]:
    """`livestyle serve --host ADDRESS` and the page URL it prints."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "LIVESTYLE_CACHE_DIR": str(cache)}
    proc = subprocess.Popen([sys.executable, "-m", "livestyle", "serve", "--host", ADDRESS, "--port", str(port),
                             "--model", "passthrough", "--no-keys", "-q", *extra],
                            stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    lines = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stderr.readline()  # type: ignore[union-attr]
        if not line:
            break
        lines.append(line)
        found = re.search(r"livestyle: open (\S+)", line)
        if found:
            return proc, found.group(1)
    proc.kill()
    raise AssertionError(f"serve printed no URL: {lines}")


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _spki_hash(cert: Path) -> str:
    """Chromium's --ignore-certificate-errors-spki-list form: base64 SHA-256 of the public key."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    key = x509.load_pem_x509_certificate(cert.read_bytes()).public_key()
    return base64.b64encode(hashlib.sha256(key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)).digest()).decode()


def test_the_page_gets_the_camera_over_tls_beyond_loopback(netns: NetnsRunner, fake_camera: Path, tmp_path: Path) -> None:
    if chromium_path() is None:
        pytest.skip("Debian chromium is not installed (apt-get install -y chromium)")

    def scenario() -> dict[str, Any]:
        subprocess.run(["ip", "addr", "add", f"{ADDRESS}/32", "dev", "lo"], check=True)
        out: dict[str, Any] = {}
        proc, url = _serve(18780, tmp_path / "cache")  # plain http: the control
        chrome = Chromium(fake_camera)
        try:
            out["http_url"] = url
            _, out["http"] = _probe(chrome, url)
        finally:
            chrome.close()
            _stop(proc)
        proc, url = _serve(18781, tmp_path / "cache", "--tls")
        cert = tmp_path / "cache" / "tls" / "cert.pem"
        # the browser trusts exactly this certificate, as a user does who accepts it once
        chrome = Chromium(fake_camera, extra_flags=(f"--ignore-certificate-errors-spki-list={_spki_hash(cert)}",))
        try:
            out["https_url"] = url
            page, out["https"] = _probe(chrome, url.replace("?", "?autostart=1&") if "?" in url else url + "?autostart=1")
            out["frames"] = chrome.wait_for(
                page, "Promise.resolve(window.livestyle && window.livestyle.report()).then(r => r && r.outFrames >= 10 && r)",
                timeout=40)
        finally:
            chrome.close()
            _stop(proc)
        return out

    r = netns.run(scenario, timeout=200)
    assert r["http_url"].startswith(f"http://{ADDRESS}:18780/?token="), r
    assert r["http"] == {"secure": False, "camera": False}, r  # why --tls exists
    assert r["https_url"].startswith(f"https://{ADDRESS}:18781/?token="), r
    assert r["https"] == {"secure": True, "camera": True}, r
    assert r["frames"]["outFrames"] >= 10, r  # the camera went through serve and back
