"""Idle connections give back what their memory BIOs grew to, and keep working afterwards."""

from __future__ import annotations

import os

from mutls.tls import connection as engine

from helpers import PKIFiles
from tls_driver import TLS13, client_context, client_output, connect, server_context


def test_the_bios_are_renewed_after_the_handshake_and_big_bursts(test_pki: PKIFiles) -> None:
    client_ctx = client_context(test_pki, test_pki.identities["poupou"], version=TLS13)
    server, client = connect(test_pki, server_context(test_pki), client_ctx)
    # connect() took the tickets from data_to_send(): the handshake's BIOs are gone.
    assert not server._bios_grown
    first = server._rbio
    big = os.urandom(3 * engine.BIO_KEEP_BYTES)
    for _ in range(2):  # a big request and a big answer, twice: still one stream
        client.sendall(big)
        received = b""
        wire = client_output(client)
        received += server.receive_data(wire)
        assert received == big
        server.send(big)
        client.bio_write(server.data_to_send())
        got = b""
        while len(got) < len(big):
            got += client.recv(1 << 20)
        assert got == big
        assert server._rbio != first and not server._bios_grown
        first = server._rbio
    client.send(b"small")
    assert server.receive_data(client_output(client)) == b"small"
    assert server._rbio == first  # small records do not churn the BIOs
