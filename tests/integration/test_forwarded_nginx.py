"""mutls behind real nginx: nginx terminates mTLS and forwards ``$ssl_client_escaped_cert`` in
``X-Client-Cert`` to ``mutls serve`` on plain HTTP with ``--trusted-proxy 127.0.0.1``; mutls
judges the certificate by its own rules, and believes the header from nobody else.

Direct requests come from 127.0.0.1 (the trusted proxy's address, to send what a proxy would)
or from 127.0.0.2 (anyone else).
"""

from __future__ import annotations

import http.client
import subprocess
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from helpers import MutlsServer, PKIFiles, free_port, run_nginx

pytestmark = pytest.mark.needs("nginx")

APP = """
def app(environ, start_response):
    leaked = sorted(k for k in environ if "CLIENT_CERT" in k and k.startswith("HTTP_"))
    body = "|".join([environ.get("SSL_CLIENT_VERIFY", "-"), environ.get("SSL_CLIENT_S_DN", "-"),
                     ",".join(leaked) or "-"])
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body.encode()]
"""

HTTP = """
    ssl_verify_client optional_no_ca;
    proxy_set_header X-Client-Cert $ssl_client_escaped_cert;
    server {{
        listen 127.0.0.1:{report_front} ssl;
        location / {{ proxy_pass http://127.0.0.1:{report}; }}
    }}
    server {{
        listen 127.0.0.1:{strict_front} ssl;
        location / {{ proxy_pass http://127.0.0.1:{strict}; }}
    }}
"""


def backend(test_pki: PKIFiles, app_dir: Path, policy: str) -> MutlsServer:
    return MutlsServer(
        "serve",
        "fwdapp:app",
        "--app-dir",
        app_dir,
        "--trusted-proxy",
        "127.0.0.1",
        "--forwarded-cert-header",
        "X-Client-Cert",
        "--client-ca",
        test_pki.ca_cert,
        "--verify",
        policy,
        cwd=app_dir,
    )


@pytest.fixture(scope="module")
def ports(test_pki: PKIFiles, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, int]]:
    """Two mutls backends (report, strict), nginx in front of each."""
    app_dir = tmp_path_factory.mktemp("fwdapp")
    (app_dir / "fwdapp.py").write_text(APP)
    with (
        backend(test_pki, app_dir, "report") as report,
        backend(test_pki, app_dir, "strict") as strict,
    ):
        prefix = tmp_path_factory.mktemp("nginx")
        found = {
            "report": report.port,
            "strict": strict.port,
            "report_front": free_port(),
            "strict_front": free_port(),
        }
        fronts = (found["report_front"], found["strict_front"])
        with run_nginx(prefix, test_pki.directory, HTTP.format(**found), fronts):
            yield found


def via_nginx(
    p: PKIFiles, port: int, name: str | None, extra: tuple[str, ...] = ()
) -> tuple[int, str]:
    """curl through nginx with client certificate ``name``: (status, body)."""
    certs = ["--cert", str(p.cert(name)), "--key", str(p.key(name))] if name else []
    certs += extra
    result = subprocess.run(
        [
            *("curl", "-sS", "--max-time", "20", "--cacert", str(p.ca_cert), *certs),
            *("-w", "\n%{http_code}", f"https://localhost:{port}/"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    body, _, status = result.stdout.rpartition("\n")
    return int(status), body


def direct(port: int, headers: dict[str, str], source: str = "127.0.0.1") -> tuple[int, str]:
    """A plain-HTTP request straight to mutls from ``source``."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20, source_address=(source, 0))
    try:
        conn.request("GET", "/", headers=headers)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def escaped(p: PKIFiles, name: str) -> str:
    cert = p.identities[name].certificate.public_bytes(Encoding.PEM)
    return urllib.parse.quote_from_bytes(cert, safe=b"")


def test_valid_certificate(test_pki: PKIFiles, ports: dict[str, int]) -> None:
    for front in ("report_front", "strict_front"):
        assert via_nginx(test_pki, ports[front], "poupou") == (200, "SUCCESS|CN=poupou|-")


def test_untrusted_certificate(test_pki: PKIFiles, ports: dict[str, int]) -> None:
    """nginx's optional_no_ca forgives the issuer; mutls does not."""
    status, body = via_nginx(test_pki, ports["report_front"], "untrusted")
    assert (status, body) == (
        200,
        "FAILED:unable to get local issuer certificate|CN=mallory|-",
    )
    status, body = via_nginx(test_pki, ports["strict_front"], "untrusted")
    assert status == 403
    assert "client certificate not valid: unable to get local issuer certificate" in body


def test_expired_certificate(test_pki: PKIFiles, ports: dict[str, int]) -> None:
    """nginx refuses an expired certificate itself (400); what it would forward from a proxy
    that forwards every certificate (Envoy), mutls judges as a handshake would."""
    status, body = via_nginx(test_pki, ports["report_front"], "expired")
    assert status == 400 and "SSL certificate error" in body
    header = {"X-Client-Cert": escaped(test_pki, "expired")}
    assert direct(ports["report"], header) == (200, "FAILED:certificate has expired|CN=expired|-")
    status, body = direct(ports["strict"], header)
    assert status == 403 and "certificate has expired" in body


def test_no_certificate(test_pki: PKIFiles, ports: dict[str, int]) -> None:
    for front in ("report_front", "strict_front"):
        assert via_nginx(test_pki, ports[front], None) == (200, "NONE|-|-")


def test_untrusted_peer_is_ignored(test_pki: PKIFiles, ports: dict[str, int]) -> None:
    """The same header from 127.0.0.2 is dropped unread, and never reaches the app."""
    header = {"X-Client-Cert": escaped(test_pki, "poupou"), "X-Forwarded-Client-Cert": "x"}
    for backend_name in ("report", "strict"):
        assert direct(ports[backend_name], header, source="127.0.0.2") == (200, "NONE|-|-")
    assert direct(ports["report"], header, source="127.0.0.1") == (200, "SUCCESS|CN=poupou|-")


def test_malformed_header_is_400(ports: dict[str, int]) -> None:
    status, body = direct(ports["report"], {"X-Client-Cert": "-----BEGIN CERTIFICATE-----%ZZ"})
    assert status == 400
    assert body.startswith("forwarded certificate header malformed: ")


def test_client_cannot_smuggle_the_header_through_nginx(
    test_pki: PKIFiles, ports: dict[str, int]
) -> None:
    """nginx replaces the X-Client-Cert a client sends (or drops it, without a certificate)."""
    forged = ("-H", f"X-Client-Cert: {escaped(test_pki, 'poupou')}")
    assert via_nginx(test_pki, ports["report_front"], None, forged) == (200, "NONE|-|-")
    status, body = via_nginx(test_pki, ports["report_front"], "untrusted", forged)
    assert (status, body.split("|")[1]) == (200, "CN=mallory")
