"""The certificate of `serve --tls` (issue 27, point 3): made on first use, reused after, the user's
own pair when given; a real TLS handshake against the context."""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path

import pytest

from livestyle.errors import ServerError
from livestyle.server.tls import load_or_create, server_context


def test_made_once_then_reused_and_it_serves_tls(tmp_path: Path) -> None:
    first = load_or_create("127.0.0.1", tmp_path)
    assert first.generated and (first.key.stat().st_mode & 0o077) == 0  # the key is the user's alone
    pem = first.cert.read_bytes()
    assert load_or_create("127.0.0.1", tmp_path).cert.read_bytes() == pem  # reused: a browser's accept-once stays valid
    assert load_or_create("10.77.0.9", tmp_path).cert.read_bytes() != pem  # a new address: remade

    context = server_context(load_or_create("10.77.0.9", tmp_path))
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)

        def accept() -> None:
            conn, _ = listener.accept()
            with context.wrap_socket(conn, server_side=True) as tls:
                tls.sendall(b"ok")

        thread = threading.Thread(target=accept)
        thread.start()
        client = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))  # trusts exactly this certificate
        with socket.create_connection(listener.getsockname()) as raw, client.wrap_socket(raw, server_hostname="localhost") as tls:
            assert tls.recv(2) == b"ok"
        thread.join(5)


def test_a_users_pair_is_used_as_given_and_half_a_pair_is_refused(tmp_path: Path) -> None:
    made = load_or_create("127.0.0.1", tmp_path / "mine")
    given = load_or_create("0.0.0.0", tmp_path / "unused", made.cert, made.key)
    assert not given.generated and given.cert == made.cert and not (tmp_path / "unused").exists()
    with pytest.raises(ServerError, match="--tls-cert and --tls-key go together"):
        load_or_create("0.0.0.0", tmp_path, made.cert, None)
    with pytest.raises(ServerError, match="cannot load the TLS certificate"):
        server_context(load_or_create("0.0.0.0", tmp_path, made.key, made.key))
