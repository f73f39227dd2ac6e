"""The TLS engine driven by bytes alone (the driver is ``tests/tls_driver.py``): a pyOpenSSL
client on memory BIOs talks to ``TLSConnection``; no socket, no thread."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import pytest
from cryptography import x509
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from OpenSSL import SSL

from mutls import pki
from mutls.errors import PKIError, UsageError
from mutls.pki.trust import TrustMaterial
from mutls.tls import (
    ClientCertMode,
    PlainHTTPError,
    ServerContext,
    ServerTLSConfig,
    TLSConnection,
    TLSError,
    VerifyPolicy,
)
from mutls.tls.ciphers import iana_cipher_id

from helpers import CLIENT_CASES, PKIFiles
from tls_driver import (
    TLS12,
    TLS13,
    client_context,
    client_output,
    connect,
    failed_handshake,
    flush,
    full_trust,
    new_client,
    server_context,
    verdict_of,
)

VERSIONS = pytest.mark.parametrize("version", [TLS12, TLS13], ids=["tls1.2", "tls1.3"])


# -- every client certificate, TLS 1.2 and 1.3 -----------------------------------------------


@VERSIONS
@pytest.mark.parametrize("name", list(CLIENT_CASES))
def test_every_client_certificate_gets_its_verdict(
    test_pki: PKIFiles, name: str, version: int
) -> None:
    context = server_context(test_pki)
    identity = test_pki.identities[name]
    server, _ = connect(test_pki, context, client_context(test_pki, identity, version=version))
    expected = CLIENT_CASES[name]
    assert verdict_of(server) == (True, expected is None, expected)
    assert server.info is not None
    cert = server.info.client_certificate
    assert cert.certificate == identity.certificate
    assert cert.resumed is False and server.info.resumed is False
    assert cert.verify_status == ("SUCCESS" if expected is None else f"FAILED:{expected}")


@pytest.mark.parametrize("name", ["untrusted", "via-intermediate"])
def test_a_client_that_sends_only_its_leaf_gets_the_same_verdict(
    test_pki: PKIFiles, name: str
) -> None:
    identity = test_pki.identities[name]
    leaf_only = pki.Identity(identity.certificate, identity.key)
    trust = full_trust(test_pki)
    if name == "via-intermediate":  # the CA store supplies what the client did not send
        trust = TrustMaterial(trust.anchors, (test_pki.intermediate.certificate,))
    context = server_context(test_pki, trust=trust)
    server, _ = connect(test_pki, context, client_context(test_pki, leaf_only))
    expected = CLIENT_CASES[name]
    assert verdict_of(server) == (True, expected is None, expected)


def test_an_intermediate_alone_is_no_trust_anchor(test_pki: PKIFiles) -> None:
    # The CA store's intermediates build chains; without the root among the anchors, nothing
    # the intermediate issued is valid.
    trust = TrustMaterial(intermediates=(test_pki.intermediate.certificate,))
    identity = test_pki.identities["via-intermediate"]
    leaf_only = pki.Identity(identity.certificate, identity.key)
    context = server_context(test_pki, trust=trust)
    server, _ = connect(test_pki, context, client_context(test_pki, leaf_only))
    present, valid, error = verdict_of(server)
    assert present and not valid
    # The intermediate is an untrusted helper: the chain stops above it, at no anchor.
    assert error == "unable to get local issuer certificate"


def test_a_ca_without_crl_is_not_checked_but_a_stale_crl_is_an_error(test_pki: PKIFiles) -> None:
    # The root's CRL does not speak for the intermediate: its clients stay valid ...
    context = server_context(test_pki)
    server, _ = connect(
        test_pki, context, client_context(test_pki, test_pki.identities["via-intermediate"])
    )
    assert verdict_of(server) == (True, True, None)
    # ... while an expired CRL for the client's own CA is reported.
    import datetime as dt

    old = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(test_pki.ca.certificate.subject)
        .last_update(dt.datetime.now(dt.UTC) - dt.timedelta(days=10))
        .next_update(dt.datetime.now(dt.UTC) - dt.timedelta(days=1))
        .sign(test_pki.ca.key, pki.certs.HASHES["sha256"]())  # type: ignore[arg-type]
    )
    trust = TrustMaterial(anchors=(test_pki.ca.certificate,), crls=(old,))
    server, _ = connect(
        test_pki,
        server_context(test_pki, trust=trust),
        client_context(test_pki, test_pki.identities["poupou"]),
    )
    assert verdict_of(server) == (True, False, "CRL has expired")


def test_no_trust_anchor_reports_every_certificate_invalid(test_pki: PKIFiles) -> None:
    context = server_context(test_pki, trust=TrustMaterial())
    assert any("no trust anchor" in w for w in context.warnings)
    identity = test_pki.identities["poupou"]
    server, _ = connect(test_pki, context, client_context(test_pki, identity))
    present, valid, error = verdict_of(server)
    assert present and not valid and error == "unable to get local issuer certificate"


# -- modes -----------------------------------------------------------------------------------


@VERSIONS
def test_mode_none_asks_for_nothing(test_pki: PKIFiles, version: int) -> None:
    context = server_context(test_pki, ClientCertMode.NONE)
    client_ctx = client_context(test_pki, test_pki.identities["poupou"], version=version)
    server, client = connect(test_pki, context, client_ctx)
    assert verdict_of(server) == (False, False, None)
    assert client.get_client_ca_list() == []


@VERSIONS
@pytest.mark.parametrize("mode", [ClientCertMode.OPTIONAL, ClientCertMode.REQUIRE])
def test_no_certificate_completes_the_handshake(
    test_pki: PKIFiles, mode: ClientCertMode, version: int
) -> None:
    # require mode answers a missing certificate at the HTTP layer (403), not in TLS.
    context = server_context(test_pki, mode)
    server, client = connect(test_pki, context, client_context(test_pki, version=version))
    assert verdict_of(server) == (False, False, None)
    assert server.info is not None
    assert server.info.client_certificate.verify_status == "NONE"
    names = [n.der() for n in client.get_client_ca_list()]
    assert names == [test_pki.ca.certificate.subject.public_bytes()]


def test_ca_names_can_be_left_out(test_pki: PKIFiles) -> None:
    context = server_context(test_pki, send_ca_names=False)
    server, client = connect(test_pki, context, client_context(test_pki))
    assert client.get_client_ca_list() == []
    assert server.handshake_complete


@pytest.mark.parametrize(
    ("version", "alert", "client_reads"),
    [
        (TLS13, "certificate_required", "certificate required"),
        (TLS12, "handshake_failure", "handshake failure"),
    ],
    ids=["tls1.3", "tls1.2"],
)
def test_reject_at_handshake_sends_the_alert(
    test_pki: PKIFiles, version: int, alert: str, client_reads: str
) -> None:
    context = server_context(test_pki, ClientCertMode.REQUIRE, reject_at_handshake=True)
    server = TLSConnection(context)
    error, seen = failed_handshake(server, new_client(client_context(test_pki, version=version)))
    assert error.alert == alert
    assert client_reads in seen
    assert not server.handshake_complete and server.info is None


# -- the connection's facts -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "name", "number"),
    [(TLS13, "TLSv1.3", 0x0304), (TLS12, "TLSv1.2", 0x0303)],
    ids=["tls1.3", "tls1.2"],
)
def test_info_describes_the_connection(
    test_pki: PKIFiles, version: int, name: str, number: int
) -> None:
    context = server_context(test_pki)
    server, client = connect(test_pki, context, client_context(test_pki, version=version))
    info = server.info
    assert info is not None
    assert (info.version, info.version_number) == (name, number)
    assert info.cipher == client.get_cipher_name()
    assert info.cipher_id is not None and info.cipher_id == iana_cipher_id(info.cipher)
    assert info.alpn == "http/1.1" and info.sni == "localhost"
    assert info.server_cert_pem is not None
    assert x509.load_pem_x509_certificate(info.server_cert_pem.encode()) == (
        test_pki.identities["server"].certificate
    )


def test_iana_numbers_of_well_known_suites() -> None:
    assert iana_cipher_id("TLS_AES_128_GCM_SHA256") == 0x1301
    assert iana_cipher_id("TLS_AES_256_GCM_SHA384") == 0x1302
    assert iana_cipher_id("TLS_CHACHA20_POLY1305_SHA256") == 0x1303
    assert iana_cipher_id("ECDHE-ECDSA-AES128-GCM-SHA256") == 0xC02B
    assert iana_cipher_id("ECDHE-RSA-CHACHA20-POLY1305") == 0xCCA8
    assert iana_cipher_id("no-such-cipher") is None


def test_chain_is_as_the_client_sent_it(test_pki: PKIFiles) -> None:
    identity = test_pki.identities["via-intermediate"]
    server, _ = connect(test_pki, server_context(test_pki), client_context(test_pki, identity))
    assert server.info is not None
    assert server.info.client_certificate.chain == (identity.certificate, *identity.chain)


# -- application data ------------------------------------------------------------------------


@VERSIONS
def test_application_data_both_ways(test_pki: PKIFiles, version: int) -> None:
    server, client = connect(
        test_pki, server_context(test_pki), client_context(test_pki, version=version)
    )
    # Three records in one flight: every one must come out of one receive_data call.
    for part in (b"GET / HTTP/1.1\r\n", b"Host: x\r\n", b"\r\n"):
        client.send(part)
    assert server.receive_data(client_output(client)) == b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    big = os.urandom(100_000)
    client.sendall(big)
    received = b""
    wire = client_output(client)
    for start in range(0, len(wire), 1000):  # in small pieces, records split anywhere
        received += server.receive_data(wire[start : start + 1000])
    assert received == big
    server.send(big[:70_000])
    got = b""
    client.bio_write(server.data_to_send())
    while len(got) < 70_000:
        got += client.recv(1 << 20)
    assert got == big[:70_000]
    assert server.data_to_send() == b""


def test_close_notify_both_ways(test_pki: PKIFiles) -> None:
    server, client = connect(test_pki, server_context(test_pki), client_context(test_pki))
    client.shutdown()
    assert server.receive_data(client_output(client)) == b""
    assert server.peer_closed
    server.close()
    server.close()  # once only
    client.bio_write(server.data_to_send())
    with pytest.raises(SSL.ZeroReturnError):
        client.recv(100)


def test_tcp_close_is_peer_closed(test_pki: PKIFiles) -> None:
    server, _ = connect(test_pki, server_context(test_pki), client_context(test_pki))
    assert server.receive_data(b"") == b""
    assert server.peer_closed


def test_send_before_the_handshake_is_an_error(test_pki: PKIFiles) -> None:
    with pytest.raises(TLSError):
        TLSConnection(server_context(test_pki)).send(b"x")


# -- failures and their alerts ----------------------------------------------------------------


@pytest.mark.parametrize(
    "first", [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"POST /x HTTP/1.0\r\n", b"HEAD / HTTP/1.1"]
)
def test_plain_http_is_recognised(test_pki: PKIFiles, first: bytes) -> None:
    server = TLSConnection(server_context(test_pki))
    with pytest.raises(PlainHTTPError) as seen:
        server.receive_data(first)
    assert seen.value.alert is None
    assert server.data_to_send() == b""


def test_plain_http_in_pieces(test_pki: PKIFiles) -> None:
    server = TLSConnection(server_context(test_pki))
    assert server.receive_data(b"GE") == b""
    with pytest.raises(PlainHTTPError):
        server.receive_data(b"T / HTTP/1.1\r\n")


def test_garbage_gets_an_alert_not_a_400(test_pki: PKIFiles) -> None:
    server = TLSConnection(server_context(test_pki))
    with pytest.raises(TLSError) as seen:
        server.receive_data(b"\x17\x03\x03\x00\x05hello")
    assert not isinstance(seen.value, PlainHTTPError)
    assert seen.value.alert is not None
    assert server.data_to_send()[:1] == b"\x15"  # an alert record
    with pytest.raises(TLSError):  # and the connection stays failed
        server.receive_data(b"more")


def test_no_shared_cipher_is_handshake_failure(test_pki: PKIFiles) -> None:
    server = TLSConnection(server_context(test_pki))
    client = new_client(client_context(test_pki, version=TLS12, ciphers="AES128-SHA"))
    error, seen = failed_handshake(server, client)
    assert error.alert == "handshake_failure"
    assert "no shared cipher" in str(error)
    assert "handshake failure" in seen


def test_old_protocol_is_protocol_version(test_pki: PKIFiles) -> None:
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.set_min_proto_version(SSL.TLS1_VERSION)
    context.set_max_proto_version(SSL.TLS1_1_VERSION)
    context.set_cipher_list(b"DEFAULT:@SECLEVEL=0")
    server = TLSConnection(server_context(test_pki))
    error, seen = failed_handshake(server, new_client(context))
    assert error.alert == "protocol_version"
    assert "protocol version" in seen


def test_client_alert_is_reported(test_pki: PKIFiles) -> None:
    # A client that does not trust the server certificate says so with unknown_ca.
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.set_verify(SSL.VERIFY_PEER)
    server = TLSConnection(server_context(test_pki))
    client = new_client(context)
    with pytest.raises(TLSError) as seen:
        for _ in range(5):
            try:
                client.do_handshake()
            except SSL.WantReadError:
                pass
            except SSL.Error:
                pass
            server.receive_data(client_output(client))
            client.bio_write(server.data_to_send())
    assert seen.value.received_alert == "unknown_ca"


# -- configuration ---------------------------------------------------------------------------


def test_bad_cipher_strings_are_usage_errors(test_pki: PKIFiles) -> None:
    with pytest.raises(UsageError, match="--ciphers"):
        server_context(test_pki, ciphers="NOPE-NOTHING")
    with pytest.raises(UsageError, match="--tls13-ciphers"):
        server_context(test_pki, tls13_ciphers="TLS_NOT_A_SUITE")


def test_ciphers_and_tls13_suites_are_applied(test_pki: PKIFiles) -> None:
    context = server_context(
        test_pki, ciphers="ECDHE-ECDSA-CHACHA20-POLY1305", tls13_ciphers="TLS_AES_128_GCM_SHA256"
    )
    server, _ = connect(test_pki, context, client_context(test_pki, version=TLS12))
    assert server.info is not None and server.info.cipher == "ECDHE-ECDSA-CHACHA20-POLY1305"
    server, _ = connect(test_pki, context, client_context(test_pki, version=TLS13))
    assert server.info is not None and server.info.cipher_id == 0x1301


def test_require_strict_without_anchor_is_refused_at_startup(test_pki: PKIFiles) -> None:
    context = server_context(test_pki, ClientCertMode.REQUIRE, trust=TrustMaterial())
    with pytest.raises(UsageError, match="refuse every client"):
        context.validate(VerifyPolicy.STRICT)
    assert context.validate(VerifyPolicy.REPORT)  # allowed, with a warning
    anchored = server_context(test_pki, ClientCertMode.REQUIRE)
    assert anchored.validate(VerifyPolicy.STRICT) == []


def test_keylog_is_private_and_written(test_pki: PKIFiles, tmp_path: Path) -> None:
    path = tmp_path / "keys.log"
    context = server_context(test_pki, keylog_path=str(path))
    assert any("keys.log" in w for w in context.warnings)
    connect(test_pki, context, client_context(test_pki))
    assert path.stat().st_mode & 0o777 == 0o600
    lines = path.read_text().splitlines()
    assert any(line.startswith("CLIENT_HANDSHAKE_TRAFFIC_SECRET ") for line in lines)


def test_keylog_only_when_asked(test_pki: PKIFiles) -> None:
    context = server_context(test_pki)
    assert not any("--keylog" in w for w in context.warnings)


def _subjects(certs: Iterable[x509.Certificate]) -> list[str]:
    return [c.subject.rfc4514_string() for c in certs]


def test_client_renegotiation_is_refused(test_pki: PKIFiles) -> None:
    server, client = connect(
        test_pki, server_context(test_pki), client_context(test_pki, version=TLS12)
    )
    assert client.renegotiate()
    with pytest.raises(SSL.WantReadError):
        client.do_handshake()
    assert server.receive_data(client_output(client)) == b""  # a warning, not a failure
    client.bio_write(server.data_to_send())
    with pytest.raises(SSL.Error, match="no renegotiation"):
        client.do_handshake()


@pytest.mark.parametrize("key", ["rsa", "ed25519"])
@VERSIONS
def test_other_server_and_client_key_types(test_pki: PKIFiles, key: str, version: int) -> None:
    spec = pki.KeySpec.parse(key)
    identity = test_pki.ca.issue_server("localhost", key=spec)
    client_identity = test_pki.ca.issue_client("CN=rsa-client", key=spec)
    config = ServerTLSConfig(identity, ClientCertMode.REQUIRE, full_trust(test_pki))
    server, _ = connect(
        test_pki, ServerContext(config), client_context(test_pki, client_identity, version=version)
    )
    assert verdict_of(server) == (True, True, None)


def test_a_key_that_is_not_the_certificates_is_refused(test_pki: PKIFiles) -> None:
    server = test_pki.identities["server"]
    wrong = pki.Identity(server.certificate, test_pki.identities["poupou"].key)
    with pytest.raises(PKIError, match="private key does not match"):
        ServerContext(ServerTLSConfig(wrong))


def test_a_handshake_fed_one_byte_at_a_time(test_pki: PKIFiles) -> None:
    # Sniffing for plain HTTP must not disturb a ClientHello that arrives in pieces.
    server = TLSConnection(server_context(test_pki))
    client = new_client(client_context(test_pki, test_pki.identities["poupou"]))
    for _ in range(10):
        try:
            client.do_handshake()
        except SSL.WantReadError:
            pass
        for byte in client_output(client):
            server.receive_data(bytes([byte]))
        back = server.data_to_send()
        if not back:
            break
        client.bio_write(back)
    assert server.handshake_complete
    assert verdict_of(server) == (True, True, None)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(chunks=st.lists(st.binary(min_size=1, max_size=64), min_size=1, max_size=4))
def test_arbitrary_bytes_fail_only_with_tls_errors(
    fuzz_context: ServerContext, chunks: list[bytes]
) -> None:
    server = TLSConnection(fuzz_context)
    try:
        for chunk in chunks:
            assert server.receive_data(chunk) == b""
    except TLSError:
        pass
    assert isinstance(server.data_to_send(), bytes)
    assert not server.handshake_complete


@pytest.fixture(scope="module")
def fuzz_context(test_pki: PKIFiles) -> ServerContext:
    """One server context for all the examples above (built once, not once per example)."""
    return server_context(test_pki)


def test_ciphers_that_cannot_suit_the_key_are_a_warning(test_pki: PKIFiles) -> None:
    context = server_context(test_pki, ciphers="ECDHE-RSA-AES128-GCM-SHA256")  # ECDSA key
    assert any("TLS 1.2 clients will fail" in w for w in context.warnings)
    assert not any("TLS 1.2" in w for w in server_context(test_pki).warnings)


def test_a_stale_openssl_error_does_not_break_a_connection(test_pki: PKIFiles) -> None:
    # Another library on the thread may leave an entry in OpenSSL's error queue.
    from OpenSSL._util import lib

    server, client = connect(test_pki, server_context(test_pki), client_context(test_pki))
    client.send(b"ping")
    wire = client_output(client)
    lib.BIO_new_file(b"/nonexistent/mutls", b"r")  # fails, and leaves its error queued
    assert lib.ERR_peek_error() != 0
    assert server.receive_data(wire[:3]) == b""  # a partial record: "want more", no failure
    assert server.receive_data(wire[3:]) == b"ping"
    lib.BIO_new_file(b"/nonexistent/mutls", b"r")
    server.send(b"pong")
    assert flush(server, client) == b"pong"
