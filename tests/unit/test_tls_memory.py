"""Idle connections give back what their memory BIOs grew to, and keep working afterwards."""

from __future__ import annotations

import datetime as dt
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from mutls import pki
from mutls.tls import TLSConnection
from mutls.tls import connection as engine
from mutls.tls.context import CHAIN_HINTS_MAX_BYTES
from mutls.tls.options import DEFAULT_MAX_CLIENT_CHAIN
from mutls.tls.verdicts import VERDICTS_MAX_BYTES, verdicts_of

from helpers import PKIFiles
from tls_driver import (
    TLS12,
    TLS13,
    client_context,
    client_output,
    connect,
    failed_handshake,
    new_client,
    server_context,
)


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


# -- what one client can make the server keep -----------------------------------------------


def _padding(size: int) -> x509.Certificate:
    """A self-signed certificate about ``size`` bytes long (an unknown extension pads it)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name.from_rfc4514_string(f"CN=padding {size}")
    now = dt.datetime.now(dt.UTC)
    pad = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), bytes(size))
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(pad, critical=False)
        .sign(key, hashes.SHA256())
    )


def _stranger(padding: tuple[x509.Certificate, ...]) -> pki.Identity:
    """A distinct self-signed leaf (no trust needed) sending ``padding`` as its chain."""
    leaf = pki.CertificateAuthority.create("CN=stranger").issue_client("CN=stranger")
    return pki.Identity(leaf.certificate, leaf.key, padding)


def test_a_chain_over_the_cap_fails_the_handshake_and_nothing_is_kept(
    test_pki: PKIFiles,
) -> None:
    context = server_context(test_pki, max_client_chain=DEFAULT_MAX_CLIENT_CHAIN)
    huge = tuple(_padding(16 * 1024) for _ in range(6))  # ~96 KB, under OpenSSL's 100 KB
    for version in (TLS12, TLS13):
        server = TLSConnection(context)
        client = new_client(client_context(test_pki, _stranger(huge), version=version))
        error, _seen = failed_handshake(server, client)
        assert error.alert is not None, error  # the client is told, then the connection ends
    assert context.chain_hints.size == (0, 0)


def test_distinct_leaves_under_the_cap_keep_bounded_bytes(test_pki: PKIFiles) -> None:
    # Each handshake brings a new leaf and ~28 KB of padding: the hints and the verdicts are
    # bounded in bytes (keys are digests, not DER), whatever the count.
    context = server_context(test_pki)
    padding = tuple(_padding(9 * 1024) for _ in range(3))
    hints_cap = CHAIN_HINTS_MAX_BYTES
    for i in range(40):
        version = TLS13 if i % 2 else TLS12
        client_ctx = client_context(test_pki, _stranger(padding), version=version)
        server, _ = connect(test_pki, context, client_ctx)
        assert server.info is not None and not server.info.client_certificate.valid
    lists, held = context.chain_hints.size
    assert lists == 1 and held <= hints_cap  # the same padding list, once, whatever the leaf
    entries, size = verdicts_of(context.verifier).size
    assert entries == 40 and size <= VERDICTS_MAX_BYTES
