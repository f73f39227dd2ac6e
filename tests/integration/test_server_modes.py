"""Every mode × policy × client certificate, over real sockets with the real curl, openssl
s_client and wget, on TLS 1.2 and 1.3: the page's sentence or the 403, ``SSL_CLIENT_VERIFY``
(WSGI) and the ASGI TLS extension, all from one connection's verdict.

One in-process server per mode/policy serves the whole module (started on first use).
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from mutls import client_certificate, pki
from mutls.apps import ASGIAdapter, ConnectionFacts, ResponseChannel, TestPageApp, WSGIAdapter
from mutls.apps.testpage import ANONYMOUS
from mutls.http import Request
from mutls.server import RunningServer, ServerConfig
from mutls.tls import ClientCertMode, VerifyPolicy

from helpers import CLIENT_CASES, PKIFiles

MODES: dict[str, tuple[ClientCertMode, VerifyPolicy]] = {
    "none": (ClientCertMode.NONE, VerifyPolicy.STRICT),
    "optional-report": (ClientCertMode.OPTIONAL, VerifyPolicy.REPORT),
    "optional-strict": (ClientCertMode.OPTIONAL, VerifyPolicy.STRICT),
    "require-report": (ClientCertMode.REQUIRE, VerifyPolicy.REPORT),
    "require-strict": (ClientCertMode.REQUIRE, VerifyPolicy.STRICT),
}
CASES = ["no-certificate", *CLIENT_CASES]
VERSIONS = {"1.2": ["--tlsv1.2", "--tls-max", "1.2"], "1.3": ["--tlsv1.3", "--tls-max", "1.3"]}
SUBJECTS = {
    "poupou": "CN=poupou",
    "via-intermediate": "CN=castor",
    "expired": "CN=expired",
    "not-yet-valid": "CN=future",
    "untrusted": "CN=mallory",
    "self-signed": "CN=selfie",
    "server-only": "CN=serveronly",
    "revoked": "CN=revoked",
    "disallowed": "CN=banned",
}


def wsgi_echo(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """The SSL_* variables, and whether the object agrees with them."""
    seen = {k: v for k, v in environ.items() if k.startswith(("SSL_", "HTTPS"))}
    cert = client_certificate(environ)
    seen["object_status"] = cert.verify_status if cert is not None else None
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(seen).encode()]


async def asgi_echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The ASGI TLS extension, as the app receives it."""
    assert scope["type"] == "http"
    await receive()
    body = json.dumps(scope["extensions"].get("tls")).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


class Routes:
    """/wsgi and /asgi echo what the apps see; everything else is the test page."""

    def __init__(self) -> None:
        self.page = TestPageApp()
        self.wsgi = WSGIAdapter(wsgi_echo, threads=4)
        self.asgi = ASGIAdapter(asgi_echo)

    async def startup(self) -> None:
        await self.wsgi.startup()
        await self.asgi.startup()

    async def shutdown(self) -> None:
        await self.wsgi.shutdown()
        await self.asgi.shutdown()

    async def handle(
        self, request: Request, body: bytes, facts: ConnectionFacts, channel: ResponseChannel
    ) -> None:
        app = {"/wsgi": self.wsgi, "/asgi": self.asgi}.get(request.path, self.page)
        await app.handle(request, body, facts, channel)


def trust_of(test_pki: PKIFiles) -> pki.TrustMaterial:
    """The CA as anchor, the CRL revoking ``revoked``, ``disallowed`` in Disallowed."""
    return pki.TrustMaterial(
        anchors=(test_pki.ca.certificate,),
        disallowed=(test_pki.identities["disallowed"].certificate,),
        crls=tuple(pki.load_crls(test_pki.crl_path)),
    )


@pytest.fixture(scope="module")
def servers(test_pki: PKIFiles) -> Iterator[Callable[[str], int]]:
    """``port(mode)``: the port of that mode's server, started on first use."""
    running: dict[str, RunningServer] = {}

    def port(mode: str) -> int:
        if mode not in running:
            client_cert, verify = MODES[mode]
            config = ServerConfig(
                port=0,
                identity=test_pki.identities["server"],
                client_cert=client_cert,
                verify=verify,
                trust=trust_of(test_pki),
                app=Routes(),
            )
            server = RunningServer(config)
            server.start(timeout=30)
            running[mode] = server
        return running[mode].ports[0]

    yield port
    for server in running.values():
        server.stop(timeout=15)


@dataclass
class Expected:
    """What one client certificate must get from one mode/policy."""

    status: int
    text: str
    verify: str | None  # SSL_CLIENT_VERIFY, when the app runs


def expected(mode: str, case: str) -> Expected:
    client_cert, policy = MODES[mode]
    if client_cert is ClientCertMode.NONE or case == "no-certificate":
        if client_cert is ClientCertMode.REQUIRE:
            return Expected(403, "client certificate required", None)
        return Expected(200, ANONYMOUS, "NONE")
    reason = CLIENT_CASES[case]
    subject = SUBJECTS[case]
    if reason is None:
        return Expected(200, f"Hello {subject}, your certificate is valid", "SUCCESS")
    if policy is VerifyPolicy.STRICT:
        return Expected(403, f"client certificate not valid: {reason}", None)
    return Expected(200, f"Hello {subject}, your certificate is NOT valid", f"FAILED:{reason}")


def cert_args(test_pki: PKIFiles, case: str) -> list[str]:
    if case == "no-certificate":
        return []
    return ["--cert", str(test_pki.cert(case)), "--key", str(test_pki.key(case))]


def curl(args: list[str], urls: list[str]) -> list[tuple[int, str]]:
    """(status, body) of each URL, fetched by one curl (one connection while it is kept)."""
    result = subprocess.run(
        ["curl", "-sS", "--max-time", "10", *args, "-w", "\n@@%{http_code}@@\n", *urls],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    parts = re.split(r"\n@@(\d{3})@@\n", result.stdout)
    return [(int(parts[i + 1]), parts[i]) for i in range(0, len(parts) - 1, 2)]


@pytest.mark.parametrize("version", list(VERSIONS))
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("mode", list(MODES))
def test_curl(
    servers: Callable[[str], int], test_pki: PKIFiles, mode: str, case: str, version: str
) -> None:
    base = f"https://localhost:{servers(mode)}"
    args = ["--cacert", str(test_pki.ca_cert), *VERSIONS[version], *cert_args(test_pki, case)]
    want = expected(mode, case)
    (page_status, page), (wsgi_status, wsgi), (asgi_status, asgi) = curl(
        args, [f"{base}/cctest.aspx", f"{base}/wsgi", f"{base}/asgi"]
    )
    assert page_status == want.status
    assert want.text in page
    if want.status == 403:
        assert page.strip() == want.text
        assert wsgi_status == asgi_status == 403, "a reconnection (or resumption) let it in"
        return
    env = json.loads(wsgi)
    assert env["HTTPS"] == "on"
    assert env["SSL_CLIENT_VERIFY"] == want.verify == env["object_status"]
    assert env["SSL_PROTOCOL"] == f"TLSv{version}"
    tls = json.loads(asgi)
    assert tls["tls_version"] == {"1.2": 0x0303, "1.3": 0x0304}[version]
    assert isinstance(tls["cipher_suite"], int) and tls["cipher_suite"] > 0
    assert tls["server_cert"].startswith("-----BEGIN CERTIFICATE-----")
    if want.verify == "NONE":
        assert tls["client_cert_chain"] == [] and tls["client_cert_name"] is None
        assert tls["client_cert_error"] is None
        return
    assert env["SSL_CLIENT_S_DN"] == tls["client_cert_name"] == SUBJECTS[case]
    assert tls["client_cert_chain"][0] == env["SSL_CLIENT_CERT"]
    assert tls["client_cert_error"] == CLIENT_CASES[case]


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
@pytest.mark.parametrize("case", CASES)
def test_openssl_s_client(
    servers: Callable[[str], int], test_pki: PKIFiles, case: str, version: str
) -> None:
    mode = "optional-report"
    args = []
    if case != "no-certificate":
        path = str(test_pki.cert(case))
        args = ["-cert", path, "-key", str(test_pki.key(case)), "-cert_chain", path]
    result = subprocess.run(
        [
            "openssl",
            "s_client",
            "-connect",
            f"127.0.0.1:{servers(mode)}",
            "-servername",
            "localhost",
            "-CAfile",
            str(test_pki.ca_cert),
            version,
            "-quiet",
            *args,
        ],
        input=b"GET /wsgi HTTP/1.0\r\nHost: localhost\r\n\r\n",  # 1.0: no chunks to undo
        capture_output=True,
        timeout=20,
    )
    out = result.stdout.decode()
    assert out.startswith("HTTP/1.1 200 OK"), result.stderr.decode()[-500:]
    env = json.loads(out.split("\r\n\r\n", 1)[1])
    assert env["SSL_CLIENT_VERIFY"] == expected(mode, case).verify


@pytest.mark.parametrize("case", ["poupou", "expired", "no-certificate"])
def test_wget(servers: Callable[[str], int], test_pki: PKIFiles, case: str) -> None:
    """GnuTLS wget (it honours the CA-name list, so only certificates from our CA)."""
    mode = "optional-report"
    args = []
    if case != "no-certificate":
        args = [f"--certificate={test_pki.cert(case)}", f"--private-key={test_pki.key(case)}"]
    result = subprocess.run(
        [
            "wget",
            "-q",
            "-O",
            "-",
            "--timeout=10",
            "--tries=1",
            f"--ca-certificate={test_pki.ca_cert}",
            *args,
            f"https://localhost:{servers(mode)}/cctest.aspx",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert expected(mode, case).text in result.stdout
