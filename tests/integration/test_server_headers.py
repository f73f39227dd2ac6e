"""Which request headers an app sees, over real sockets, WSGI and ASGI alike: never a name with
``_`` (WSGI spells ``-`` as ``_``, so ``X_Client_Cert`` would pass for ``X-Client-Cert``, and
``Content_Type`` for ``Content-Type``), never a client-certificate header, from anyone, with or
without ``--trusted-proxy`` (logged once per connection); from a trusted proxy only the configured
header is read, and RFC 9440's ``Client-Cert-Chain`` only when the configuration names it."""

from __future__ import annotations

import base64
import json
import logging
import socket
import ssl
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from mutls import pki
from mutls.server import RunningServer, ServerConfig
from mutls.tls import ClientCertMode, VerifyPolicy

from helpers import LazyServers, PKIFiles, asgi_answer, read_until_close, wsgi_json

WAIT = 10


def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """What a WSGI app reads of the request: the HTTP_* keys, CONTENT_TYPE, the verdict."""
    seen = {k: v for k, v in environ.items() if k.startswith(("HTTP_", "CONTENT_TYPE"))}
    seen["verdict"] = environ.get("SSL_CLIENT_VERIFY", "NONE")  # (plain HTTP: none)
    return wsgi_json(start_response, seen)


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """What an ASGI app reads of the request: its headers, the verdict."""
    if scope["type"] != "http":
        return
    cert = scope["extensions"].get("mutls", {}).get("client_certificate")
    seen = {name.decode(): value.decode() for name, value in scope["headers"]}
    seen["verdict"] = cert.verify_status if cert is not None else "NONE"
    await asgi_answer(send, json.dumps(seen).encode())


APPS = {"wsgi": wsgi_app, "asgi": asgi_app}


@pytest.fixture(scope="module")
def servers(test_pki: PKIFiles) -> Iterator[LazyServers]:
    """``KIND-proxy`` (--trusted-proxy 127.0.0.1, X-Client-Cert), ``KIND-plain``,
    ``KIND-tls`` (a client certificate optional), ``KIND-rfc9440`` and ``KIND-rfc9440-chain``
    (Client-Cert, without and with Client-Cert-Chain named)."""
    trust = pki.TrustMaterial(anchors=(test_pki.ca.certificate,))
    proxied = {
        "proxy": "X-Client-Cert",
        "rfc9440": "Client-Cert",
        "rfc9440-chain": "Client-Cert, Client-Cert-Chain",
    }

    def make(key: str) -> ServerConfig:
        kind, _, mode = key.partition("-")
        config = ServerConfig(port=0, app=APPS[kind], trust=trust, verify=VerifyPolicy.REPORT)
        if mode == "tls":
            identity = test_pki.identities["server"]
            return config.with_changes(identity=identity, client_cert=ClientCertMode.OPTIONAL)
        if mode in proxied:
            return config.with_changes(
                trusted_proxies=("127.0.0.1",),
                forwarded_cert_header=proxied[mode],
                client_cert=ClientCertMode.OPTIONAL,
            )
        return config

    lazy = LazyServers(make)
    yield lazy
    lazy.close()


def ask(
    server: RunningServer, headers: list[tuple[str, str]], count: int = 1
) -> list[dict[str, str]]:
    """``count`` GETs on one connection (TLS when the server has it): what the app saw."""
    head = "GET / HTTP/1.1\r\nHost: h\r\n" + "".join(f"{n}: {v}\r\n" for n, v in headers)
    last = head.replace("Host: h\r\n", "Host: h\r\nConnection: close\r\n")
    raw = (head + "\r\n") * (count - 1) + last + "\r\n"
    sock = socket.create_connection(("127.0.0.1", server.ports[0]), timeout=WAIT)
    if server.config.tls:
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        sock = context.wrap_socket(sock, server_hostname="localhost")
    with sock:
        sock.sendall(raw.encode("latin-1"))
        data, closed = read_until_close(sock)
    assert closed
    bodies = data.split(b"HTTP/1.1 200 OK")[1:]
    assert len(bodies) == count, data[:300]
    return [json.loads(body[body.index(b"{") : body.rindex(b"}") + 1]) for body in bodies]


def pem(cert: x509.Certificate) -> str:
    """nginx's $ssl_client_escaped_cert."""
    return urllib.parse.quote(cert.public_bytes(Encoding.PEM).decode(), safe="")


def der(cert: x509.Certificate) -> str:
    """An RFC 9440 byte sequence."""
    return ":" + base64.b64encode(cert.public_bytes(Encoding.DER)).decode() + ":"


def names(seen: dict[str, str]) -> set[str]:
    """The header names in what an app saw, as WSGI spells them (less Connection, which the
    last request of a connection sends)."""
    spelled = {k.upper().replace("-", "_").removeprefix("HTTP_") for k in seen}
    return spelled - {"VERDICT", "CONNECTION"}


@pytest.mark.parametrize("kind", APPS)
def test_names_with_underscores_never_reach_the_app(
    servers: LazyServers, test_pki: PKIFiles, kind: str
) -> None:
    forged = pem(test_pki.identities["poupou"].certificate)
    underscored = ["X_Client_Cert", "Client_Cert", "X_SSL_Client_Cert", "X_Forwarded_Client_Cert"]
    headers = [(name, forged) for name in underscored]
    headers += [("Content_Type", "text/evil"), ("Content-Type", "text/plain"), ("X-Ok", "1")]
    (seen,) = ask(servers(f"{kind}-proxy"), headers)  # from a trusted proxy, even
    assert names(seen) == {"HOST", "CONTENT_TYPE", "X_OK"}
    assert seen.get("CONTENT_TYPE", seen.get("content-type")) == "text/plain"
    assert seen["verdict"] == "NONE"  # X_Client_Cert is not the configured X-Client-Cert


CERTIFICATE_HEADERS = [
    ("X-Client-Cert", "forged"),
    ("X-SSL-Client-Verify", "SUCCESS"),
    ("SSL-Client-S-DN", "CN=admin"),
    ("X-SSL-Cert", "forged"),
    ("Client-Cert", ":Zm9yZ2Vk:"),
    ("Client-Cert-Chain", ":Zm9yZ2Vk:"),
    ("X-Forwarded-Client-Cert", "Hash=00;Cert=forged"),
]


@pytest.mark.parametrize("kind", APPS)
@pytest.mark.parametrize("mode", ["plain", "tls"])
def test_certificate_headers_never_reach_the_app_and_are_logged_once_per_connection(
    servers: LazyServers, caplog: pytest.LogCaptureFixture, kind: str, mode: str
) -> None:
    server = servers(f"{kind}-{mode}")
    with caplog.at_level(logging.WARNING, logger="mutls.server"):
        seen = ask(server, [*CERTIFICATE_HEADERS, ("X-Ok", "1")], count=2)
    assert [names(s) for s in seen] == [{"HOST", "X_OK"}] * 2
    assert all(s["verdict"] == "NONE" for s in seen)
    logged = [r.getMessage() for r in caplog.records if "client-certificate header" in r.message]
    assert len(logged) == 1 and "x-ssl-client-verify" in logged[0]


@pytest.mark.parametrize("kind", APPS)
def test_from_a_trusted_proxy_only_the_configured_header_is_read(
    servers: LazyServers, test_pki: PKIFiles, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    poupou = test_pki.identities["poupou"].certificate
    with caplog.at_level(logging.WARNING, logger="mutls.server"):
        (seen,) = ask(
            servers(f"{kind}-proxy"), [("X-Client-Cert", pem(poupou)), *CERTIFICATE_HEADERS[1:]]
        )
    assert seen["verdict"] == "SUCCESS"
    assert names(seen) == {"HOST"}
    assert not [r for r in caplog.records if "client-certificate header" in r.message]


@pytest.mark.parametrize("named", [False, True])
def test_client_cert_chain_is_read_only_when_named(
    servers: LazyServers, test_pki: PKIFiles, named: bool
) -> None:
    leaf = test_pki.identities["via-intermediate"].certificate
    headers = [
        ("Client-Cert", der(leaf)),
        ("Client-Cert-Chain", der(test_pki.intermediate.certificate)),
    ]
    (seen,) = ask(servers("wsgi-rfc9440-chain" if named else "wsgi-rfc9440"), headers)
    # Without its intermediate the leaf does not chain to the anchor: the chain a client may
    # have added (a proxy that sets only Client-Cert passes it on) is not believed.
    assert seen["verdict"] == (
        "SUCCESS" if named else "FAILED:unable to get local issuer certificate"
    )
