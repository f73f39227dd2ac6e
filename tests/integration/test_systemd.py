"""systemd without systemd: readiness datagrams on a notify socket bound here (READY=1 once
listening, RELOADING=1 with MONOTONIC_USEC then READY=1 around SIGHUP, STOPPING=1 on SIGTERM;
from the main process only, with --workers too), socket activation by systemd-socket-activate
(LISTEN_FDS) and --fd, each reached by a TLS client presenting a certificate."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import PKIFiles, free_port, stop_process

SERVE = [sys.executable, "-m", "mutls", "serve"]


def tls_args(p: PKIFiles) -> list[str]:
    return [
        *("--cert", str(p.cert("server")), "--key", str(p.key("server"))),
        *("--client-cert", "require", "--client-ca", str(p.ca_cert)),
    ]


@contextlib.contextmanager
def notify_socket(tmp_path: Path, abstract: bool = False) -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket where systemd would listen, and the NOTIFY_SOCKET value naming it."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if abstract:
        name = f"mutls-test-{os.getpid()}-{time.monotonic_ns()}"
        sock.bind("\0" + name)
        value = "@" + name
    else:
        value = str(tmp_path / "notify")
        sock.bind(value)
    sock.settimeout(30)
    try:
        yield sock, value
    finally:
        sock.close()


def next_message(sock: socket.socket) -> dict[str, str]:
    data = sock.recv(4096).decode()
    return dict(line.split("=", 1) for line in data.splitlines() if line)


def fetch(p: PKIFiles, port: int, timeout: float = 30) -> str:
    """GET /cctest.aspx with poupou's certificate; the body."""
    context = ssl.create_default_context(cafile=str(p.ca_cert))
    context.load_cert_chain(p.cert("poupou"), p.key("poupou"))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as sock,
    ):
        sock.sendall(b"GET /cctest.aspx HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), data
    return body.decode()


def started(
    args: list[str], env: dict[str, str], log: Path, **kwargs: object
) -> subprocess.Popen[bytes]:
    with log.open("wb") as err:
        return subprocess.Popen(
            args,
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            **kwargs,  # type: ignore[call-overload]
        )


@pytest.mark.parametrize(("abstract", "workers"), [(False, "1"), (True, "1"), (False, "2")])
def test_readiness_reload_and_stop(
    test_pki: PKIFiles, tmp_path: Path, abstract: bool, workers: str
) -> None:
    port = free_port()
    with notify_socket(tmp_path, abstract) as (sock, value):
        process = started(
            [*SERVE, *tls_args(test_pki), "--port", str(port), "--workers", workers],
            {"NOTIFY_SOCKET": value},
            tmp_path / "server.log",
        )
        try:
            assert next_message(sock) == {"READY": "1"}, (tmp_path / "server.log").read_text()
            assert "Hello CN=poupou, your certificate is valid" in fetch(test_pki, port)
            before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
            process.send_signal(signal.SIGHUP)
            reloading = next_message(sock)
            assert reloading["RELOADING"] == "1"
            assert int(reloading["MONOTONIC_USEC"]) >= before
            assert next_message(sock) == {"READY": "1"}
            process.send_signal(signal.SIGTERM)
            assert next_message(sock) == {"STOPPING": "1"}
            assert process.wait(30) == 0
            # nothing else: the workers said nothing (systemd would refuse them)
            sock.settimeout(0.2)
            with pytest.raises(TimeoutError):
                sock.recv(4096)
        finally:
            if process.poll() is None:
                stop_process(process)


def test_no_notify_socket_no_harm(test_pki: PKIFiles, tmp_path: Path) -> None:
    """A NOTIFY_SOCKET nobody listens on: one warning, and the server serves."""
    port = free_port()
    log = tmp_path / "server.log"
    process = started(
        [*SERVE, *tls_args(test_pki), "--port", str(port)],
        {"NOTIFY_SOCKET": str(tmp_path / "nobody")},
        log,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError):
                assert "valid" in fetch(test_pki, port, timeout=5)
                break
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
    finally:
        stop_process(process)
    assert "NOTIFY_SOCKET: cannot tell systemd READY=1" in log.read_text()


@pytest.mark.needs("systemd-socket-activate")
@pytest.mark.parametrize("workers", ["1", "2"])
def test_socket_activation(test_pki: PKIFiles, tmp_path: Path, workers: str) -> None:
    """systemd-socket-activate listens and starts mutls at the first connection, passing the
    socket as fd 3 (LISTEN_FDS=1, LISTEN_PID); that first client is served."""
    port = free_port()
    log = tmp_path / "server.log"
    with notify_socket(tmp_path) as (sock, value):
        process = started(
            [
                *("systemd-socket-activate", "-l", f"127.0.0.1:{port}"),
                *("-E", f"NOTIFY_SOCKET={value}"),
                *SERVE,
                *tls_args(test_pki),
                *("--port", "1", "--workers", workers),  # unused: the socket is systemd's
            ],
            {},
            log,
        )
        try:
            deadline = time.monotonic() + 30
            while not log.read_bytes().startswith(b"Listening on"):
                assert time.monotonic() < deadline and process.poll() is None, log.read_text()
                time.sleep(0.05)
            assert "Hello CN=poupou, your certificate is valid" in fetch(test_pki, port)
            assert next_message(sock) == {"READY": "1"}
            assert "Hello CN=poupou" in fetch(test_pki, port)
        finally:
            stop_process(process)
    text = log.read_text()
    assert f"serving on https://localhost:{port}/" in text, text


def test_fd(test_pki: PKIFiles, tmp_path: Path) -> None:
    """--fd N serves a listening socket the parent opened (here, with two workers)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        fd = listener.fileno()
        process = started(
            [*SERVE, *tls_args(test_pki), "--fd", str(fd), "--workers", "2"],
            {},
            tmp_path / "server.log",
            pass_fds=(fd,),
        )
        try:
            assert "Hello CN=poupou, your certificate is valid" in fetch(test_pki, port)
            assert "Hello CN=poupou" in fetch(test_pki, port)
        finally:
            stop_process(process)


def test_fd_not_a_listening_socket(test_pki: PKIFiles, tmp_path: Path) -> None:
    with open(tmp_path / "file", "wb") as handle, socket.socket() as unbound:
        for fd, why in ((handle.fileno(), "not a socket"), (unbound.fileno(), "not listening")):
            done = subprocess.run(
                [*SERVE, *tls_args(test_pki), "--fd", str(fd)],
                pass_fds=(fd,),
                capture_output=True,
                text=True,
                timeout=60,
                stdin=subprocess.DEVNULL,
            )
            assert done.returncode != 0
            assert f"--fd {fd}: " in done.stderr and why in done.stderr, done.stderr
            assert "Traceback" not in done.stderr
