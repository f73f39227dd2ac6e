"""The server over real sockets: keep-alive, pipelining, 100-continue, HEAD, chunked bodies,
limits, smuggling, timeouts, the connection limit, plain HTTP on the TLS port, and alerts a
client can read when a handshake fails."""

from __future__ import annotations

import hashlib
import json
import re
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mutls import pki
from mutls.http import HTTPLimits
from mutls.server import ServerConfig, Timeouts, serve_in_thread
from mutls.server.protocol import PLAIN_HTTP_ON_TLS_PORT
from mutls.tls import ClientCertMode, TLSOptions, VerifyPolicy

from helpers import PKIFiles

BIG = 4 * 1024 * 1024


async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """What the request was: method, path, body length and hash; /big sends 4 MiB."""
    assert scope["type"] == "http"
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"] == "/big":
        payload = b"0123456789abcdef" * (BIG // 16)
    else:
        payload = json.dumps(
            {
                "method": scope["method"],
                "path": scope["path"],
                "length": len(body),
                "sha256": hashlib.sha256(body).hexdigest(),
            }
        ).encode()
    headers = [(b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


LIMITS = HTTPLimits(max_head_bytes=4096, max_headers=50, max_body_bytes=1024 * 1024)
TIMEOUTS = Timeouts(handshake=1.0, header=1.0, keep_alive=1.0, graceful=2.0)


@pytest.fixture(scope="module")
def plain_port() -> Iterator[int]:
    config = ServerConfig(port=0, app=echo, limits=LIMITS, timeouts=TIMEOUTS, max_connections=8)
    with serve_in_thread(config) as running:
        yield running.ports[0]


@pytest.fixture(scope="module")
def tls_port(test_pki: PKIFiles) -> Iterator[int]:
    config = ServerConfig(
        port=0,
        identity=test_pki.identities["server"],
        client_cert=ClientCertMode.REQUIRE,
        verify=VerifyPolicy.STRICT,
        trust=pki.TrustMaterial(anchors=(test_pki.ca.certificate,)),
        app=echo,
        limits=LIMITS,
        timeouts=TIMEOUTS,
    )
    with serve_in_thread(config) as running:
        yield running.ports[0]


def exchange(port: int, data: bytes, *, until_close: bool = True) -> bytes:
    """Send ``data``; read until the server closes (bounded by the socket timeout)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            if not until_close:
                break
        return b"".join(chunks)


def statuses(raw: bytes) -> list[int]:
    return [int(code) for code in re.findall(rb"HTTP/1\.1 (\d{3}) ", raw)]


def test_pipelined_requests_are_answered_in_order(plain_port: int) -> None:
    requests = (
        b"".join(b"GET /%d HTTP/1.1\r\nHost: h\r\n\r\n" % i for i in range(5))
        + b"GET /last HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
    )
    raw = exchange(plain_port, requests)
    assert statuses(raw) == [200] * 6
    paths = [p.decode() for p in re.findall(rb'"path": "([^"]+)"', raw)]
    assert paths == ["/0", "/1", "/2", "/3", "/4", "/last"]


def test_keep_alive_and_http_10(plain_port: int) -> None:
    with socket.create_connection(("127.0.0.1", plain_port), timeout=10) as sock:
        for i in range(3):
            sock.sendall(b"GET /k%d HTTP/1.1\r\nHost: h\r\n\r\n" % i)
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK")
    raw = exchange(plain_port, b"GET /old HTTP/1.0\r\n\r\n")
    assert statuses(raw) == [200] and b"connection: close" in raw


def test_head_has_no_body(plain_port: int) -> None:
    result = subprocess.run(
        ["curl", "-sS", "-I", "--max-time", "10", f"http://127.0.0.1:{plain_port}/x"],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.stdout.startswith("HTTP/1.1 200")
    assert "content-length:" in result.stdout.lower()
    raw = exchange(plain_port, b"HEAD /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    assert raw.endswith(b"\r\n\r\n")


@pytest.mark.parametrize("scheme", ["http", "https"])
@pytest.mark.parametrize("framing", ["expect-100", "chunked"])
def test_request_bodies_with_curl(
    plain_port: int, tls_port: int, test_pki: PKIFiles, tmp_path: Path, scheme: str, framing: str
) -> None:
    data = bytes(range(256)) * 2000  # 512000 bytes
    (tmp_path / "body").write_bytes(data)
    extra = ["-H", "Expect: 100-continue"] if framing == "expect-100" else []
    if framing == "chunked":
        extra = ["-H", "Transfer-Encoding: chunked"]
    url = f"http://127.0.0.1:{plain_port}/up"
    if scheme == "https":
        url = f"https://localhost:{tls_port}/up"
        extra += [
            "--cacert",
            str(test_pki.ca_cert),
            "--cert",
            str(test_pki.cert("poupou")),
            "--key",
            str(test_pki.key("poupou")),
        ]
    result = subprocess.run(
        ["curl", "-sS", "--max-time", "10", "--data-binary", f"@{tmp_path / 'body'}", *extra, url],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["method"] == "POST" and seen["length"] == len(data)
    assert seen["sha256"] == hashlib.sha256(data).hexdigest()


def test_expect_100_continue_is_answered_before_the_body(plain_port: int) -> None:
    with socket.create_connection(("127.0.0.1", plain_port), timeout=10) as sock:
        sock.sendall(
            b"PUT /up HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
        )
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"hello")
        assert b'"length": 5' in sock.recv(65536)


def test_large_response_arrives_whole_over_tls(tls_port: int, test_pki: PKIFiles) -> None:
    result = subprocess.run(
        [
            "curl",
            "-sS",
            "--max-time",
            "20",
            "--cacert",
            str(test_pki.ca_cert),
            "--cert",
            str(test_pki.cert("poupou")),
            "--key",
            str(test_pki.key("poupou")),
            "--limit-rate",
            "20M",
            f"https://localhost:{tls_port}/big",
        ],
        capture_output=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"0123456789abcdef" * (BIG // 16)


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + b"a" * 8000 + b"\r\n\r\n", 431),
        (b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(60)) + b"\r\n", 431),
        (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2000000\r\n\r\n", 413),
        (
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n",
            400,
        ),
        (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nxx", 400),
        (b"GET / HTTP/1.1\r\nHost: h\r\nX-Fold: a\r\n b\r\n\r\n", 400),
    ],
    ids=["head-size", "header-count", "body-size", "cl-te", "double-cl", "obs-fold"],
)
def test_limits_and_smuggling_answer_then_close(
    plain_port: int, request_bytes: bytes, status: int
) -> None:
    raw = exchange(plain_port, request_bytes)  # returns only because the server closes
    assert statuses(raw) == [status]
    assert b"connection: close" in raw
    assert b"smuggled" not in raw


def test_plain_http_to_the_tls_port_is_told_so(tls_port: int) -> None:
    raw = exchange(tls_port, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert statuses(raw) == [400]
    assert PLAIN_HTTP_ON_TLS_PORT.encode() in raw


def s_client(port: int, *args: str) -> str:
    result = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", *args],
        input=b"GET / HTTP/1.0\r\n\r\n",
        capture_output=True,
        timeout=20,
    )
    return (result.stdout + result.stderr).decode(errors="replace")


@pytest.mark.parametrize(
    ("args", "alert"),
    [
        (["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"], "alert protocol version"),
        (["-tls1_2", "-cipher", "AES128-SHA"], "alert handshake failure"),
    ],
    ids=["tls1.1", "no-shared-cipher"],
)
def test_handshake_failure_sends_a_readable_alert(
    tls_port: int, args: list[str], alert: str
) -> None:
    assert alert in s_client(tls_port, *args)


def test_reject_at_handshake_sends_certificate_required(test_pki: PKIFiles) -> None:
    config = ServerConfig(
        port=0,
        identity=test_pki.identities["server"],
        client_cert=ClientCertMode.REQUIRE,
        trust=pki.TrustMaterial(anchors=(test_pki.ca.certificate,)),
        tls_options=TLSOptions(reject_at_handshake=True),
    )
    with serve_in_thread(config) as running:
        # -ign_eof: read until the server closes (the alert follows the client's Finished)
        out = s_client(running.ports[0], "-tls1_3", "-ign_eof", "-CAfile", str(test_pki.ca_cert))
    assert "alert certificate required" in out


def test_require_without_certificate_is_a_403_not_a_tls_error(tls_port: int) -> None:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", tls_port), timeout=10) as raw_sock,
        context.wrap_socket(raw_sock, server_hostname="localhost") as sock,
    ):
        sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert statuses(data) == [403]
    assert data.endswith(b"client certificate required\n")


@pytest.mark.parametrize(
    "first_bytes", [b"", b"GET / HTTP/1.1\r\nHost: h\r\n"], ids=["idle", "half-head"]
)
def test_silent_clients_are_disconnected(plain_port: int, first_bytes: bytes) -> None:
    raw = exchange(plain_port, first_bytes)  # the socket timeout (10 s) bounds this
    if first_bytes:
        assert statuses(raw) == [408]
    else:
        assert raw == b""


def test_tls_handshake_timeout_disconnects(tls_port: int) -> None:
    assert exchange(tls_port, b"") == b""


def test_connection_limit(plain_port: int) -> None:
    held = [socket.create_connection(("127.0.0.1", plain_port), timeout=10) for _ in range(8)]
    try:
        for sock in held:  # make sure the server has accepted them all
            sock.sendall(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        with socket.create_connection(("127.0.0.1", plain_port), timeout=10) as extra:
            try:
                extra.sendall(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
                assert extra.recv(65536) == b""
            except ConnectionResetError:
                pass  # refused by reset: also a refusal
    finally:
        for sock in held:
            sock.close()


def test_refused_request_is_answered_without_waiting_for_its_body(tls_port: int) -> None:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", tls_port), timeout=10) as raw_sock,
        context.wrap_socket(raw_sock, server_hostname="localhost") as sock,
    ):
        sock.sendall(
            b"PUT /up HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\n"
            b"Content-Length: 100000\r\n\r\n"
        )
        data = sock.recv(65536)  # no 100 Continue, and no need to send the body
    assert statuses(data) == [403]


def test_graceful_stop_finishes_the_request_in_flight() -> None:
    import asyncio
    import threading

    entered = threading.Event()

    async def slow(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        entered.set()
        await asyncio.sleep(0.5)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"finished"})

    with serve_in_thread(ServerConfig(port=0, app=slow)) as running:
        with socket.create_connection(("127.0.0.1", running.ports[0]), timeout=10) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
            assert entered.wait(10)
            stopper = threading.Thread(target=running.stop)
            stopper.start()
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
            stopper.join(20)
        assert statuses(data) == [200]
        assert b"connection: close" in data and data.endswith(b"finished\r\n0\r\n\r\n")
        assert not stopper.is_alive()


def test_a_key_update_is_answered_before_the_next_answer(tls_port: int, test_pki: PKIFiles) -> None:
    """A request's bytes do not flush what OpenSSL queued while reading them: a KeyUpdate
    asking for ours is answered ahead of the next records sent (RFC 8446 4.6.3), and both
    sides go on with their new keys (``openssl s_client``'s K command)."""
    command = ["openssl", "s_client", "-connect", f"127.0.0.1:{tls_port}", "-tls1_3", "-crlf"]
    command += ["-cert", str(test_pki.cert("poupou")), "-key", str(test_pki.key("poupou"))]
    command += ["-CAfile", str(test_pki.ca_cert)]
    process = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    assert process.stdin is not None and process.stdout is not None
    out = bytearray()

    def read_until(text: bytes, count: int) -> None:
        while out.count(text) < count:
            chunk = process.stdout.read1(65536)  # type: ignore[union-attr]
            assert chunk, out.decode(errors="replace")
            out.extend(chunk)

    try:
        process.stdin.write(b"GET / HTTP/1.1\nHost: localhost\n\n")
        process.stdin.flush()
        read_until(b"HTTP/1.1 200 ", 1)
        process.stdin.write(b"K\n")  # a KeyUpdate, update_requested
        process.stdin.flush()
        read_until(b"KEYUPDATE", 1)
        process.stdin.write(b"GET / HTTP/1.1\nHost: localhost\nConnection: close\n\n")
        process.stdin.flush()
        read_until(b"HTTP/1.1 200 ", 2)
        process.stdin.close()
        assert process.wait(20) == 0 or b"closed" in out
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    text = out.decode(errors="replace")
    assert "alert" not in text.lower() and "error" not in text.lower(), text
    assert text.index("KEYUPDATE") < text.rindex("HTTP/1.1 200 OK")  # answered after it
