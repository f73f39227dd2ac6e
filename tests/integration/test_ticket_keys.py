"""Sessions resume across instances, workers and generations: ``--ticket-key-file``.

``openssl s_client`` makes a session on one ``mutls serve`` and offers it to another
(``-sess_out`` / ``-sess_in``): with the same key files it resumes, and the client's
certificate is judged again there (an instance whose CRL revokes it says so on the resumed
session); with other keys it does not resume. With ``--workers 2``, a session resumes on
whichever worker answers, and still after a SIGHUP has replaced every worker.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from mutls import pki

from helpers import PASSWORD, PKIFiles, free_port, mutls_process

pytestmark = pytest.mark.needs("openssl")

VERSIONS = pytest.mark.parametrize("version", ["-tls1_3", "-tls1_2"])
REQUEST = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"


def children_of(pid: int) -> set[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return {int(p) for p in path.read_text().split()} if path.exists() else set()


def key_file(path: Path) -> Path:
    path.write_bytes(os.urandom(80))
    path.chmod(0o600)
    return path


def s_client(
    test_pki: PKIFiles, port: int, version: str, *, out: Path | None = None, use: Path | None = None
) -> str:
    """One request with poupou's certificate; s_client's whole output.

    No ``-CAfile``: OpenSSL would build the client's chain from it and send the root too, and
    a ticket whose client sent more than its leaf resumes only in the process that saw that
    list (``ChainHints``, docs/tls.md). The server's certificate is not checked here.
    """
    args = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost"]
    args += ["-cert", str(test_pki.cert("poupou"))]
    args += ["-key", str(test_pki.key("poupou")), "-ign_eof", version]
    if out is not None:
        args += ["-sess_out", str(out)]
    if use is not None:
        args += ["-sess_in", str(use)]
    done = subprocess.run(args, input=REQUEST, capture_output=True, timeout=20)
    return done.stdout.decode("utf-8", "replace")


def resumed(output: str) -> bool:
    assert "Reused, TLS" in output or "New, TLS" in output, output
    return "Reused, TLS" in output


def serve(test_pki: PKIFiles, port: int, *extra: str | Path) -> list[str]:
    return [
        "serve", "--p12", str(test_pki.p12("server")), "--pkpwd", PASSWORD,
        "--port", str(port), "--client-cert", "require", "--verify", "report",
        "--client-ca", str(test_pki.ca_cert), *map(str, extra),
    ]  # fmt: skip


@VERSIONS
def test_two_instances_with_the_same_keys_resume_each_other(
    test_pki: PKIFiles, tmp_path: Path, version: str
) -> None:
    shared, other = key_file(tmp_path / "shared.key"), key_file(tmp_path / "other.key")
    revoking = tmp_path / "revokes-poupou.crl"
    pki.write_crl(revoking, test_pki.ca.crl([test_pki.identities["poupou"].certificate]))
    a, b, c, d = (free_port() for _ in range(4))
    session = tmp_path / "session.pem"
    with (
        mutls_process(serve(test_pki, a, "--ticket-key-file", shared), tmp_path, tmp_path / "a"),
        mutls_process(serve(test_pki, b, "--ticket-key-file", shared), tmp_path, tmp_path / "b"),
        mutls_process(
            serve(test_pki, c, "--ticket-key-file", shared, "--crl", revoking),
            tmp_path,
            tmp_path / "c",
        ),
        mutls_process(serve(test_pki, d, "--ticket-key-file", other), tmp_path, tmp_path / "d"),
    ):
        first = s_client(test_pki, a, version, out=session)
        assert not resumed(first) and "your certificate is valid" in first
        on_b = s_client(test_pki, b, version, use=session)
        assert resumed(on_b), on_b
        assert "Hello CN=poupou, your certificate is valid" in on_b
        on_c = s_client(test_pki, c, version, use=session)
        assert resumed(on_c), on_c  # the same keys read the ticket; the verdict is C's own
        assert "your certificate is NOT valid" in on_c and "certificate revoked" in on_c
        on_d = s_client(test_pki, d, version, use=session)
        assert not resumed(on_d), on_d  # other keys: a full handshake, which succeeds
        assert "your certificate is valid" in on_d
        print(f"\n{version}: A -> B resumed, A -> C resumed and judged revoked, A -> D not resumed")


def test_sessions_resume_on_every_worker_and_after_a_reload(
    test_pki: PKIFiles, tmp_path: Path
) -> None:
    port = free_port()
    log = tmp_path / "server.log"
    session = tmp_path / "session.pem"
    with mutls_process(serve(test_pki, port, "--workers", "2"), tmp_path, log) as server:
        deadline = time.monotonic() + 20
        while len(children_of(server.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not resumed(s_client(test_pki, port, "-tls1_3", out=session))
        tries = [resumed(s_client(test_pki, port, "-tls1_3", use=session)) for _ in range(6)]
        assert all(tries), tries  # whichever worker took the connection
        first = children_of(server.pid)
        server.send_signal(signal.SIGHUP)
        while "generation 2 serving" not in log.read_text() or (
            children_of(server.pid) & first or len(children_of(server.pid)) < 2
        ):
            assert time.monotonic() < deadline + 15, log.read_text()
            time.sleep(0.05)
        after = [resumed(s_client(test_pki, port, "-tls1_3", use=session)) for _ in range(4)]
        assert all(after), after  # the new generation has the same keys
        print(f"\n--workers 2: {sum(tries)}/6 resumed, after SIGHUP {sum(after)}/4 resumed")
