"""Bad HTTP input over real sockets, beyond what tests/integration/test_server_http.py and
tests/unit/test_http_connection.py prove (limits, 431 for size and count, 413, smuggling,
obs-fold, a silent client's 408): invalid methods and request targets, and slowloris, a client
that trickles its head so that no single read looks idle."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator

import pytest

from mutls import pki
from mutls.server import ServerConfig, Timeouts, serve_in_thread
from mutls.tls import ClientCertMode

from helpers import PKIFiles, read_until_close

TIMEOUTS = Timeouts(handshake=1.0, header=1.0, keep_alive=1.0, graceful=1.0)
WAIT = 10


async def hello(scope: dict[str, object], receive: object, send: object) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})  # type: ignore[operator]
    await send({"type": "http.response.body", "body": b"hello"})  # type: ignore[operator]


@pytest.fixture(scope="module")
def plain_port() -> Iterator[int]:
    with serve_in_thread(ServerConfig(port=0, app=hello, timeouts=TIMEOUTS)) as running:
        yield running.ports[0]


@pytest.fixture(scope="module")
def tls_port(test_pki: PKIFiles) -> Iterator[int]:
    config = ServerConfig(
        port=0,
        identity=test_pki.identities["server"],
        client_cert=ClientCertMode.OPTIONAL,
        trust=pki.TrustMaterial(anchors=(test_pki.ca.certificate,)),
        app=hello,
        timeouts=TIMEOUTS,
    )
    with serve_in_thread(config) as running:
        yield running.ports[0]


def exchange(port: int, data: bytes) -> tuple[bytes, bool]:
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        sock.sendall(data)
        return read_until_close(sock)


def status_line(raw: bytes) -> int:
    match = re.match(rb"HTTP/1\.1 (\d{3}) ", raw)
    assert match, raw[:100]
    return int(match.group(1))


HOST = b"\r\nHost: h\r\n\r\n"


@pytest.mark.parametrize(
    "line",
    [
        b"GE T / HTTP/1.1",
        b"get / HTTP/1.1",
        b"G\x00T / HTTP/1.1",
        b"FOO / HTTP/1.1",
        b"DESCRIBE / HTTP/1.1",  # RTSP's, not HTTP's
        b"\xff\xfe / HTTP/1.1",
    ],
    ids=["space", "lower-case", "nul", "unknown", "rtsp-method", "binary"],
)
def test_invalid_methods_are_400_then_closed(plain_port: int, line: bytes) -> None:
    raw, closed = exchange(plain_port, line + HOST)
    assert closed and status_line(raw) == 400
    assert b"connection: close" in raw and b"hello" not in raw


@pytest.mark.parametrize(
    "line",
    [
        b"GET  HTTP/1.1",  # no target
        b"GET /a b HTTP/1.1",
        b"GET /\x00 HTTP/1.1",
        b"GET /\x7f HTTP/1.1",
        b"GET /\xff HTTP/1.1",
        b"GET a HTTP/1.1",  # neither origin-, absolute-, authority- nor asterisk-form
        b"GET / HTTP/1.1 trailing",
        b"GET / FTP/1.1",
        b"GET / HTTP/9.9",
        b"GET / HTTP/1.1\rX",
    ],
    ids=[
        "empty",
        "space",
        "nul",
        "del",
        "high-byte",
        "no-slash",
        "after-version",
        "ftp",
        "version-9",
        "bare-cr",
    ],
)
def test_invalid_targets_and_versions_are_400_then_closed(plain_port: int, line: bytes) -> None:
    raw, closed = exchange(plain_port, line + HOST)
    assert closed and status_line(raw) == 400, raw[:200]
    assert b"hello" not in raw


@pytest.mark.parametrize("protocol", [b"RTSP/1.0", b"ICE/1.0"])
def test_another_protocol_name_is_400(plain_port: int, protocol: bytes) -> None:
    # llhttp accepts these request lines and reports only the version number.
    raw, closed = exchange(plain_port, b"GET / " + protocol + HOST)
    assert closed and status_line(raw) == 400, raw[:200]


def trickle(sock: socket.socket, head: bytes, pause: float) -> int:
    """Send ``head`` one byte at a time until the server stops reading; return bytes sent."""
    for sent, byte in enumerate(head):
        try:
            sock.sendall(bytes([byte]))
        except OSError:  # the server closed: that is the point
            return sent
        time.sleep(pause)
    return len(head)


def test_slowloris_is_timed_out(plain_port: int) -> None:
    # One byte every 0.2 s (the one per second, faster: the rule is the same) of a
    # head that would take 40 s to send; the header timeout is 1 s for the whole head.
    head = b"GET / HTTP/1.1\r\nHost: h\r\n" + b"X-Slow: " + b"a" * 150 + b"\r\n\r\n"
    with socket.create_connection(("127.0.0.1", plain_port), timeout=WAIT) as sock:
        sent = trickle(sock, head, 0.2)
        raw, closed = read_until_close(sock)
    assert sent < len(head), "the server read the whole trickled head"
    assert closed
    if raw:  # the 408 may be lost to a reset when bytes keep arriving after the close
        assert status_line(raw) == 408


def test_slowloris_over_tls_is_timed_out(tls_port: int, test_pki: PKIFiles) -> None:
    import ssl

    context = ssl.create_default_context(cafile=str(test_pki.ca_cert))
    head = b"GET / HTTP/1.1\r\nHost: localhost\r\n" + b"X-Slow: " + b"a" * 150 + b"\r\n\r\n"
    with (
        socket.create_connection(("127.0.0.1", tls_port), timeout=WAIT) as raw_sock,
        context.wrap_socket(raw_sock, server_hostname="localhost") as sock,
    ):
        sent = trickle(sock, head, 0.2)  # one TLS record per byte
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except (ssl.SSLError, OSError):
            pass
    assert sent < len(head), "the server read the whole trickled head"
    if data:
        assert status_line(data) == 408
