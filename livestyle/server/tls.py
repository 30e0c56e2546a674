"""HTTPS for ``livestyle serve --tls``: a browser gives ``getUserMedia`` (the camera) only to a
secure context, an ``https://`` page or ``localhost``, so a camera on another machine needs TLS.

The certificate is the user's (``--tls-cert FILE --tls-key FILE``, e.g. from their own CA or
``mkcert``) or, without one, a self-signed certificate generated on first use into
``<cache>/tls/`` (``LIVESTYLE_CACHE_DIR``, default ``~/.cache/livestyle``) and reused while it
covers this machine's names and addresses and has a month left; a browser asks once to accept it.
:func:`browser_host` turns a wildcard bind address into one another machine can open.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from livestyle.errors import ServerError

__all__ = ["TlsFiles", "browser_host", "lan_addresses", "load_or_create", "server_context"]

VALID_DAYS = 397  # browsers refuse longer-lived certificates
RENEW_DAYS = 30


@dataclass(frozen=True)
class TlsFiles:
    """A PEM certificate and its key; ``generated``: made here (self-signed), not the user's."""

    cert: Path
    key: Path
    generated: bool = False

    def fingerprint(self) -> str:
        """The certificate's SHA-256 fingerprint, as a browser's certificate viewer shows it."""
        from cryptography import x509

        der = x509.load_pem_x509_certificate(self.cert.read_bytes()).public_bytes(_der())
        return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


def _der() -> object:
    from cryptography.hazmat.primitives.serialization import Encoding

    return Encoding.DER


def lan_addresses() -> list[str]:
    """This machine's non-loopback IPv4 addresses, the one with the default route first."""
    found: list[str] = []
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # TEST-NET-1: picks the outgoing address, sends nothing
        found.append(probe.getsockname()[0])
    except OSError:
        pass
    finally:
        probe.close()
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET):
            found.append(str(info[4][0]))
    except OSError:
        pass
    return [a for i, a in enumerate(found) if a not in found[:i] and not ipaddress.ip_address(a).is_loopback]


def browser_host(host: str) -> str:
    """An address a browser elsewhere can open for a server bound to ``host``: a wildcard
    (``0.0.0.0``, ``::``) becomes this machine's LAN address (its name when it has none)."""
    if host in ("0.0.0.0", "::", ""):
        addresses = lan_addresses()
        return addresses[0] if addresses else socket.gethostname()
    return host


def _names(host: str) -> tuple[list[str], list[str]]:
    """DNS names and IP addresses the certificate must cover for a server bound to ``host``."""
    names = ["localhost", socket.gethostname()]
    ips = ["127.0.0.1", "::1", *lan_addresses()]
    if host not in ("0.0.0.0", "::", ""):
        try:
            ipaddress.ip_address(host)
            ips.append(host)
        except ValueError:
            names.append(host)
    return sorted(set(names)), sorted(set(ips))


def _covers(cert_path: Path, names: list[str], ips: list[str]) -> bool:
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, x509.ExtensionNotFound):
        return False
    left = cert.not_valid_after_utc - datetime.datetime.now(datetime.timezone.utc)
    have_names = set(san.get_values_for_type(x509.DNSName))
    have_ips = {str(a) for a in san.get_values_for_type(x509.IPAddress)}
    return left > datetime.timedelta(days=RENEW_DAYS) and set(names) <= have_names and set(ips) <= have_ips


def _generate(folder: Path, names: list[str], ips: list[str]) -> TlsFiles:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"livestyle on {socket.gethostname()}")])
    now = datetime.datetime.now(datetime.timezone.utc)
    san = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(a)) for a in ips]
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        key_path, cert_path = folder / "key.pem", folder / "cert.pem"
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # the key is for this user only
        with os.fdopen(fd, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    except OSError as exc:
        raise ServerError(f"cannot write the TLS certificate into {folder} ({exc.strerror}): set LIVESTYLE_CACHE_DIR "
                          "to a writable folder, or pass --tls-cert FILE --tls-key FILE") from None
    return TlsFiles(cert_path, key_path, generated=True)


def load_or_create(host: str, folder: Path, cert: Path | None = None, key: Path | None = None) -> TlsFiles:
    """The user's ``cert`` and ``key`` (both or neither), else the self-signed pair in ``folder``,
    made now when missing, expiring or not covering this machine's names and addresses."""
    if (cert is None) != (key is None):
        raise ServerError("--tls-cert and --tls-key go together: the certificate and its private key (PEM files)")
    if cert is not None and key is not None:
        for path in (cert, key):
            if not path.is_file():
                raise ServerError(f"TLS file {path} does not exist")
        return TlsFiles(cert, key)
    names, ips = _names(host)
    if _covers(folder / "cert.pem", names, ips) and (folder / "key.pem").is_file():
        return TlsFiles(folder / "cert.pem", folder / "key.pem", generated=True)
    return _generate(folder, names, ips)


def server_context(files: TlsFiles) -> ssl.SSLContext:
    """A TLS 1.2+ server context over ``files``; :class:`ServerError` when they do not load."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(files.cert), str(files.key))
    except (OSError, ssl.SSLError) as exc:
        raise ServerError(f"cannot load the TLS certificate {files.cert} with key {files.key}: {exc}") from None
    return context
