"""``mutls get`` and ``mutls doctor`` against nginx: ``ssl_verify_client on`` and
``optional_no_ca``, TLS 1.2 and 1.3.

nginx never fails the handshake over a client certificate: it completes it and answers
HTTP 400 ("No required SSL certificate was sent", "The SSL certificate error"), so these are
the cases where the verdict comes after the handshake as an HTTP status, not as an alert.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from helpers import PASSWORD, PKIFiles, free_port, run_mutls, run_nginx

pytestmark = [
    pytest.mark.interop,
    pytest.mark.needs("nginx"),
]

HTTP = """
    ssl_protocols {protocol};
    server {{
        listen 127.0.0.1:{on} ssl;
        ssl_verify_client on;
        location / {{ return 200 "Hello $ssl_client_s_dn: $ssl_client_verify\\n"; }}
    }}
    server {{
        listen 127.0.0.1:{optional} ssl;
        ssl_verify_client optional_no_ca;
        location / {{ return 200 "Hello $ssl_client_s_dn: $ssl_client_verify\\n"; }}
    }}
"""


@pytest.fixture(scope="module", params=["TLSv1.3", "TLSv1.2"])
def nginx(
    request: pytest.FixtureRequest, test_pki: PKIFiles, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """nginx with an ``on`` and an ``optional_no_ca`` server; yields their URLs."""
    prefix = tmp_path_factory.mktemp("nginx")
    ports = {"on": free_port(), "optional": free_port()}
    http = HTTP.format(protocol=request.param, **ports)
    with run_nginx(prefix, test_pki.directory, http, ports.values()):
        yield {
            "on": f"https://localhost:{ports['on']}/",
            "optional": f"https://localhost:{ports['optional']}/",
            "protocol": request.param,
        }


def cert_args(p: PKIFiles, name: str | None) -> list[str]:
    return ["--cert", str(p.p12(name)), "--pass", PASSWORD] if name else []


def get(p: PKIFiles, url: str, name: str | None) -> subprocess.CompletedProcess[str]:
    return run_mutls("get", url, *cert_args(p, name), "--cacert", p.ca_cert)


def doctor(p: PKIFiles, url: str, name: str | None) -> tuple[int, dict[str, Any]]:
    result = run_mutls("doctor", url, *cert_args(p, name), "--cacert", p.ca_cert, "--json")
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(result.stdout)


def test_get_accepted(test_pki: PKIFiles, nginx: dict[str, str]) -> None:
    result = get(test_pki, nginx["on"], "poupou")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Hello CN=poupou: SUCCESS\n"


def test_get_without_certificate_is_http_400(test_pki: PKIFiles, nginx: dict[str, str]) -> None:
    result = get(test_pki, nginx["on"], None)
    assert result.returncode == 1
    assert "No required SSL certificate was sent" in result.stdout
    assert "400" in result.stderr and "add --cert" in result.stderr


def test_get_untrusted(test_pki: PKIFiles, nginx: dict[str, str]) -> None:
    refused = get(test_pki, nginx["on"], "untrusted")
    assert refused.returncode == 1
    assert "The SSL certificate error" in refused.stdout
    forgiven = get(test_pki, nginx["optional"], "untrusted")
    assert forgiven.returncode == 0
    assert forgiven.stdout.startswith("Hello CN=mallory: FAILED:")


def test_doctor_accepted(test_pki: PKIFiles, nginx: dict[str, str]) -> None:
    code, report = doctor(test_pki, nginx["on"], "poupou")
    assert code == 0
    assert report["tls_version"] == nginx["protocol"]
    assert report["ca_names"] == ["CN=My Own Test CA"]
    assert report["diagnosis"] == "the server accepted `CN=poupou` (HTTP 200)"


def test_doctor_no_certificate(test_pki: PKIFiles, nginx: dict[str, str]) -> None:
    code, report = doctor(test_pki, nginx["on"], None)
    assert code == 1
    assert report["alert"] is None and report["http_status"] == 400
    assert report["diagnosis"].startswith(
        "the server requires a client certificate and none was offered (HTTP 400"
    )


def test_doctor_untrusted_issuer(test_pki: PKIFiles, nginx: dict[str, str]) -> None:
    code, report = doctor(test_pki, nginx["on"], "untrusted")
    assert code == 1
    assert report["diagnosis"].startswith(
        "the server trusts `CN=My Own Test CA`, your certificate is issued by "
        "`CN=Untrusted Test CA`"
    )


def test_doctor_expired(test_pki: PKIFiles, nginx: dict[str, str]) -> None:
    code, report = doctor(test_pki, nginx["on"], "expired")
    assert code == 1
    assert "`CN=expired` is outside its validity" in report["diagnosis"]


def test_doctor_optional_no_ca(test_pki: PKIFiles, nginx: dict[str, str]) -> None:
    code, report = doctor(test_pki, nginx["optional"], "untrusted")
    assert code == 0
    assert report["diagnosis"] == "the server accepted `CN=mallory` (HTTP 200)"
    assert any("optional_no_ca" in note for note in report["notes"])
