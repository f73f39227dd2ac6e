"""Micro-benchmark of the Python work around one mTLS handshake, in process, on memory BIOs.

    .venv/bin/python bench/profile_micro.py [--count 2000]

A pyOpenSSL client handshakes with a :class:`mutls.tls.TLSConnection`, and
the server-side steps after OpenSSL's part are timed apart: ``_establish`` (the verdict and
``TLSInfo``), ``connection_facts`` (what every request sees), one ASGI request's scope, and the
verdict a resumed handshake computes again (``_client_certificate(resumed=True)``).
The figures are µs per call (median of the runs); OpenSSL's own handshake cost is not in them.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from OpenSSL import SSL, crypto

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pki import make_pki

from mutls.apps import facts as facts_module
from mutls.apps.asgi import http_scope
from mutls.http.connection import HTTPConnection
from mutls.pki.identity import Identity
from mutls.pki.trust import TrustMaterial
from mutls.tls import connection as tls_connection
from mutls.tls.context import ServerContext, ServerTLSConfig
from mutls.tls.options import ClientCertMode

TIMES: dict[str, list[float]] = {}


def timed(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """``function``, recording its wall time under ``name``."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            TIMES.setdefault(name, []).append(time.perf_counter() - start)

    return wrapper


def pump(server: tls_connection.TLSConnection, client: SSL.Connection) -> None:
    """Run the handshake to its end, both ways (the client takes TLS 1.3 tickets too)."""
    for _ in range(10):
        try:
            client.do_handshake()
        except SSL.WantReadError:
            pass
        try:
            out = client.bio_read(1 << 20)
        except SSL.WantReadError:
            out = b""
        if out:
            server.receive_data(out)
        back = server.data_to_send()
        if back:
            client.bio_write(back)
        if server.handshake_complete and not back and not out:
            break
    try:
        client.recv(1 << 16)
    except SSL.WantReadError:
        pass


def main() -> int:
    """Time the steps; print µs per call."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        files = make_pki(Path(tmp), "ecdsa-p256")
        identity = Identity.from_pem(files.server_cert, files.server_key)
        ca = crypto.load_certificate(crypto.FILETYPE_PEM, files.ca.read_bytes())
        trust = TrustMaterial(anchors=(ca.to_cryptography(),))
        context = ServerContext(
            ServerTLSConfig(identity, client_cert_mode=ClientCertMode.REQUIRE, trust=trust)
        )
        client_ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
        client_ctx.use_certificate_file(str(files.client_cert))
        client_ctx.use_privatekey_file(str(files.client_key))
    tls_connection.TLSConnection._establish = timed(  # type: ignore[method-assign]
        "establish", tls_connection.TLSConnection._establish
    )
    make_facts = timed("connection_facts", facts_module.connection_facts)
    parser_conn = HTTPConnection()
    parser_conn.receive_data(b"GET /x?y=1 HTTP/1.1\r\nHost: localhost\r\nUser-Agent: b\r\n\r\n")
    request = parser_conn.next_event()
    for _ in range(args.count):
        client = SSL.Connection(client_ctx, None)
        client.set_connect_state()
        server = tls_connection.TLSConnection(context)
        pump(server, client)
        assert server.info is not None and server.handshake_complete
        facts = make_facts(("127.0.0.1", 1), ("127.0.0.1", 2), server.info, None)
        timed("http_scope", http_scope)(request, facts, {})
        # What a resumption adds in Python: the stored certificate judged again, now.
        timed("resumed verdict", server._client_certificate)(True)
    for name, values in TIMES.items():
        print(f"{name:18} {statistics.median(values) * 1e6:8.1f} µs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
