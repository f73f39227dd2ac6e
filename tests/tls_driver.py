"""The byte-level TLS driver: a pyOpenSSL client on memory BIOs talks to ``TLSConnection``; no
socket, no thread. The unit, conformance and fuzz tests of the engine all drive it this way."""

from __future__ import annotations

from typing import Protocol

import pytest
from cryptography import x509
from OpenSSL import SSL, crypto

from mutls import pki
from mutls.pki.keys import PrivateKey
from mutls.pki.trust import TrustMaterial
from mutls.tls import ClientCertMode, ServerContext, ServerTLSConfig, TLSConnection, TLSError

from helpers import PKIFiles

TLS12, TLS13 = SSL.TLS1_2_VERSION, SSL.TLS1_3_VERSION


class Credentials(Protocol):
    """What a client sends: a certificate (pyOpenSSL's or cryptography's), its key, a chain.

    :class:`mutls.pki.Identity` is one; a test that sends certificates cryptography cannot
    parse gives pyOpenSSL ones.
    """

    @property
    def certificate(self) -> x509.Certificate | crypto.X509: ...

    @property
    def key(self) -> PrivateKey: ...

    @property
    def chain(self) -> tuple[x509.Certificate | crypto.X509, ...]: ...


def full_trust(test_pki: PKIFiles) -> TrustMaterial:
    """The root, its CRL (revokes "revoked") and Disallowed holding "disallowed"."""
    return TrustMaterial(
        anchors=(test_pki.ca.certificate,),
        disallowed=(test_pki.identities["disallowed"].certificate,),
        crls=tuple(pki.load_crls(test_pki.crl_path)),
    )


def server_context(
    test_pki: PKIFiles,
    mode: ClientCertMode = ClientCertMode.OPTIONAL,
    trust: TrustMaterial | None = None,
    **options: object,
) -> ServerContext:
    config = ServerTLSConfig(
        identity=test_pki.identities["server"],
        client_cert_mode=mode,
        trust=full_trust(test_pki) if trust is None else trust,
        **options,  # type: ignore[arg-type]
    )
    return ServerContext(config)


def client_context(
    test_pki: PKIFiles,
    identity: Credentials | None = None,
    *,
    version: int | None = None,
    tickets: bool = True,
    ciphers: str | None = None,
) -> SSL.Context:
    """A client that verifies the server and sends ``identity`` with its whole chain."""
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    if version is not None:
        context.set_min_proto_version(version)
        context.set_max_proto_version(version)
    if not tickets:
        context.set_options(SSL.OP_NO_TICKET)
    if ciphers is not None:
        context.set_cipher_list(ciphers.encode())
    context.get_cert_store().add_cert(crypto.X509.from_cryptography(test_pki.ca.certificate))  # type: ignore[union-attr]
    context.set_verify(SSL.VERIFY_PEER)
    context.set_alpn_protos([b"http/1.1"])
    if identity is not None:
        context.use_certificate(identity.certificate)
        context.use_privatekey(identity.key)
        for cert in identity.chain:
            context.add_extra_chain_cert(cert)
    return context


def new_client(context: SSL.Context, session: SSL.Session | None = None) -> SSL.Connection:
    client = SSL.Connection(context, None)
    client.set_connect_state()
    client.set_tlsext_host_name(b"localhost")
    if session is not None:
        client.set_session(session)
    return client


def flush(server: TLSConnection, client: SSL.Connection) -> bytes:
    """Server -> client: hand over what the server has to send; return client plaintext."""
    data = server.data_to_send()
    if data:
        client.bio_write(data)
    try:
        return client.recv(1 << 20)
    except SSL.WantReadError:
        return b""


def client_output(client: SSL.Connection) -> bytes:
    try:
        return client.bio_read(1 << 20)
    except SSL.WantReadError:
        return b""


def handshake(server: TLSConnection, client: SSL.Connection) -> None:
    """Pump until both sides are done (the client also takes TLS 1.3 tickets)."""
    for _ in range(10):
        try:
            client.do_handshake()
        except SSL.WantReadError:
            pass
        out = client_output(client)
        if out:
            server.receive_data(out)
        back = server.data_to_send()
        if back:
            client.bio_write(back)
        if server.handshake_complete and not back and not out:
            break
    assert server.handshake_complete
    flush(server, client)  # NewSessionTicket in TLS 1.3 comes after the handshake


def connect(
    test_pki: PKIFiles,
    context: ServerContext,
    client_ctx: SSL.Context,
    session: SSL.Session | None = None,
) -> tuple[TLSConnection, SSL.Connection]:
    server = TLSConnection(context)
    client = new_client(client_ctx, session)
    handshake(server, client)
    return server, client


def failed_handshake(server: TLSConnection, client: SSL.Connection) -> tuple[TLSError, str]:
    """Pump until the server fails; return its error and what the client read of the alert."""
    for _ in range(10):
        try:
            client.do_handshake()
            client.recv(100)  # TLS 1.3: the client is done before the server judges it
        except SSL.WantReadError:
            pass
        except SSL.Error as exc:
            pytest.fail(f"the client failed first: {exc}")
        out = client_output(client)
        try:
            server.receive_data(out)
        except TLSError as error:
            alert = server.data_to_send()
            assert alert, "the server closed without an alert"
            client.bio_write(alert)
            with pytest.raises(SSL.Error) as seen:
                client.do_handshake()
                client.recv(100)
            return error, str(seen.value)
        back = server.data_to_send()
        if back:
            client.bio_write(back)
    pytest.fail("the handshake did not fail")


def verdict_of(server: TLSConnection) -> tuple[bool, bool, str | None]:
    assert server.info is not None
    cert = server.info.client_certificate
    return cert.present, cert.valid, cert.error
