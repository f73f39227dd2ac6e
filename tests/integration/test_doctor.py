"""``mutls doctor`` against openssl s_server in every configuration the issue lists."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import PASSWORD, MutlsServer, OpenSSLServer, PKIFiles, free_port, run_mutls

REQUIRE = ("-Verify", "1", "-verify_return_error")


def s_server(p: PKIFiles, *args: str | os.PathLike[str]) -> OpenSSLServer:
    return OpenSSLServer(
        "-cert", p.cert("server"), "-key", p.key("server"), "-CAfile", p.ca_cert, "-www", *args,
        cwd=p.directory,
    )  # fmt: skip


@pytest.fixture(scope="module", params=["-tls1_3", "-tls1_2"])
def require(request: pytest.FixtureRequest, test_pki: PKIFiles) -> Iterator[tuple[str, str]]:
    """(URL, TLS version) of a server that refuses any invalid or missing certificate."""
    with s_server(test_pki, *REQUIRE, request.param) as server:
        yield f"https://localhost:{server.port}/", request.param


def doctor(p: PKIFiles, url: str, name: str | None, *more: str) -> tuple[int, dict[str, Any]]:
    cert = ["--cert", str(p.p12(name)), "--pass", PASSWORD] if name else []
    result = run_mutls("doctor", url, *cert, "--cacert", p.ca_cert, "--json", *more)
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(result.stdout)


def verdicts(report: dict[str, Any]) -> dict[str, str]:
    return {s["name"]: s["verdict"] for s in report["steps"]}


def test_accepted(test_pki: PKIFiles, require: tuple[str, str]) -> None:
    url, version = require
    code, report = doctor(test_pki, url, "poupou")
    assert code == 0
    assert report["ok"] is True
    assert report["tls_version"] == {"-tls1_3": "TLSv1.3", "-tls1_2": "TLSv1.2"}[version]
    assert report["certificate_requested"] and report["certificate_sent"]
    assert report["ca_names"] == ["CN=My Own Test CA"]
    assert report["http_status"] == 200
    assert report["diagnosis"] == "the server accepted `CN=poupou` (HTTP 200)"
    assert set(verdicts(report).values()) == {"ok"}


def test_no_certificate(test_pki: PKIFiles, require: tuple[str, str]) -> None:
    url, version = require
    code, report = doctor(test_pki, url, None)
    assert code == 1
    # TLS 1.3 says so after the handshake; TLS 1.2 fails the handshake itself.
    if version == "-tls1_3":
        assert (report["alert"], report["alert_after_handshake"]) == ("certificate_required", True)
    else:
        assert (report["alert"], report["alert_after_handshake"]) == ("handshake_failure", False)
    assert report["diagnosis"].startswith(
        "the server requires a client certificate and none was offered"
    )
    assert "--cert" in report["fix"]
    assert verdicts(report)["certificate sent"] == "fail"


def test_untrusted_issuer(test_pki: PKIFiles, require: tuple[str, str]) -> None:
    code, report = doctor(test_pki, require[0], "untrusted")
    assert code == 1
    assert report["alert"] == "unknown_ca"
    assert report["diagnosis"].startswith(
        "the server trusts `CN=My Own Test CA`, your certificate is issued by "
        "`CN=Untrusted Test CA`"
    )
    assert verdicts(report)["issuer accepted"] == "fail"
    assert report["certificate_sent"] is True


def test_expired(test_pki: PKIFiles, require: tuple[str, str]) -> None:
    code, report = doctor(test_pki, require[0], "expired")
    assert code == 1
    assert report["alert"] == "certificate_expired"
    assert "`CN=expired` is outside its validity: expired on" in report["diagnosis"]
    assert verdicts(report)["your certificate"] == "fail"


def test_wrong_eku(test_pki: PKIFiles, require: tuple[str, str]) -> None:
    code, report = doctor(test_pki, require[0], "server-only")
    assert code == 1
    assert report["alert"] == "unsupported_certificate"
    assert "extended key usage lacks clientAuth" in report["diagnosis"]


def test_server_not_requesting(test_pki: PKIFiles) -> None:
    with s_server(test_pki) as server:
        code, report = doctor(test_pki, f"https://localhost:{server.port}/", "poupou")
    assert code == 0
    assert report["certificate_requested"] is False and report["certificate_sent"] is False
    assert report["diagnosis"].startswith("the server did not ask for a client certificate")
    assert "`CN=poupou` was not sent" in report["notes"][0]


@pytest.mark.parametrize("version", ["-tls1_3", "-tls1_2"])
def test_server_sending_no_ca_names(test_pki: PKIFiles, version: str) -> None:
    with s_server(test_pki, *REQUIRE, "-no_ca_names", version) as server:
        url = f"https://localhost:{server.port}/"
        good_code, good = doctor(test_pki, url, "poupou")
        bad_code, bad = doctor(test_pki, url, "untrusted")
    assert good_code == 0
    assert good["certificate_requested"] is True and good["ca_names"] == []
    assert verdicts(good)["certificate request"] == "warn"
    assert verdicts(good)["issuer accepted"] == "skip"
    assert bad_code == 1
    assert bad["diagnosis"].startswith(
        "the server does not trust `CN=Untrusted Test CA`, the issuer of your certificate"
    )


def test_wrong_host_name(test_pki: PKIFiles, tmp_path: Path) -> None:
    test_pki.ca.issue_server("elsewhere.example").write_pem(tmp_path / "e.pem", tmp_path / "e.key")
    with OpenSSLServer(
        "-cert", tmp_path / "e.pem", "-key", tmp_path / "e.key", "-www", cwd=tmp_path
    ) as server:  # fmt: skip
        code, report = doctor(test_pki, f"https://localhost:{server.port}/", None)
    assert code == 1
    assert report["server_verified"] is False
    assert (
        report["diagnosis"]
        == "the server's certificate is for elsewhere.example, not for localhost"
    )
    assert verdicts(report)["server certificate"] == "fail"


def test_untrusted_server_certificate(test_pki: PKIFiles, require: tuple[str, str]) -> None:
    result = run_mutls(
        "doctor", require[0], "--cert", test_pki.p12("poupou"), "--pass", PASSWORD,
        "--cacert", test_pki.other_ca_cert,
    )  # fmt: skip
    assert result.returncode == 1
    assert "Diagnosis: the server's certificate does not verify" in result.stdout
    assert "[ ok ] certificate sent" in result.stdout  # the doctor goes on to see the rest


def test_a_server_that_forgives_is_believed_by_its_page(test_pki: PKIFiles) -> None:
    # s_server's -verify without -verify_return_error takes any certificate, as nginx's
    # optional_no_ca and XSP do, and its page says what it found: that is the verdict.
    with s_server(test_pki, "-verify", "1") as server:
        code, report = doctor(test_pki, f"https://localhost:{server.port}/", "untrusted")
    assert code == 1 and report["ok"] is False and report["http_status"] == 200
    assert report["diagnosis"].startswith(
        "the server trusts `CN=My Own Test CA`, your certificate is issued by "
        "`CN=Untrusted Test CA`: unable to verify the first certificate (HTTP 200 ok, "
        "s_server's Verify return code)"
    )
    assert "for openssl s_server, give it with `-CAfile CA.pem`" in report["fix"]
    assert verdicts(report)["server answer"] == "fail"


def test_text_report(test_pki: PKIFiles, require: tuple[str, str]) -> None:
    result = run_mutls(
        "doctor", require[0], "--cert", test_pki.p12("untrusted"), "--pass", PASSWORD,
        "--cacert", test_pki.ca_cert,
    )  # fmt: skip
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0] == f"mutls doctor {require[0]}"
    assert any(line.startswith("  [FAIL] server answer") and "unknown_ca" in line for line in lines)
    assert "Fix: use a certificate issued by a CA the server trusts" in result.stdout


def test_connection_refused_is_a_problem() -> None:
    result = run_mutls("doctor", f"https://127.0.0.1:{free_port()}/")
    assert result.returncode == 1
    assert "Diagnosis: cannot connect" in result.stdout


def test_bad_input_exit_2(test_pki: PKIFiles) -> None:
    assert run_mutls("doctor", "localhost:4433").returncode == 2
    wrong = run_mutls("doctor", "https://localhost/", test_pki.p12("poupou"), "wrong")
    assert wrong.returncode == 2 and "wrong password" in wrong.stderr


def test_keylog(test_pki: PKIFiles, require: tuple[str, str], tmp_path: Path) -> None:
    log = tmp_path / "doctor.keys"
    code, _ = doctor(test_pki, require[0], "poupou", "--keylog", str(log))
    assert code == 0
    label = "CLIENT_TRAFFIC_SECRET_0" if require[1] == "-tls1_3" else "CLIENT_RANDOM"
    assert label in log.read_text()


# -- against mutls's own server ------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["strict", "report"])
def test_against_mutls_xsp(test_pki: PKIFiles, policy: str) -> None:
    p = test_pki
    with MutlsServer(
        "xsp", "--https-client-require", "--verify", policy,
        "--p12file", p.p12("server"), "--pkpwd", PASSWORD, "--client-ca", p.ca_cert,
        cwd=p.directory,
    ) as server:  # fmt: skip
        url = f"https://localhost:{server.port}/cctest.aspx"
        good_code, good = doctor(p, url, "poupou")
        none_code, none = doctor(p, url, None)
        bad_code, bad = doctor(p, url, "untrusted")
    assert good_code == 0 and good["diagnosis"] == "the server accepted `CN=poupou` (HTTP 200)"
    assert good["http_first_line"] == "Hello CN=poupou, your certificate is valid"
    assert none_code == 1
    assert none["diagnosis"].startswith(
        "the server requires a client certificate and none was offered (HTTP 403"
    )
    if policy == "strict":
        assert bad_code == 1 and bad["http_status"] == 403
        assert bad["diagnosis"].startswith(
            "the server trusts `CN=My Own Test CA`, your certificate is issued by "
            "`CN=Untrusted Test CA`"
        )
    else:  # XSP's way: the page runs and says "NOT valid", and that is the verdict
        assert bad_code == 1 and bad["http_status"] == 200
        assert bad["diagnosis"] == (
            "the server trusts `CN=My Own Test CA`, your certificate is issued by "
            "`CN=Untrusted Test CA`: unable to get local issuer certificate "
            "(HTTP 200 OK, SSL_CLIENT_VERIFY in the page)"
        )
    assert "on the mutls server, `mutls certmgr -add -c Trust CA.cer`" in bad["fix"]
    assert "nginx" not in bad["fix"] and "s_server" not in bad["fix"]
