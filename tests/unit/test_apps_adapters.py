"""WSGI and ASGI adapters and the test page, driven without a socket."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from mutls import client_certificate, pki
from mutls.apps import ASGIAdapter, TestPageApp, WSGIAdapter, build_app
from mutls.apps.facts import ConnectionFacts, connection_facts
from mutls.apps.loader import app_kind
from mutls.apps.testpage import ANONYMOUS, INSECURE, render
from mutls.errors import UsageError
from mutls.pki.certs import build_certificate
from mutls.server.log import printable
from mutls.tls import ClientCertificate, TLSInfo

from helpers import PKIFiles, run_app

GET = (
    b"GET /a%20b?x=1 HTTP/1.1\r\nHost: example.org\r\nX-Twice: 1\r\nX-Twice: 2\r\n"
    b"Cookie: a=1\r\nCookie: b=2\r\n\r\n"
)


def tls_facts(
    identity: pki.Identity | None, *, valid: bool, error: str | None = None
) -> ConnectionFacts:
    if identity is None:
        cert = ClientCertificate.absent()
    else:
        cert = ClientCertificate(
            present=True,
            valid=valid,
            error=error,
            chain=(identity.certificate, *identity.chain),
        )
    info = TLSInfo(
        version="TLSv1.3",
        cipher="TLS_AES_256_GCM_SHA384",
        cipher_id=0x1302,
        client_certificate=cert,
        server_cert_pem="-----BEGIN CERTIFICATE-----\nserver\n-----END CERTIFICATE-----\n",
    )
    return connection_facts(("127.0.0.1", 5555), ("127.0.0.1", 4433), info)


# -- WSGI ---------------------------------------------------------------------------------------


def wsgi_echo(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    seen = {k: v for k, v in environ.items() if isinstance(v, str)}
    seen["body"] = environ["wsgi.input"].read().decode()
    seen["has_cert_object"] = str(client_certificate(environ) is not None)
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(seen).encode()]


def test_wsgi_environ_has_mod_ssl_names(test_pki: PKIFiles) -> None:
    poupou = test_pki.identities["poupou"]
    channel = run_app(WSGIAdapter(wsgi_echo), GET, tls_facts(poupou, valid=True))
    env = json.loads(channel.body)
    assert channel.status == 200 and channel.finished
    assert env["HTTPS"] == "on" and env["wsgi.url_scheme"] == "https"
    assert env["REQUEST_METHOD"] == "GET"
    assert env["PATH_INFO"] == "/a b" and env["QUERY_STRING"] == "x=1"
    assert env["HTTP_HOST"] == "example.org"
    assert env["HTTP_X_TWICE"] == "1,2"
    assert env["HTTP_COOKIE"] == "a=1; b=2"
    assert env["SSL_PROTOCOL"] == "TLSv1.3"
    assert env["SSL_CIPHER"] == "TLS_AES_256_GCM_SHA384"
    assert env["SSL_CLIENT_VERIFY"] == "SUCCESS"
    assert env["SSL_CLIENT_S_DN"] == "CN=poupou"
    assert env["SSL_CLIENT_S_DN_CN"] == "poupou"
    assert env["SSL_CLIENT_I_DN"] == "CN=My Own Test CA"
    assert env["SSL_CLIENT_M_SERIAL"] == format(poupou.certificate.serial_number, "X")
    assert env["SSL_CLIENT_V_END"].endswith(" GMT")
    assert int(env["SSL_CLIENT_V_REMAIN"]) > 300
    assert env["SSL_CLIENT_SAN_Email_0"] == "poupou@example.org"
    assert (
        env["SSL_CLIENT_CERT"]
        == poupou.certificate.public_bytes(serialization.Encoding.PEM).decode()
    )
    assert env["has_cert_object"] == "True"
    assert env["REMOTE_ADDR"] == "127.0.0.1"


def test_wsgi_chain_and_failure(test_pki: PKIFiles) -> None:
    castor = test_pki.identities["via-intermediate"]
    channel = run_app(
        WSGIAdapter(wsgi_echo), GET, tls_facts(castor, valid=False, error="certificate revoked")
    )
    env = json.loads(channel.body)
    assert env["SSL_CLIENT_VERIFY"] == "FAILED:certificate revoked"
    # mod_ssl numbers the chain from 0 without the leaf
    for n in range(len(castor.chain)):
        assert env[f"SSL_CLIENT_CERT_CHAIN_{n}"].startswith("-----BEGIN CERTIFICATE-----")
    assert f"SSL_CLIENT_CERT_CHAIN_{len(castor.chain)}" not in env
    assert env["SSL_CLIENT_I_DN"] == "CN=My Intermediate CA"


def test_wsgi_without_certificate_and_without_tls() -> None:
    env = json.loads(run_app(WSGIAdapter(wsgi_echo), GET, tls_facts(None, valid=False)).body)
    assert env["SSL_CLIENT_VERIFY"] == "NONE"
    assert "SSL_CLIENT_S_DN" not in env
    plain = connection_facts(("127.0.0.1", 1), ("127.0.0.1", 2))
    env = json.loads(run_app(WSGIAdapter(wsgi_echo), GET, plain).body)
    assert env["wsgi.url_scheme"] == "http"
    assert "HTTPS" not in env and "SSL_CLIENT_VERIFY" not in env
    assert env["has_cert_object"] == "False"


def test_wsgi_body_and_write_callable() -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        write = start_response("201 Created", [("X-A", "b")])
        write(b"early ")
        return [b"", environ["wsgi.input"].read(), b" late"]

    raw = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\n"
    channel = run_app(WSGIAdapter(app), raw, connection_facts(None, None), body=b"data")
    assert channel.status == 201
    assert (b"X-A", b"b") in channel.headers
    assert channel.body == b"early data late"


def test_wsgi_app_failing_before_its_head_gives_500() -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        raise RuntimeError("boom")

    channel = run_app(WSGIAdapter(app), GET, connection_facts(None, None))
    assert channel.status == 500 and channel.finished


def test_wsgi_app_failing_after_its_head_aborts() -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        start_response("200 OK", [])
        yield b"part"
        raise RuntimeError("boom")

    channel = run_app(WSGIAdapter(app), GET, connection_facts(None, None))
    assert channel.status == 200 and channel.aborted and not channel.finished


# -- ASGI ---------------------------------------------------------------------------------------


async def asgi_echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        raise RuntimeError("no lifespan here")
    message = await receive()
    cert = client_certificate(scope)
    seen = {k: v for k, v in scope.items() if k not in ("extensions", "state")}
    seen["headers"] = [[k.decode(), v.decode()] for k, v in scope["headers"]]
    seen["raw_path"] = scope["raw_path"].decode()
    seen["query_string"] = scope["query_string"].decode()
    seen["tls"] = scope["extensions"].get("tls")
    seen["body"] = message["body"].decode()
    seen["cert_valid"] = cert.valid if cert is not None else None
    body = json.dumps(seen).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def test_asgi_scope_and_tls_extension(test_pki: PKIFiles) -> None:
    castor = test_pki.identities["via-intermediate"]
    facts = tls_facts(castor, valid=False, error="certificate has expired")
    channel = run_app(ASGIAdapter(asgi_echo), GET, facts, body=b"xyz")
    scope = json.loads(channel.body)
    assert scope["type"] == "http" and scope["asgi"]["version"] == "3.0"
    assert scope["scheme"] == "https" and scope["http_version"] == "1.1"
    assert scope["path"] == "/a b" and scope["raw_path"] == "/a%20b"
    assert scope["query_string"] == "x=1"
    assert ["host", "example.org"] in scope["headers"]
    assert scope["client"] == ["127.0.0.1", 5555] and scope["server"] == ["127.0.0.1", 4433]
    assert scope["body"] == "xyz"
    tls = scope["tls"]
    assert set(tls) == {
        "server_cert",
        "client_cert_chain",
        "client_cert_name",
        "client_cert_error",
        "tls_version",
        "cipher_suite",
    }
    assert tls["server_cert"].startswith("-----BEGIN CERTIFICATE-----")
    assert len(tls["client_cert_chain"]) == 1 + len(castor.chain)  # leaf first, as sent
    assert (
        tls["client_cert_chain"][0]
        == castor.certificate.public_bytes(serialization.Encoding.PEM).decode()
    )
    assert tls["client_cert_name"] == "CN=castor"
    assert tls["client_cert_error"] == "certificate has expired"
    assert tls["tls_version"] == 0x0304
    assert tls["cipher_suite"] == 0x1302
    assert scope["cert_valid"] is False


def test_asgi_tls_extension_without_certificate_and_absent_on_plain_http() -> None:
    tls = json.loads(run_app(ASGIAdapter(asgi_echo), GET, tls_facts(None, valid=False)).body)["tls"]
    assert tls["client_cert_chain"] == [] and tls["client_cert_name"] is None
    assert tls["client_cert_error"] is None
    plain = json.loads(run_app(ASGIAdapter(asgi_echo), GET, connection_facts(None, None)).body)
    assert plain["tls"] is None and plain["scheme"] == "http" and plain["cert_valid"] is None


def test_asgi_valid_certificate_has_no_error(test_pki: PKIFiles) -> None:
    facts = tls_facts(test_pki.identities["poupou"], valid=True)
    tls = json.loads(run_app(ASGIAdapter(asgi_echo), GET, facts).body)["tls"]
    assert tls["client_cert_error"] is None and tls["client_cert_name"] == "CN=poupou"


def test_asgi_lifespan_is_run_when_supported() -> None:
    log: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                log.append(message["type"])
                if message["type"] == "lifespan.startup":
                    scope["state"]["db"] = "ready"
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        await receive()
        body = scope["state"]["db"].encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    channel = run_app(ASGIAdapter(app), GET, connection_facts(None, None))
    assert channel.body == b"ready"
    assert log == ["lifespan.startup", "lifespan.shutdown"]


def test_asgi_lifespan_failure_stops_startup() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database"})

    with pytest.raises(Exception, match="no database"):
        run_app(ASGIAdapter(app), GET, connection_facts(None, None))


def test_asgi_app_without_response_gives_500_and_half_response_aborts() -> None:
    async def silent(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            return

    assert run_app(ASGIAdapter(silent), GET, connection_facts(None, None)).status == 500

    async def half(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise ValueError
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        raise RuntimeError("boom")

    channel = run_app(ASGIAdapter(half), GET, connection_facts(None, None))
    assert channel.aborted and not channel.finished


def test_apps_are_told_apart() -> None:
    class ClassASGI:
        async def __call__(self, scope: Any, receive: Any, send: Any) -> None: ...

    assert app_kind(asgi_echo) == "asgi"
    assert app_kind(ClassASGI()) == "asgi"
    assert app_kind(wsgi_echo) == "wsgi"
    assert isinstance(build_app(asgi_echo), ASGIAdapter)
    assert isinstance(build_app(wsgi_echo), WSGIAdapter)
    assert isinstance(build_app(None), TestPageApp)


def test_app_import_from_app_dir(tmp_path: Path) -> None:
    (tmp_path / "mutls_demo_app_xyz.py").write_text(
        "async def app(scope, receive, send):\n    pass\n"
        "def wsgi(environ, start_response):\n    return []\n"
    )
    assert isinstance(build_app("mutls_demo_app_xyz:app", app_dir=tmp_path), ASGIAdapter)
    assert isinstance(build_app("mutls_demo_app_xyz:wsgi", app_dir=tmp_path), WSGIAdapter)
    with pytest.raises(UsageError, match="--app-dir"):
        build_app("no_such_module_here:app", app_dir=tmp_path)
    with pytest.raises(UsageError, match="no attribute"):
        build_app("mutls_demo_app_xyz:nothing", app_dir=tmp_path)
    with pytest.raises(UsageError, match="module:attribute"):
        build_app("justamodule", app_dir=tmp_path)


# -- the test page ------------------------------------------------------------------------------


def test_page_has_the_articles_four_sentences(test_pki: PKIFiles) -> None:
    poupou = test_pki.identities["poupou"]
    assert INSECURE in render(connection_facts(None, None))
    assert ANONYMOUS in render(tls_facts(None, valid=False))
    assert "Hello CN=poupou, your certificate is valid" in render(tls_facts(poupou, valid=True))
    page = render(tls_facts(poupou, valid=False, error="certificate has expired"))
    assert "Hello CN=poupou, your certificate is NOT valid" in page
    assert "certificate has expired" in page and "FAILED:certificate has expired" in page


def test_page_escapes_what_the_certificate_says() -> None:
    key = pki.generate_private_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "<script>alert(1)</script>")])
    cert = build_certificate(
        subject=name, public_key=key.public_key(), signing_key=key, eku=[pki.CLIENT_AUTH]
    )
    evil = pki.Identity(cert, key)
    page = render(tls_facts(evil, valid=True))
    assert "<script>" not in page
    assert "&lt;script" in page and "&lt;/script" in page


def test_logs_escape_control_characters() -> None:
    assert printable("CN=a\nFAKE LOG LINE\x1b[31m\x9b") == "CN=a\\nFAKE LOG LINE\\x1b[31m\\x9b"
    assert printable("back\\slash") == "back\\\\slash"


def test_page_and_404_through_the_app() -> None:
    app = TestPageApp()
    facts = connection_facts(None, None)
    assert (
        INSECURE.encode()
        in run_app(app, b"GET /cctest.aspx HTTP/1.1\r\nHost: h\r\n\r\n", facts).body
    )
    assert run_app(app, b"GET /root.key HTTP/1.1\r\nHost: h\r\n\r\n", facts).status == 404
