"""The pytest plugin, as a user's project sees it through the entry point: pytester runs
docs/testing.md's example and tests of each fixture in a pytest of their own."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

DOCS = Path(__file__).resolve().parents[2] / "docs" / "testing.md"

FIXTURES = """
import datetime as dt
import ssl

import httpx
import pytest
from cryptography import x509

from mutls.pki import CertificateAuthority


async def asgi_app(scope, receive, send):
    if scope["type"] != "http":
        return
    tls = scope["extensions"]["tls"]
    body = f"{tls['client_cert_name']}|{tls['client_cert_error']}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def wsgi_app(environ, start_response):
    start_response("200 OK", [])
    return [environ["SSL_CLIENT_VERIFY"].encode()]


SERVERS = []


def test_mutls_client_presents_a_valid_certificate(mutls_server, mutls_client):
    server = mutls_server(wsgi_app)
    assert server.url == f"https://localhost:{server.port}/"
    assert mutls_client.get(server.url).text == "SUCCESS"
    SERVERS.append(server)


def test_servers_stop_at_teardown():
    (server,) = SERVERS
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url, verify=False, timeout=5)


@pytest.mark.parametrize("key", ["ec", "p384", "rsa", "ed25519"])
def test_any_key_type(mutls_server, mutls_client_cert, key):
    server = mutls_server(asgi_app, client_cert="optional", verify="report")
    cert = mutls_client_cert("CN=poupou", key=key)
    with httpx.Client(verify=cert.ssl_context()) as client:
        assert client.get(server.url).text == "CN=poupou|None"


def test_validity_eku_and_issuer(mutls_server, mutls_client_cert, mutls_ca):
    server = mutls_server(asgi_app, client_cert="optional", verify="report")
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    stranger = CertificateAuthority.create("CN=Somebody Else")
    cases = {
        "certificate has expired": mutls_client_cert("CN=old", not_after=past),
        "unsuitable certificate purpose": mutls_client_cert("CN=srv", eku=["serverAuth"]),
        "unable to get local issuer certificate": mutls_client_cert("CN=x", issuer=stranger),
    }
    for error, cert in cases.items():
        with httpx.Client(verify=cert.ssl_context()) as client:
            assert client.get(server.url).text.endswith("|" + error)
    no_eku = mutls_client_cert("CN=any", eku=None)
    with pytest.raises(x509.ExtensionNotFound):
        no_eku.certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert mutls_ca.certificate.subject == no_eku.certificate.issuer


def test_require_strict_by_default(mutls_server, mutls_ca):
    server = mutls_server(wsgi_app)
    anonymous = ssl.create_default_context(cafile=str(mutls_ca.cert_path))
    answer = httpx.get(server.url, verify=anonymous)
    assert answer.status_code == 403 and "client certificate required" in answer.text


def test_write_pem_keeps_the_key_private(mutls_client_cert, tmp_path):
    cert, key = mutls_client_cert("CN=castor").write_pem(tmp_path)
    assert cert.name == "castor.pem" and oct(key.stat().st_mode & 0o777) == "0o600"
"""


@pytest.mark.slow
def test_each_fixture(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_fixtures=FIXTURES)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", timeout=300)
    result.assert_outcomes(passed=9)


@pytest.mark.slow
def test_the_documented_example(pytester: pytest.Pytester) -> None:
    pytest.importorskip("flask")
    text = DOCS.read_text()
    (example,) = re.findall(r"```python\n(# test_whoami.py\n.*?)```", text, re.DOTALL)
    pytester.makepyfile(test_whoami=example)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", timeout=300)
    result.assert_outcomes(passed=3)
