"""docs/deploy.md's setups, taken from the page and run: the systemd unit's ExecStart under
systemd-socket-activate (as the .socket unit would start it, with a notify socket), the nginx
server block with real nginx in front of the page's mutls command, and the Dockerfile's CMD
(without a container: no Docker daemon here). Paths and ports are the only things replaced."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from docs_runner import read_page
from helpers import PKIFiles, free_port, run_nginx, stop_process, wait_for_port

PAGE = "docs/deploy.md"
MUTLS = str(Path(sys.executable).parent / "mutls")

APP = """
import json

def app(environ, start_response):
    body = json.dumps({key: environ.get(key) for key in (
        "REMOTE_ADDR", "wsgi.url_scheme", "SSL_CLIENT_VERIFY", "SSL_CLIENT_S_DN",
        "HTTP_X_FORWARDED_FOR")}).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
"""


def block(lang: str, containing: str) -> str:
    """The page's one ``lang`` block that contains ``containing``."""
    found = [b.text for b in read_page(PAGE).blocks if b.lang == lang and containing in b.text]
    assert len(found) == 1, f"{PAGE}: {len(found)} {lang} blocks with {containing!r}"
    return found[0]


def unit_setting(unit: str, name: str) -> str:
    match = re.search(rf"^{name}=(.*)$", unit, re.MULTILINE)
    assert match is not None, f"no {name}= in the unit"
    return match.group(1).strip()


@pytest.fixture
def files(test_pki: PKIFiles, tmp_path: Path) -> Path:
    """The page's files: server.pem/.key and ca.pem (root.pem too, for the nginx preamble),
    and the app, myapp.py."""
    directory = tmp_path / "files"
    directory.mkdir()
    for name in ("server.pem", "server.key"):
        shutil.copy(test_pki.directory / name, directory / name)
    shutil.copy(test_pki.ca_cert, directory / "ca.pem")
    shutil.copy(test_pki.ca_cert, directory / "root.pem")
    (directory / "myapp.py").write_text(APP)
    return directory


def fetch(p: PKIFiles, port: int, name: str = "poupou", timeout: float = 30) -> dict[str, str]:
    context = ssl.create_default_context(cafile=str(p.ca_cert))
    context.load_cert_chain(p.cert(name), p.key(name))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as sock,
    ):
        sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), data
    result: dict[str, str] = json.loads(body)
    return result


@pytest.mark.needs("systemd-socket-activate")
def test_the_unit_files_exec_start(test_pki: PKIFiles, files: Path, tmp_path: Path) -> None:
    socket_unit = block("ini", "[Socket]")
    assert unit_setting(socket_unit, "ListenStream") == "443"
    service = block("ini", "[Service]")
    assert unit_setting(service, "Type") == "notify"
    assert unit_setting(service, "NotifyAccess") == "main"
    assert unit_setting(service, "ExecReload") == "/bin/kill -HUP $MAINPID"
    workdir = unit_setting(service, "WorkingDirectory")
    argv = shlex.split(unit_setting(service, "ExecStart"))
    assert argv[0].endswith("/bin/mutls") and argv[1] == "serve"
    argv = [MUTLS, *(a.replace("/etc/mutls", str(files)) for a in argv[1:])]
    port = free_port()
    notify = tmp_path / "notify"
    log = tmp_path / "server.log"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(notify))
        listener.settimeout(30)
        with log.open("wb") as err:
            process = subprocess.Popen(
                [
                    *("systemd-socket-activate", "-l", f"127.0.0.1:{port}"),
                    *("-E", f"NOTIFY_SOCKET={notify}"),
                    *argv,
                ],
                cwd=files if workdir == "/srv/myapp" else None,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        try:
            wait_for_port(port)  # systemd-socket-activate listens; this starts mutls
            assert listener.recv(4096) == b"READY=1", log.read_text()
            seen = fetch(test_pki, port)
            assert (seen["SSL_CLIENT_VERIFY"], seen["SSL_CLIENT_S_DN"]) == ("SUCCESS", "CN=poupou")
            # ExecReload: SIGHUP to the main process, which systemd-socket-activate exec'd
            os.kill(process.pid, signal.SIGHUP)
            assert listener.recv(4096).startswith(b"RELOADING=1\nMONOTONIC_USEC=")
            assert listener.recv(4096) == b"READY=1"
            process.send_signal(signal.SIGTERM)
            assert listener.recv(4096) == b"STOPPING=1"
            assert process.wait(30) == 0
        finally:
            if process.poll() is None:
                stop_process(process)
    assert workdir == "/srv/myapp"


def mutls_args(command: str, replacements: dict[str, str]) -> list[str]:
    words = shlex.split(command.replace("\\\n", " "))
    assert words[:2] == ["mutls", "serve"], words
    out = []
    for word in words[2:]:
        for old, new in replacements.items():
            word = word.replace(old, new)
        out.append(word)
    return [MUTLS, "serve", *out]


def curl(p: PKIFiles, port: int, *extra: str) -> tuple[int, str]:
    done = subprocess.run(
        [
            *("curl", "-sS", "--max-time", "20", "--interface", "127.0.0.2"),
            *("--cacert", str(p.ca_cert), *extra, "-w", "\n%{http_code}"),
            f"https://localhost:{port}/",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    body, _, status = done.stdout.rpartition("\n")
    return int(status), body


@pytest.mark.needs("nginx", "curl")
def test_behind_nginx(test_pki: PKIFiles, files: Path, tmp_path: Path) -> None:
    """curl from 127.0.0.2 -> the page's nginx block -> the page's mutls command: the app sees
    the client's address (not nginx's, nor one the client wrote) and https, and mutls's verdict
    on the forwarded certificate."""
    front, back = free_port(), free_port()
    server_block = block("nginx", "listen 443 ssl;")
    server_block = (
        server_block.replace("listen 443 ssl;", f"listen 127.0.0.1:{front} ssl;")
        .replace("/etc/nginx/tls/", f"{files}/")
        .replace("127.0.0.1:8000", f"127.0.0.1:{back}")
    )
    command = block("sh", "--proxy-headers --client-cert require")
    args = mutls_args(command, {"/etc/nginx/tls/": f"{files}/", "8000": str(back)})
    log = tmp_path / "mutls.log"
    with log.open("wb") as err:
        backend = subprocess.Popen(
            args, cwd=files, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err
        )
    try:
        wait_for_port(back, timeout=30)
        prefix = tmp_path / "nginx"
        prefix.mkdir()
        with run_nginx(prefix, files, server_block, [front]):
            poupou = ("--cert", str(test_pki.cert("poupou")), "--key", str(test_pki.key("poupou")))
            status, body = curl(test_pki, front, *poupou)
            seen = json.loads(body)
            assert status == 200, body
            assert seen["REMOTE_ADDR"] == "127.0.0.2" and seen["wsgi.url_scheme"] == "https"
            assert (seen["SSL_CLIENT_VERIFY"], seen["SSL_CLIENT_S_DN"]) == ("SUCCESS", "CN=poupou")
            # what a client writes itself is not believed
            for forged in ("X-Forwarded-For: 198.51.100.66", "Forwarded: for=198.51.100.66"):
                status, body = curl(test_pki, front, *poupou, "-H", forged)
                assert status == 200 and json.loads(body)["REMOTE_ADDR"] == "127.0.0.2", forged
            # mutls judges: another CA's certificate (nginx forgives the issuer) is refused
            mallory = ("--cert", str(test_pki.cert("untrusted")))
            status, body = curl(test_pki, front, *mallory, "--key", str(test_pki.key("untrusted")))
            assert status == 403 and "unable to get local issuer certificate" in body
    finally:
        stop_process(backend)
    assert "believed from 127.0.0.1/32 only (--proxy-headers)" in log.read_text()


def test_the_dockerfile_cmd(test_pki: PKIFiles, files: Path, tmp_path: Path) -> None:
    dockerfile = block("dockerfile", "CMD [")
    cmd = json.loads(dockerfile.split("CMD ", 1)[1].strip())
    assert cmd[:2] == ["mutls", "serve"]
    port = free_port()
    replaced = [
        {"0.0.0.0": "127.0.0.1", "8443": str(port)}.get(
            a, a.replace("/run/secrets/tls", str(files))
        )
        for a in cmd[2:]
    ]
    log = tmp_path / "mutls.log"
    with log.open("wb") as err:
        process = subprocess.Popen(
            [MUTLS, "serve", *replaced],
            cwd=files,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        deadline = time.monotonic() + 30
        while b"serving on" not in log.read_bytes():
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        seen = fetch(test_pki, port)
        assert (seen["SSL_CLIENT_VERIFY"], seen["wsgi.url_scheme"]) == ("SUCCESS", "https")
        process.send_signal(signal.SIGTERM)  # docker stop
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            stop_process(process)


@pytest.mark.needs("haproxy", "curl")
def test_behind_haproxy(test_pki: PKIFiles, files: Path, tmp_path: Path) -> None:
    """curl from 127.0.0.2 -> the page's HAProxy lines (TCP, send-proxy-v2, health checks) ->
    the page's mutls command: mutls's own handshake judges the certificate, and the app sees
    the client HAProxy saw."""
    front, back = free_port(), free_port()
    config = (
        block("haproxy", "send-proxy-v2")
        .replace("bind :443", f"bind 127.0.0.1:{front}")
        .replace("10.0.0.11:8443", f"127.0.0.1:{back}")
        .replace("10.0.0.12:8443", f"127.0.0.1:{back}")
    )
    (tmp_path / "haproxy.cfg").write_text(config)
    command = block("sh", "--proxy-protocol")
    args = mutls_args(
        command, {"10.0.0.2,10.0.0.3": "127.0.0.1", "8443": str(back), "*": "127.0.0.1"}
    )
    log = tmp_path / "mutls.log"
    with log.open("wb") as err:
        backend = subprocess.Popen(
            args, cwd=files, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err
        )
    balancer = None
    try:
        wait_for_port(back, timeout=30)
        balancer = subprocess.Popen(
            ["haproxy", "-db", "-f", str(tmp_path / "haproxy.cfg")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(front, timeout=30)
        poupou = ("--cert", str(test_pki.cert("poupou")), "--key", str(test_pki.key("poupou")))
        for _ in range(2):  # both servers (the same mutls here), round robin
            status, body = curl(test_pki, front, *poupou)
            seen = json.loads(body)
            assert status == 200, body
            assert seen["REMOTE_ADDR"] == "127.0.0.2" and seen["wsgi.url_scheme"] == "https"
            assert (seen["SSL_CLIENT_VERIFY"], seen["SSL_CLIENT_S_DN"]) == ("SUCCESS", "CN=poupou")
    finally:
        if balancer is not None:
            stop_process(balancer)
        stop_process(backend)
    text = log.read_text()
    assert "bad PROXY header" not in text and "not a --trusted-proxy" not in text, text
