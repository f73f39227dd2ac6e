"""Idle connections give back what their memory BIOs grew to, and keep working afterwards."""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import os
import weakref

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from OpenSSL import SSL

from mutls import pki
from mutls.tls import TLSConnection
from mutls.tls import connection as engine
from mutls.tls.connection import TLSError
from mutls.tls.context import CHAIN_HINTS_MAX_BYTES, ServerContext
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


def _refused(
    test_pki: PKIFiles, context: ServerContext, version: int, chain: tuple[x509.Certificate, ...]
) -> tuple[weakref.ref[TLSConnection], int]:
    """A handshake refused for its chain, failed again by more input: a weak reference to the
    server's connection once nothing else refers to it, and the bytes left unread in its BIO."""
    server = TLSConnection(context)
    client = new_client(client_context(test_pki, _stranger(chain), version=version))
    alert = None
    for _ in range(10):  # (as failed_handshake, keeping no exception: they hold frames)
        with contextlib.suppress(SSL.WantReadError):
            client.do_handshake()
            client.recv(100)
        try:
            server.receive_data(client_output(client))
        except TLSError as error:
            alert = error.alert
            break
        client.bio_write(server.data_to_send())
    assert alert is not None, "the handshake did not fail with an alert"
    try:
        server.receive_data(b"more")
    except TLSError:
        pass
    else:
        pytest.fail("the failed connection took more input")
    unread = int(engine._lib.BIO_ctrl_pending(server._rbio))
    return weakref.ref(server), unread


def test_a_refused_handshake_is_freed_at_once_and_its_chain_never_copied_whole(
    test_pki: PKIFiles,
) -> None:
    # A failure kept with its traceback made a cycle (the frames hold the connection): every
    # refused handshake's SSL and buffers waited for the cyclic collector, which a flood left
    # for long in its oldest generation (RSS +3 to +6 MiB per 100 refused ~96 KB chains).
    context = server_context(test_pki, max_client_chain=DEFAULT_MAX_CLIENT_CHAIN)
    huge = tuple(_padding(16 * 1024) for _ in range(6))
    gc.collect()
    gc.disable()
    try:
        for version in (TLS12, TLS13):
            gone, unread = _refused(test_pki, context, version, huge)
            assert gone() is None, "the refused connection outlived its last reference"
            # fed a record at a time: the refusal came before the rest of the ~96 KB
            assert unread < engine.HANDSHAKE_FEED
    finally:
        gc.enable()
