"""``mutls get`` against real local mTLS servers: openssl s_server and a stdlib echo server."""

from __future__ import annotations

import json
import os
import ssl
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from helpers import (
    FIXTURES,
    PASSWORD,
    MutlsServer,
    OpenSSLServer,
    PKIFiles,
    free_port,
    run_mutls,
    serving,
)

PAGE = "Hello from a secure session\n"
REQUIRE = ("-Verify", "1", "-verify_return_error")


@pytest.fixture(scope="module")
def site(test_pki: PKIFiles) -> Path:
    """s_server's -WWW directory: the article's page, next to the PKI files."""
    (test_pki.directory / "cctest.aspx").write_text(PAGE)
    return test_pki.directory


def s_server(test_pki: PKIFiles, *args: str) -> OpenSSLServer:
    """s_server with the test server certificate, trusting the test CA for clients."""
    p = test_pki
    return OpenSSLServer(
        "-cert", p.cert("server"), "-key", p.key("server"), "-CAfile", p.ca_cert,
        "-WWW", *args, cwd=p.directory,
    )  # fmt: skip


@pytest.fixture(scope="module", params=["-tls1_3", "-tls1_2"])
def require(request: pytest.FixtureRequest, test_pki: PKIFiles, site: Path) -> Iterator[str]:
    """A server that requires a valid client certificate; yields its base URL."""
    with s_server(test_pki, *REQUIRE, request.param) as server:
        yield f"https://localhost:{server.port}"


@pytest.fixture(scope="module")
def optional(test_pki: PKIFiles, site: Path) -> Iterator[str]:
    """A server that asks for a certificate but takes any (s_server's -verify without errors)."""
    with s_server(test_pki, "-verify", "1") as server:
        yield f"https://localhost:{server.port}"


class EchoHandler(BaseHTTPRequestHandler):
    """Answers with what it received, as JSON; ``/status/NNN`` answers NNN."""

    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        cert = self.connection.getpeercert()  # type: ignore[attr-defined]
        subject = dict(x[0] for x in cert["subject"]) if cert else None
        status = int(self.path.split("/")[2]) if self.path.startswith("/status/") else 200
        payload = json.dumps(
            {
                "method": self.command,
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body.decode(),
                "client": subject,
            }
        ).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def echo(test_pki: PKIFiles) -> Iterator[str]:
    """A Python mTLS server (client certificate optional) that echoes the request."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(test_pki.cert("server"), test_pki.key("server"))
    ctx.load_verify_locations(test_pki.ca_cert)
    ctx.verify_mode = ssl.CERT_OPTIONAL
    server = ThreadingHTTPServer(("127.0.0.1", 0), EchoHandler)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    with serving(server):
        yield f"https://localhost:{server.server_address[1]}"


def get(*args: str | os.PathLike[str], **kwargs: object):  # type: ignore[no-untyped-def]
    return run_mutls("get", *args, **kwargs)  # type: ignore[arg-type]


# -- the article and every way to give the certificate -------------------------------------


def test_article_command_verbatim(test_pki: PKIFiles, require: str) -> None:
    # hwr2.exe https://localhost:4433/cctest.aspx poupou.p12 s3kr3t, trusting the CA the way the
    # system does (SSL_CERT_FILE) rather than with a flag hwr2 did not have.
    result = get(
        f"{require}/cctest.aspx",
        "poupou.p12",
        PASSWORD,
        cwd=test_pki.directory,
        env={"SSL_CERT_FILE": str(test_pki.ca_cert)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == PAGE
    assert result.stderr == ""


def test_article_flow_with_the_trust_store(
    test_pki: PKIFiles, require: str, sandbox_home: Path
) -> None:
    # certmgr -add -c Trust root.cer, then hwr2's command line as it is: no trust flag at all.
    before = get(f"{require}/cctest.aspx", "poupou.p12", PASSWORD, cwd=test_pki.directory)
    assert before.returncode == 3 and "server certificate not trusted" in before.stderr
    added = run_mutls("certmgr", "-add", "-c", "Trust", test_pki.ca_cert)
    assert added.returncode == 0, added.stderr
    after = get(f"{require}/cctest.aspx", "poupou.p12", PASSWORD, cwd=test_pki.directory)
    assert after.returncode == 0, after.stderr
    assert after.stdout == PAGE


@pytest.mark.parametrize(
    "how",
    ["p12-pass", "p12-pass-file", "p12-pass-env", "pem-key", "pem-combined", "legacy-3des"],
)
def test_certificate_forms(test_pki: PKIFiles, require: str, tmp_path: Path, how: str) -> None:
    p = test_pki
    (tmp_path / "pw").write_text(PASSWORD + "\n")
    combined = tmp_path / "both.pem"
    combined.write_bytes(p.key("poupou").read_bytes() + p.cert("poupou").read_bytes())
    legacy = tmp_path / "legacy.p12"
    p.identities["poupou"].write_p12(legacy, PASSWORD, legacy=True)
    args: list[str | os.PathLike[str]] = {
        "p12-pass": ["--cert", p.p12("poupou"), "--pass", PASSWORD],
        "p12-pass-file": ["--cert", p.p12("poupou"), "--pass-file", tmp_path / "pw"],
        "p12-pass-env": ["--cert", p.p12("poupou"), "--pass-env", "POUPOU_PW"],
        "pem-key": ["--cert", p.cert("poupou"), "--key", p.key("poupou")],
        "pem-combined": ["--cert", combined],
        "legacy-3des": [legacy, PASSWORD],
    }[how]
    result = get(
        f"{require}/cctest.aspx", *args, "--cacert", p.ca_cert, env={"POUPOU_PW": PASSWORD}
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == PAGE


def test_rc2_p12_made_by_openssl_legacy(test_pki: PKIFiles, require: str, tmp_path: Path) -> None:
    import subprocess

    rc2 = tmp_path / "rc2.p12"
    subprocess.run(
        ["openssl", "pkcs12", "-export", "-legacy", "-in", test_pki.cert("poupou"),
         "-inkey", test_pki.key("poupou"), "-out", rc2, "-passout", f"pass:{PASSWORD}"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    assert b"RC2" in subprocess.run(
        ["openssl", "pkcs12", "-info", "-noout", "-legacy", "-in", rc2,
         "-passin", f"pass:{PASSWORD}"],
        capture_output=True, timeout=30,
    ).stderr  # fmt: skip
    result = get(f"{require}/cctest.aspx", rc2, PASSWORD, "--cacert", test_pki.ca_cert)
    assert result.returncode == 0, result.stderr
    assert result.stdout == PAGE


def test_mono_1024_bit_p12_is_refused_clearly(test_pki: PKIFiles, optional: str) -> None:
    result = get(optional, FIXTURES / "poupou.p12", PASSWORD, "--cacert", test_pki.ca_cert)
    assert result.returncode == 2
    assert "RSA 1024" in result.stderr and "re-issue" in result.stderr
    assert "Traceback" not in result.stderr


# -- exit codes and one-line reasons ---------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (None, "server requires a client certificate and none was given: add --cert"),
        ("untrusted", "issued by CN=Untrusted Test CA; it accepts certificates issued by "
                      "CN=My Own Test CA"),
        ("expired", "server refused CN=expired: it expired on"),
        ("server-only", "its extended key usage does not allow clientAuth"),
    ],
)  # fmt: skip
def test_refused_certificates_exit_3(
    test_pki: PKIFiles, require: str, name: str | None, message: str
) -> None:
    cert = ["--cert", str(test_pki.p12(name)), "--pass", PASSWORD] if name else []
    result = get(f"{require}/cctest.aspx", *cert, "--cacert", test_pki.ca_cert)
    assert result.returncode == 3, result.stderr
    assert result.stdout == ""
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_untrusted_server_exit_3_and_insecure_warns(test_pki: PKIFiles, optional: str) -> None:
    refused = get(optional, "--cacert", test_pki.other_ca_cert)
    assert refused.returncode == 3
    assert "server certificate not trusted" in refused.stderr
    assert "--cacert" in refused.stderr
    insecure = get(f"{optional}/cctest.aspx", "--insecure")
    assert insecure.returncode == 0
    assert insecure.stdout == PAGE
    assert "warning: --insecure" in insecure.stderr


def test_wrong_host_name_exit_3(test_pki: PKIFiles, tmp_path: Path) -> None:
    elsewhere = test_pki.ca.issue_server("elsewhere.example")
    elsewhere.write_pem(tmp_path / "e.pem", tmp_path / "e.key")
    with OpenSSLServer(
        "-cert", tmp_path / "e.pem", "-key", tmp_path / "e.key", "-www", cwd=tmp_path
    ) as server:  # fmt: skip
        result = get(f"https://localhost:{server.port}/", "--cacert", test_pki.ca_cert)
    assert result.returncode == 3
    assert "server certificate is for elsewhere.example, not localhost" in result.stderr


def test_connection_refused_exit_4() -> None:
    result = get(f"https://127.0.0.1:{free_port()}/")
    assert result.returncode == 4
    assert "cannot connect" in result.stderr


def test_not_tls_exit_3(tmp_path: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), EchoHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        result = get(f"https://127.0.0.1:{server.server_address[1]}/", "--insecure")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
    assert result.returncode == 3
    assert "HTTPS port" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ftp://localhost/"], "expected an https:// URL"),
        (["https://localhost/", "missing.p12", "x"], "missing.p12: no such"),
        (["https://localhost/", "--key", "k.pem"], "--key needs --cert"),
        (["https://localhost/", "--insecure", "--cacert", "x.pem"], "contradict"),
        (["https://localhost/", "--bogus"], "unrecognized arguments"),
    ],
)
def test_bad_input_exit_2(args: list[str], message: str) -> None:
    result = get(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_wrong_password_and_no_terminal_exit_2(test_pki: PKIFiles) -> None:
    wrong = get("https://localhost/", test_pki.p12("poupou"), "nope")
    assert wrong.returncode == 2
    assert "wrong password" in wrong.stderr
    unasked = get("https://localhost/", "--cert", test_pki.p12("poupou"))
    assert unasked.returncode == 2
    assert "--pass-file" in unasked.stderr


# -- HTTP: methods, headers, bodies, output options ------------------------------------------


def test_post_with_headers_and_data(test_pki: PKIFiles, echo: str) -> None:
    result = get(
        f"{echo}/form?x=1", test_pki.p12("poupou"), PASSWORD, "--cacert", test_pki.ca_cert,
        "-H", "X-One: 1", "-H", "X-Two: two", "-d", "a=b",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["method"] == "POST"
    assert seen["path"] == "/form?x=1"
    assert seen["headers"]["x-one"] == "1" and seen["headers"]["x-two"] == "two"
    assert seen["body"] == "a=b"
    assert seen["client"] == {"commonName": "poupou"}


def test_method_and_data_from_file(test_pki: PKIFiles, echo: str, tmp_path: Path) -> None:
    (tmp_path / "body.json").write_text('{"k": 1}')
    result = get(
        echo, "-X", "put", "-d", f"@{tmp_path / 'body.json'}",
        "-H", "Content-Type: application/json", "--cacert", test_pki.ca_cert,
    )  # fmt: skip
    seen = json.loads(result.stdout)
    assert (seen["method"], seen["body"]) == ("PUT", '{"k": 1}')
    assert seen["headers"]["content-type"] == "application/json"
    assert seen["client"] is None


def test_http_error_status_exit_1_body_on_stdout(test_pki: PKIFiles, echo: str) -> None:
    result = get(f"{echo}/status/404", "--cacert", test_pki.ca_cert)
    assert result.returncode == 1
    assert json.loads(result.stdout)["path"] == "/status/404"
    assert "HTTP/1.1 404" in result.stderr
    assert "add --cert" in result.stderr  # the server asked, and nothing was given


def test_output_include_and_verbose(test_pki: PKIFiles, echo: str, tmp_path: Path) -> None:
    out = tmp_path / "page.json"
    result = get(
        echo, test_pki.p12("poupou"), PASSWORD, "--cacert", test_pki.ca_cert,
        "-o", out, "-i", "-v",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(out.read_text())["client"] == {"commonName": "poupou"}
    assert result.stdout.startswith("HTTP/1.1 200 OK\n")  # text mode folds \r\n
    assert "Content-Type: application/json" in result.stdout
    assert "* TLSv1.3, cipher" in result.stderr
    assert "* server certificate: CN=localhost, issued by CN=My Own Test CA" in result.stderr
    # Python's ssl server names no CAs in its CertificateRequest.
    assert "* server requested a client certificate (accepted CAs: none named)" in result.stderr
    assert "* client certificate sent: CN=poupou" in result.stderr


# -- key log ---------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["-tls1_3", "-tls1_2"])
def test_keylog_matches_the_servers(test_pki: PKIFiles, tmp_path: Path, version: str) -> None:
    server_log, client_log = tmp_path / "server.keys", tmp_path / "client.keys"
    with s_server(test_pki, *REQUIRE, version, "-keylogfile", str(server_log)) as server:
        result = get(
            f"https://localhost:{server.port}/cctest.aspx", test_pki.p12("poupou"), PASSWORD,
            "--cacert", test_pki.ca_cert, "--keylog", client_log,
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(client_log.stat().st_mode) == 0o600
    lines = client_log.read_text().splitlines()
    labels = {line.split()[0] for line in lines}
    if version == "-tls1_3":
        assert {
            "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
            "SERVER_HANDSHAKE_TRAFFIC_SECRET",
            "CLIENT_TRAFFIC_SECRET_0",
            "SERVER_TRAFFIC_SECRET_0",
        } <= labels
    else:
        assert labels == {"CLIENT_RANDOM"}
    randoms = {line.split()[1] for line in lines}
    assert len(randoms) == 1 and len(randoms.pop()) == 64  # one connection, 32-byte random
    server_lines = {ln for ln in server_log.read_text().splitlines() if not ln.startswith("#")}
    assert set(lines) <= server_lines  # the very secrets the server used


def test_sslkeylogfile_env(test_pki: PKIFiles, optional: str, tmp_path: Path) -> None:
    log = tmp_path / "env.keys"
    result = get(optional, "--cacert", test_pki.ca_cert, env={"SSLKEYLOGFILE": str(log)})
    assert result.returncode == 0, result.stderr
    assert "CLIENT_TRAFFIC_SECRET_0" in log.read_text()
    assert stat.S_IMODE(log.stat().st_mode) == 0o600


# -- the Python helpers with third-party clients ------------------------------------------------


def test_httpx_and_urllib_with_ssl_context(test_pki: PKIFiles, require: str) -> None:
    import urllib.request

    import httpx

    from mutls.client import ssl_context

    ctx = ssl_context(test_pki.p12("poupou"), PASSWORD, cafile=test_pki.ca_cert)
    assert httpx.get(f"{require}/cctest.aspx", verify=ctx).text == PAGE
    with urllib.request.urlopen(f"{require}/cctest.aspx", context=ctx, timeout=30) as answer:
        assert answer.read().decode() == PAGE
    without = ssl_context(cafile=test_pki.ca_cert)
    with pytest.raises(httpx.HTTPError):  # the server's alert, whenever httpx reads it
        httpx.get(f"{require}/cctest.aspx", verify=without)


def test_requests_adapter(test_pki: PKIFiles, require: str) -> None:
    import requests

    from mutls.client import requests_adapter

    session = requests.Session()
    adapter = requests_adapter(
        test_pki.p12("poupou"), PASSWORD, cafile=test_pki.ca_cert, session=session
    )
    answer = session.get(f"{require}/cctest.aspx", timeout=30)
    assert (answer.status_code, answer.text) == (200, PAGE)
    # requests loads its own CA bundle into the context it is given unless told not to: the
    # adapter's context must still trust the test CA alone after a request.
    assert len(adapter.ssl_context.get_ca_certs()) == 1
    without = requests.Session()
    requests_adapter(cafile=test_pki.ca_cert, session=without)
    with pytest.raises(requests.exceptions.RequestException):
        without.get(f"{require}/cctest.aspx", timeout=30)


# -- against mutls's own server ------------------------------------------------------------------


def test_against_mutls_xsp(test_pki: PKIFiles) -> None:
    p = test_pki
    with MutlsServer(
        "xsp", "--https-client-require", "--verify", "strict", "--reject-at-handshake",
        "--p12file", p.p12("server"), "--pkpwd", PASSWORD, "--client-ca", p.ca_cert,
        cwd=p.directory,
    ) as server:  # fmt: skip
        url = f"https://localhost:{server.port}/cctest.aspx"
        accepted = get(url, "poupou.p12", PASSWORD, "--cacert", p.ca_cert, cwd=p.directory)
        missing = get(url, "--cacert", p.ca_cert)
        expired = get(url, p.p12("expired"), PASSWORD, "--cacert", p.ca_cert)
    assert accepted.returncode == 0, accepted.stderr
    assert "Hello CN=poupou, your certificate is valid" in accepted.stdout
    assert missing.returncode == 3
    assert "server requires a client certificate and none was given: add --cert" in missing.stderr
    assert expired.returncode == 1
    assert "certificate has expired" in expired.stdout and "403" in expired.stderr


def test_password_prompt_on_a_terminal(test_pki: PKIFiles, require: str) -> None:
    import pty
    import select
    import sys
    import time

    argv = [sys.executable, "-m", "mutls", "get", f"{require}/cctest.aspx",
            "--cert", str(test_pki.p12("poupou")), "--cacert", str(test_pki.ca_cert)]  # fmt: skip
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        os.execv(sys.executable, argv)  # noqa: S606 - a real terminal needs a real exec
        os._exit(127)
    out, sent, deadline = b"", False, time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            if not select.select([fd], [], [], 1)[0]:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
            if b"Password for " in out and not sent:
                os.write(fd, PASSWORD.encode() + b"\n")
                sent = True
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    assert sent, out
    assert os.waitstatus_to_exitcode(status) == 0, out
    assert PAGE.strip().encode() in out
    assert PASSWORD.encode() not in out  # not echoed


def test_ipv6_literal_url(test_pki: PKIFiles) -> None:
    import socket

    class V6Server(ThreadingHTTPServer):
        address_family = socket.AF_INET6

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(test_pki.cert("server"), test_pki.key("server"))
    server = V6Server(("::1", 0), EchoHandler)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        result = get(f"https://[::1]:{server.server_address[1]}/v6", "--cacert", test_pki.ca_cert)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["path"] == "/v6"
    assert seen["headers"]["host"] == f"[::1]:{server.server_address[1]}"


def test_verbose_summary_on_tls_failure(test_pki: PKIFiles, require: str) -> None:
    result = get(require, test_pki.p12("untrusted"), PASSWORD, "--cacert", test_pki.ca_cert, "-v")
    assert result.returncode == 3
    assert "* client certificate sent: CN=mallory" in result.stderr
    assert result.stderr.rstrip().splitlines()[-1].startswith("mutls get: server does not trust")


def test_silent_server_times_out_exit_4() -> None:
    import socket

    with socket.socket() as silent:  # accepts TCP (the kernel does) but never speaks TLS
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        result = get(f"https://127.0.0.1:{port}/", "--timeout", "1", "--insecure")
    assert result.returncode == 4
    assert "no answer within 1 s (--timeout)" in result.stderr
