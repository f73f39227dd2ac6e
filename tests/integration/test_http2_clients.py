"""HTTP/2 with real clients: curl --http2 and httpx (http2=True) with client certificates
against the test page, an ASGI and a WSGI app, and a short h2load run whose every request must
succeed. (Headless Chromium's HTTP/2 case is in tests/interop/test_browsers.py.)"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from mutls import pki
from mutls.server import ServerConfig, serve_in_thread
from mutls.tls import ClientCertMode, VerifyPolicy

from helpers import PKIFiles, asgi_answer, asgi_body, curl


def server_config(test_pki: PKIFiles, **changes: Any) -> ServerConfig:
    return ServerConfig(
        port=0,
        identity=test_pki.identities["server"],
        client_cert=ClientCertMode.OPTIONAL,
        verify=VerifyPolicy.REPORT,
        trust=pki.TrustMaterial(anchors=(test_pki.ca.certificate,)),
    ).with_changes(**changes)


@pytest.fixture(scope="module")
def page(test_pki: PKIFiles) -> Iterator[str]:
    """The article's test page, report policy: the page says the verdict."""
    with serve_in_thread(server_config(test_pki)) as running:
        yield f"https://localhost:{running.ports[0]}/cctest.aspx"


def curl_h2(url: str, pki_files: PKIFiles, who: str | None) -> tuple[str, str]:
    cert = ["--cert", str(pki_files.cert(who)), "--key", str(pki_files.key(who))] if who else []
    result = curl(
        url, "--http2", "--cacert", str(pki_files.ca_cert), *cert, "-w", "\n%{http_version}"
    )
    assert result.returncode == 0, result.stderr
    body, _, version = result.stdout.rpartition("\n")
    return body, version


@pytest.mark.needs("curl")
@pytest.mark.parametrize(
    ("who", "says"),
    [
        ("poupou", "Hello CN=poupou, your certificate is valid"),
        ("expired", "Hello CN=expired, your certificate is NOT valid"),
        (None, "Hello from an secure session. But who are you ?"),
    ],
)
def test_curl_http2_sees_the_verdict(page: str, test_pki: PKIFiles, who: str, says: str) -> None:
    body, version = curl_h2(page, test_pki, who)
    assert version == "2"
    assert f"<p>{says}</p>" in body
    assert "<th>Protocol (ALPN)</th><td>h2</td>" in body


@pytest.mark.needs("curl")
def test_curl_http2_strict_require_403(test_pki: PKIFiles) -> None:
    strict = server_config(test_pki, client_cert=ClientCertMode.REQUIRE, verify=VerifyPolicy.STRICT)
    with serve_in_thread(strict) as running:
        url = f"https://localhost:{running.ports[0]}/cctest.aspx"
        result = curl(
            url,
            "--http2",
            "--cacert",
            str(test_pki.ca_cert),
            "-w",
            "\n%{http_code} %{http_version}",
        )
        assert result.stdout.endswith("\n403 2"), result.stdout
        assert "client certificate required" in result.stdout
        body, version = curl_h2(url, test_pki, "expired")
        assert "client certificate not valid: certificate has expired" in body and version == "2"
        body, version = curl_h2(url, test_pki, "poupou")
        assert "your certificate is valid" in body and version == "2"


@pytest.mark.needs("curl")
def test_curl_http11_still_served_under_auto(page: str, test_pki: PKIFiles) -> None:
    result = curl(page, "--http1.1", "--cacert", str(test_pki.ca_cert), "-w", "\n%{http_version}")
    assert result.stdout.endswith("\n1.1") and "<td>http/1.1</td>" in result.stdout


# -- httpx, ASGI and WSGI ---------------------------------------------------------------------


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = await asgi_body(receive)
    if scope["path"] == "/big":
        await asgi_answer(send, b"z" * 3_000_000)
        return
    tls = scope["extensions"]["tls"]
    seen = {
        "http_version": scope["http_version"],
        "name": tls["client_cert_name"],
        "error": tls["client_cert_error"],
        "body": len(body),
    }
    await asgi_answer(send, json.dumps(seen).encode())


def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    if environ["PATH_INFO"] == "/big":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [b"w" * 1_000_000, b"w" * 2_000_000]
    seen = {
        "protocol": environ["SERVER_PROTOCOL"],
        "verify": environ["SSL_CLIENT_VERIFY"],
        "dn": environ.get("SSL_CLIENT_S_DN"),
        "host": environ.get("HTTP_HOST"),
        "body": len(environ["wsgi.input"].read()),
    }
    body = json.dumps(seen).encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]


def httpx_client(test_pki: PKIFiles, who: str) -> httpx.Client:
    import ssl

    context = ssl.create_default_context(cafile=str(test_pki.ca_cert))
    context.load_cert_chain(str(test_pki.cert(who)), str(test_pki.key(who)))
    return httpx.Client(http2=True, verify=context, timeout=20)


def test_httpx_http2_asgi(test_pki: PKIFiles) -> None:
    with serve_in_thread(server_config(test_pki, app=asgi_app)) as running:
        base = f"https://localhost:{running.ports[0]}"
        with httpx_client(test_pki, "poupou") as client:
            replies = [client.post(f"{base}/p{n}", content=b"x" * 5000) for n in range(5)]
            upload = client.post(f"{base}/upload", content=b"u" * 900_000)  # many reads
            big = client.get(f"{base}/big")
        assert {r.http_version for r in [*replies, big]} == {"HTTP/2"}
        assert [r.json() for r in replies] == [
            {"http_version": "2", "name": "CN=poupou", "error": None, "body": 5000}
        ] * 5
        assert len(big.content) == 3_000_000 and set(big.content) == {ord("z")}
        assert upload.json()["body"] == 900_000
        with httpx_client(test_pki, "untrusted") as client:
            seen = client.get(f"{base}/who").json()
        assert seen["error"] == "unable to get local issuer certificate"


def test_httpx_http2_wsgi(test_pki: PKIFiles) -> None:
    with serve_in_thread(server_config(test_pki, app=wsgi_app)) as running:
        base = f"https://localhost:{running.ports[0]}"
        with httpx_client(test_pki, "poupou") as client:
            reply = client.post(f"{base}/w", content=b"y" * 777)
            big = client.get(f"{base}/big")
        assert reply.http_version == "HTTP/2"
        assert reply.json() == {
            "protocol": "HTTP/2",
            "verify": "SUCCESS",
            "dn": "CN=poupou",
            "host": f"localhost:{running.ports[0]}",
            "body": 777,
        }
        assert len(big.content) == 3_000_000


# -- h2load -----------------------------------------------------------------------------------


@pytest.mark.needs("h2load")
def test_h2load_every_request_succeeds(test_pki: PKIFiles) -> None:
    with serve_in_thread(server_config(test_pki, app=asgi_app)) as running:
        url = f"https://127.0.0.1:{running.ports[0]}/load"
        result = subprocess.run(
            ["h2load", "-n", "600", "-c", "3", "-m", "10", url],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 0, result.stderr
    assert "Application protocol: h2" in result.stdout
    requests = re.search(
        r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded", result.stdout
    )
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", result.stdout)
    assert requests is not None and codes is not None, result.stdout
    assert requests.groups() == ("600", "600", "600")
    assert codes.groups() == ("600", "0", "0", "0")
