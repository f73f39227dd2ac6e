"""The server's logs as an operator reads them, from real ``mutls serve`` processes: an access
line per request (text and JSON) with the TLS facts and the verdict, ``--no-access-log``,
``--log-config`` in JSON and TOML (and one clear line for a broken one), start-up lines that are
JSON too, and failed handshakes logged at most once per peer per interval."""

from __future__ import annotations

import json
import re
import signal
import socket
import ssl
from pathlib import Path

import pytest

from helpers import PKIFiles, curl, free_port, mutls_process, run_mutls, wait_for_text

TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def tls_args(test_pki: PKIFiles, port: int) -> list[str]:
    return [
        "serve", "--port", str(port),
        "--cert", str(test_pki.cert("server")), "--key", str(test_pki.key("server")),
        "--client-cert", "optional", "--verify", "report", "--client-ca", str(test_pki.ca_cert),
        "--crl", str(test_pki.crl_path),
    ]  # fmt: skip


def with_cert(test_pki: PKIFiles, name: str) -> list[str]:
    """curl's options for ``name``'s certificate, over HTTP/1.1 (curl would choose h2: the
    lines of HTTP/2 requests are checked in test_server_metrics.py)."""
    cert, key = str(test_pki.cert(name)), str(test_pki.key(name))
    return ["--http1.1", "--cacert", str(test_pki.ca_cert), "--cert", cert, "--key", key]


def get(
    port: int, context: ssl.SSLContext, session: ssl.SSLSession | None = None
) -> tuple[bytes, ssl.SSLSession | None, bool]:
    """One request over a new connection: (answer, the session to resume, resumed or not)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="localhost", session=session) as tls:
            tls.sendall(
                b"GET /cctest.aspx HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
            )
            answer = b""
            while chunk := tls.recv(65536):
                answer += chunk
            return answer, tls.session, tls.session_reused


def client_context(test_pki: PKIFiles, name: str) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(test_pki.ca_cert))
    context.load_cert_chain(test_pki.cert(name), test_pki.key(name))
    return context


def stop(process: object, log: Path) -> str:
    """SIGTERM, wait for the exit, the whole log."""
    process.send_signal(signal.SIGTERM)  # type: ignore[attr-defined]
    assert process.wait(20) == 0  # type: ignore[attr-defined]
    return log.read_text()


def access_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if " INFO mutls.access: " in line]


def test_access_lines_in_text(test_pki: PKIFiles, tmp_path: Path) -> None:
    port, log = free_port(), tmp_path / "server.log"
    with mutls_process(tls_args(test_pki, port), tmp_path, log) as process:
        url = f"https://localhost:{port}/cctest.aspx"
        assert "your certificate is valid" in curl(url, *with_cert(test_pki, "poupou")).stdout
        assert "NOT valid" in curl(url, *with_cert(test_pki, "expired")).stdout
        anonymous = curl(f"{url}?x=1", "--http1.1", "--cacert", str(test_pki.ca_cert)).stdout
        assert "insecure" not in anonymous
        context = client_context(test_pki, "poupou")
        first, session, resumed = get(port, context)
        assert b"your certificate is valid" in first and not resumed
        again, _, resumed = get(port, context, session)
        assert b"your certificate is valid" in again and resumed, "the session did not resume"
        wait_for_text(log, " INFO mutls.access: ", 5)
        text = stop(process, log)
    lines = access_lines(text)
    assert len(lines) == 5, text
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
    pid = f"pid={process.pid}"
    valid, expired, anonymous, full, resumed_line = lines
    assert re.match(
        rf'{stamp} INFO mutls.access: 127\.0\.0\.1:\d+ "GET /cctest\.aspx HTTP/1\.1" 200 \d+ '
        rf'\d+\.\d{{3}}ms TLSv1\.3 resumed=no subject="CN=poupou" verify=SUCCESS {pid}$',
        valid,
    ), valid
    assert 'subject="CN=expired" verify=FAILED:certificate has expired' in expired
    assert '"GET /cctest.aspx?x=1 HTTP/1.1" 200' in anonymous
    assert "resumed=no subject=- verify=NONE" in anonymous
    assert "resumed=no" in full and 'subject="CN=poupou" verify=SUCCESS' in full
    # a resumed session: the verdict is the one a full handshake would give now
    assert 'TLSv1.3 resumed=yes subject="CN=poupou" verify=SUCCESS' in resumed_line
    # every line, the start-up ones too, has the same timestamped shape
    for line in text.splitlines():
        assert re.match(rf"{stamp} (DEBUG|INFO|WARNING|ERROR) mutls(\.\w+)?: ", line), line
    assert re.search(rf"{stamp} INFO mutls: serving on https://localhost:{port}/", text)


def test_access_lines_in_json_and_start_up_lines_too(test_pki: PKIFiles, tmp_path: Path) -> None:
    port, log = free_port(), tmp_path / "server.log"
    args = [*tls_args(test_pki, port), "--log-format", "json"]
    with mutls_process(args, tmp_path, log) as process:
        url = f"https://localhost:{port}/cctest.aspx"
        assert "valid" in curl(url, *with_cert(test_pki, "poupou")).stdout
        assert "NOT valid" in curl(url, *with_cert(test_pki, "revoked"), "--http1.1").stdout
        wait_for_text(log, '"logger": "mutls.access"', 2)
        text = stop(process, log)
    entries = [json.loads(line) for line in text.splitlines()]  # every line is one object
    for entry in entries:
        assert (
            TIME.match(entry["time"])
            and entry["pid"] > 0
            and entry["level"]
            in (
                "INFO",
                "WARNING",
            )
        )
    start = [e for e in entries if e["logger"] == "mutls"]
    assert any(
        e["message"] == f"serving on https://localhost:{port}/ (listening on 127.0.0.1)"
        for e in start
    )
    assert any(e["message"].startswith("mode: HTTPS, client certificate optional") for e in start)
    access = [e for e in entries if e["logger"] == "mutls.access"]
    assert len(access) == 2
    valid, revoked = access
    assert valid["status"] == 200 and valid["method"] == "GET" and valid["target"] == "/cctest.aspx"
    assert valid["tls_version"] == "TLSv1.3" and valid["resumed"] is False
    assert valid["client_subject"] == "CN=poupou" and valid["client_verify"] == "SUCCESS"
    assert valid["pid"] == process.pid and valid["client"].startswith("127.0.0.1:")
    assert isinstance(valid["bytes"], int) and valid["bytes"] > 0
    assert isinstance(valid["duration"], float) and valid["duration"] >= 0
    assert valid["http_version"] == "1.1" and valid["message"] == "GET /cctest.aspx 200"
    assert revoked["client_verify"].startswith("FAILED:") and "revoked" in revoked["client_verify"]


def test_no_access_log_gives_no_access_line(test_pki: PKIFiles, tmp_path: Path) -> None:
    port, log = free_port(), tmp_path / "server.log"
    with mutls_process([*tls_args(test_pki, port), "--no-access-log"], tmp_path, log) as process:
        for _ in range(3):
            answer = curl(f"https://localhost:{port}/cctest.aspx", *with_cert(test_pki, "poupou"))
            assert "your certificate is valid" in answer.stdout
        text = stop(process, log)
    assert "mutls: serving on" in text and "mutls.server: stopped" in text
    assert " mutls.access: " not in text and '"GET ' not in text


@pytest.mark.parametrize("kind", ["json", "toml"])
def test_log_config_in_json_and_toml(test_pki: PKIFiles, tmp_path: Path, kind: str) -> None:
    written = tmp_path / "mutls-log.jsonl"
    if kind == "json":
        config = {
            "version": 1,
            "formatters": {"one": {"()": "mutls.server.log.JSONFormatter"}},
            "handlers": {
                "file": {
                    "class": "logging.FileHandler",
                    "filename": str(written),
                    "formatter": "one",
                }
            },
            "loggers": {"mutls": {"handlers": ["file"], "level": "INFO"}},
        }
        (tmp_path / "log.json").write_text(json.dumps(config))
    else:
        (tmp_path / "log.toml").write_text(
            "version = 1\n"
            '[formatters.one]\n"()" = "mutls.server.log.JSONFormatter"\n'
            f'[handlers.file]\nclass = "logging.FileHandler"\nfilename = "{written}"\n'
            'formatter = "one"\n'
            '[loggers.mutls]\nhandlers = ["file"]\nlevel = "INFO"\n'
        )
    port, log = free_port(), tmp_path / "stderr.log"
    args = [*tls_args(test_pki, port), "--log-config", f"log.{kind}"]
    # the start-up lines go to the configured file: wait for the port instead of stderr
    with mutls_process_file(args, tmp_path, log, written) as process:
        answer = curl(f"https://localhost:{port}/cctest.aspx", *with_cert(test_pki, "poupou"))
        assert "your certificate is valid" in answer.stdout
        wait_for_text(written, '"logger": "mutls.access"')
        stop(process, log)
    entries = [json.loads(line) for line in written.read_text().splitlines()]
    assert any(e["message"].startswith("serving on https://") for e in entries)
    access = [e for e in entries if e["logger"] == "mutls.access"]
    assert [(e["status"], e["client_subject"]) for e in access] == [(200, "CN=poupou")]
    assert log.read_text() == ""  # nothing left for stderr: the file took it all


def mutls_process_file(args: list[str], cwd: Path, log: Path, written: Path) -> object:
    """mutls_process for a server whose start-up lines go to ``written``, not stderr."""
    import contextlib
    import subprocess
    import sys
    import time

    from helpers import stop_process

    @contextlib.contextmanager
    def running():  # type: ignore[no-untyped-def]
        with log.open("wb") as err:
            process = subprocess.Popen(
                [sys.executable, "-m", "mutls", *args], cwd=cwd, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=err,
            )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while not written.exists() or "serving on" not in written.read_text():
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
            yield process
        finally:
            if process.poll() is None:
                stop_process(process)

    return running()


@pytest.mark.parametrize(
    ("name", "content", "said"),
    [
        ("broken.json", '{"version": 1,', "--log-config broken.json: not valid JSON: "),
        ("broken.toml", "version = = 1", "--log-config broken.toml: not valid TOML: "),
        ("old.json", '{"handlers": {}}', "--log-config old.json: a logging dictConfig needs"),
        ("log.yaml", "version: 1", "--log-config log.yaml: name it .json or .toml"),
        (
            "nohandler.json",
            '{"version": 1, "handlers": {"h": {"class": "nowhere.Handler"}}}',
            "--log-config nohandler.json: Unable to configure handler 'h' (Cannot resolve",
        ),
    ],
)
def test_a_bad_log_config_is_one_clear_line(
    test_pki: PKIFiles, tmp_path: Path, name: str, content: str, said: str
) -> None:
    (tmp_path / name).write_text(content)
    done = run_mutls(*tls_args(test_pki, free_port()), "--log-config", name, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith(f"mutls serve: {said}"), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_missing_log_config_and_bad_flags(test_pki: PKIFiles, tmp_path: Path) -> None:
    base = tls_args(test_pki, free_port())
    for extra, said in [
        (["--log-config", "none.json"], "--log-config none.json: No such file or directory"),
        (["--log-level", "loud"], "--log-level loud: use one of debug, info, warning"),
        (["--log-format", "xml"], "--log-format xml: use text or json"),
        (["--verbose", "--log-level", "error"], "--verbose and --log-level error contradict"),
    ]:
        done = run_mutls(*base, *extra, cwd=tmp_path)
        assert done.returncode == 2 and done.stderr.startswith(f"mutls serve: {said}"), done.stderr


def test_failed_handshakes_are_logged_rate_limited_per_peer(
    test_pki: PKIFiles, tmp_path: Path
) -> None:
    port, log = free_port(), tmp_path / "server.log"
    with mutls_process(tls_args(test_pki, port), tmp_path, log) as process:
        # 30: under --max-failures-per-source's 32, past which the address's connections are
        # held and closed instead (tests/integration/test_source_budget.py)
        for _ in range(30):  # a ClientHello that is not one: the handshake fails
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(b"\x16\x03\x01\x00\x05hello")
                assert sock.recv(100).startswith(b"\x15\x03")  # an alert record back
        # the server still serves, and says so in the access log
        assert "valid" in curl(f"https://localhost:{port}/", *with_cert(test_pki, "poupou")).stdout
        wait_for_text(log, " INFO mutls.access: ")
        text = stop(process, log)
    failures = [line for line in text.splitlines() if " mutls.handshake: " in line]
    assert 1 <= len(failures) <= 2, failures  # 30 failures in well under 2 intervals
    assert re.search(
        r" INFO mutls\.handshake: TLS handshake with 127\.0\.0\.1:\d+ failed: .*unexpected message"
        r".* \(alert sent: unexpected_message, received: none\)",
        failures[0],
    ), failures[0]


def test_both_commands_take_the_flags_the_docs_name() -> None:
    from mutls.cli import serve, xsp

    docs = (Path(__file__).resolve().parents[2] / "docs" / "server.md").read_text()
    flags = ["--no-access-log", "--log-level", "--log-format", "--log-config", "--metrics-address"]
    for flag in flags:
        assert f"`{flag}" in docs, flag
    for parser in (serve.build_parser(), xsp.build_parser()):
        shown = parser.format_help()
        assert all(flag in shown for flag in flags)


def test_in_json_a_failed_start_is_a_json_line_too(tmp_path: Path) -> None:
    port, log = free_port(), tmp_path / "first.log"
    with mutls_process(["serve", "--port", str(port), "--log-format", "json"], tmp_path, log):
        done = run_mutls("serve", "--port", str(port), "--log-format", "json", cwd=tmp_path)
    assert done.returncode == 2
    (entry,) = [json.loads(line) for line in done.stderr.splitlines()]
    assert entry["level"] == "ERROR" and entry["logger"] == "mutls"
    assert entry["message"].startswith(f"cannot listen on 127.0.0.1:{port}: ")
