"""Never valid when it is not: every policy × mode × certificate that must fail, on TLS 1.2 and
1.3, over a full handshake and a resumed one; strict never calls the app.

``helpers.CLIENT_CASES`` (expired, not yet valid, untrusted, self-signed, wrong EKU, revoked,
Disallowed) already has engine-level resumption tests (tests/unit/test_tls_resumption.py) and
curl tests per mode (tests/integration/test_server_modes.py); here they join the cases of
``weak_pki.WEAK_CASES`` (CA as client, missing intermediate, RSA-1024, SHA-1) and the claim
checked is the one the app relies on: a counting app is never called in strict mode, and in
report mode it sees the error, resumed or not.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable, Iterator
from typing import cast

import pytest
from OpenSSL import SSL
from weak_pki import WEAK_CASES, CountingApp, WeakPKI, conformance_trust

from mutls.server import ServerConfig
from mutls.tls import ClientCertMode, ServerContext, ServerTLSConfig, VerifyPolicy

from helpers import CLIENT_CASES, LazyServers, PKIFiles
from tls_driver import client_context, connect, server_context

INVALID: dict[str, str] = {
    **{name: error for name, error in CLIENT_CASES.items() if error is not None},
    **WEAK_CASES,
}
POLICIES = {
    "optional-strict": (ClientCertMode.OPTIONAL, VerifyPolicy.STRICT),
    "optional-report": (ClientCertMode.OPTIONAL, VerifyPolicy.REPORT),
    "require-strict": (ClientCertMode.REQUIRE, VerifyPolicy.STRICT),
    "require-report": (ClientCertMode.REQUIRE, VerifyPolicy.REPORT),
}
VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
REQUEST = b"GET /whoami HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"


# -- the engine: the new cases keep their verdict on every kind of resumption -----------------

RESUMPTION = {
    "tls1.2-ticket": (SSL.TLS1_2_VERSION, True),
    "tls1.2-session-id": (SSL.TLS1_2_VERSION, False),
    "tls1.3": (SSL.TLS1_3_VERSION, True),
}


def _client_context(identity: object, version: int, tickets: bool) -> SSL.Context:
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.set_min_proto_version(version)
    context.set_max_proto_version(version)
    if not tickets:
        context.set_options(SSL.OP_NO_TICKET)
    # Security level 0 first: OpenSSL refuses even to load an RSA-1024 certificate otherwise.
    context.set_cipher_list(b"DEFAULT:@SECLEVEL=0")
    context.use_certificate(identity.certificate)  # type: ignore[attr-defined]
    context.use_privatekey(identity.key)  # type: ignore[attr-defined]
    for cert in identity.chain:  # type: ignore[attr-defined]
        context.add_extra_chain_cert(cert)
    return context


@pytest.mark.parametrize("kind", list(RESUMPTION))
@pytest.mark.parametrize("name", list(WEAK_CASES))
def test_engine_verdict_survives_resumption(
    test_pki: PKIFiles, weak_pki: WeakPKI, name: str, kind: str
) -> None:
    config = ServerTLSConfig(
        test_pki.identities["server"],
        ClientCertMode.OPTIONAL,
        conformance_trust(test_pki, weak_pki),
    )
    context = ServerContext(config)
    version, tickets = RESUMPTION[kind]
    client_ctx = _client_context(weak_pki.identities[name], version, tickets)
    first, client = connect(test_pki, context, client_ctx)
    second, _ = connect(test_pki, context, client_ctx, client.get_session())
    assert first.info is not None and second.info is not None
    assert second.info.resumed, "the session did not resume"
    for server in (first, second):
        cert = server.info.client_certificate  # type: ignore[union-attr]
        assert (cert.present, cert.valid, cert.error) == (True, False, WEAK_CASES[name])


def test_a_ca_certificate_with_client_auth_is_still_no_client(test_pki: PKIFiles) -> None:
    # Even a CA that allows clientAuth and digitalSignature is refused as a leaf.
    ca = test_pki.ca.issue_intermediate("CN=Client-Auth CA")
    identity = type(test_pki.identities["poupou"])(ca.certificate, ca.key)
    server, _ = connect(test_pki, server_context(test_pki), client_context(test_pki, identity))
    assert server.info is not None
    cert = server.info.client_certificate
    assert (cert.valid, cert.error) == (False, "unsuitable certificate purpose")


# -- the server: strict never calls the app, report shows the error, resumed or not -----------


@pytest.fixture(scope="module")
def servers(
    test_pki: PKIFiles, weak_pki: WeakPKI
) -> Iterator[Callable[[str], tuple[int, CountingApp]]]:
    def config(policy: str) -> ServerConfig:
        mode, verify = POLICIES[policy]
        return ServerConfig(
            port=0,
            identity=test_pki.identities["server"],
            client_cert=mode,
            verify=verify,
            trust=conformance_trust(test_pki, weak_pki),
            app=CountingApp(),
        )

    servers = LazyServers(config)

    def get(policy: str) -> tuple[int, CountingApp]:
        server = servers(policy)
        return server.ports[0], cast(CountingApp, server.config.app)

    yield get
    servers.close()


def client_ssl(test_pki: PKIFiles, name: str, version: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = context.maximum_version = VERSIONS[version]
    context.set_ciphers("DEFAULT:@SECLEVEL=0")  # before loading an RSA-1024 certificate
    context.load_verify_locations(test_pki.ca_cert)
    context.load_cert_chain(test_pki.cert(name), test_pki.key(name))
    return context


def fetch(
    port: int, context: ssl.SSLContext, session: ssl.SSLSession | None
) -> tuple[bytes, ssl.SSLSession | None, bool]:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost", session=session) as sock,
    ):
        sock.sendall(REQUEST)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        return data, sock.session, sock.session_reused


@pytest.mark.parametrize("version", list(VERSIONS))
@pytest.mark.parametrize("name", list(INVALID))
@pytest.mark.parametrize("policy", list(POLICIES))
def test_never_valid(
    servers: Callable[[str], tuple[int, CountingApp]],
    test_pki: PKIFiles,
    weak_pki: WeakPKI,
    policy: str,
    name: str,
    version: str,
) -> None:
    port, app = servers(policy)
    error = INVALID[name]
    context = client_ssl(test_pki, name, version)
    session = None
    for attempt in ("full", "resumed"):
        before = len(app.calls)
        data, session, reused = fetch(port, context, session)
        assert reused == (attempt == "resumed"), f"{attempt}: resumption did not happen as planned"
        if POLICIES[policy][1] is VerifyPolicy.STRICT:
            assert data.startswith(b"HTTP/1.1 403 "), data[:200]
            assert f"client certificate not valid: {error}".encode() in data
            assert len(app.calls) == before, "strict mode called the app"
        else:
            assert data.startswith(b"HTTP/1.1 200 "), data[:200]
            assert len(app.calls) == before + 1
            assert app.calls[-1]["client_cert_error"] == error
            assert f"error={error}".encode() in data
