"""Misbehaving clients at the record layer, by hand-made or mutated TLS records, against the
real server (``serve_in_thread``) in none, optional and require modes: every failure ends with
the alert RFC 8446/5246 names, sent before the close; what is not TLS at all is closed.

Not here (already proven elsewhere): TLS 1.0/1.1 -> protocol_version and no shared cipher ->
handshake_failure (tests/integration/test_server_http.py, test_tls_handshakes.py). There is no
CBC padding to fuzz: the server offers AEAD suites only (docs/tls.md), so a padding attack
meets the same bad_record_mac as any other tampering.
"""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Callable, Iterator

import pytest
from OpenSSL import SSL
from records import (
    ALERT,
    APPLICATION_DATA,
    HANDSHAKE,
    client_hello,
    plaintext_alert,
    read_records,
    record,
    truncated_client_hello,
)

from mutls import pki
from mutls.server import RunningServer, ServerConfig, Timeouts
from mutls.tls import ClientCertMode

from helpers import LazyServers, PKIFiles, read_until_close
from tls_driver import client_context, new_client

MODES = {m.value: m for m in ClientCertMode}
EACH_MODE = pytest.mark.parametrize("mode", list(MODES))
#: send: short, yet well past the 1.5 s the bounded-memory test watches a blocked connection.
TIMEOUTS = Timeouts(handshake=1.0, header=1.0, keep_alive=1.0, graceful=1.0, send=3.0)
#: what a socket waits at most: well past every server timeout, so a timeout here is a failure.
WAIT = 10


async def big_app(scope: dict[str, object], receive: object, send: object) -> None:
    """4 MiB per request: enough to fill every buffer between the server and a client."""
    if scope["type"] != "http":
        return
    body = b"x" * (4 << 20)
    headers = [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})  # type: ignore[operator]
    await send({"type": "http.response.body", "body": body})  # type: ignore[operator]


@pytest.fixture(scope="module")
def servers(test_pki: PKIFiles) -> Iterator[Callable[[str], RunningServer]]:
    """``server(mode)``: a server in that mode with 1 s timeouts (started on first use)."""
    servers = LazyServers(
        lambda mode: ServerConfig(
            port=0,
            identity=test_pki.identities["server"],
            client_cert=MODES[mode],
            trust=pki.TrustMaterial(anchors=(test_pki.ca.certificate,)),
            app=big_app,
            timeouts=TIMEOUTS,
        )
    )
    yield servers
    servers.close()


def connection(server: RunningServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.ports[0]), timeout=WAIT)


def send_and_read(server: RunningServer, *parts: bytes) -> tuple[list[tuple[int, bytes]], bool]:
    with connection(server) as sock:
        for part in parts:
            sock.sendall(part)
        records, rest, closed = read_records(sock)
    assert rest == b"", "the server sent a partial record"
    return records, closed


def wait_until_no_connection(server: RunningServer) -> None:
    """The server frees every connection (bounded wait; no timing asserted)."""
    state = server.server.state
    assert state is not None
    deadline = time.monotonic() + WAIT
    while state.connections and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not state.connections, "the server still holds the connection"


# -- before the handshake ---------------------------------------------------------------------


@EACH_MODE
@pytest.mark.parametrize("keep", [0, 40, 200])
def test_truncated_client_hello_is_decode_error(
    servers: Callable[[str], RunningServer], mode: str, keep: int
) -> None:
    records, closed = send_and_read(servers(mode), truncated_client_hello(client_hello(), keep))
    assert closed
    assert records == [(ALERT, b"\x02\x32")], records  # fatal decode_error(50), then the close
    assert plaintext_alert(records) == "decode_error"


@EACH_MODE
@pytest.mark.parametrize(
    "first",
    [
        record(0x63, b"hello"),  # no such content type
        record(APPLICATION_DATA, b"GET / HTTP/1.1\r\n\r\n"),  # data before any handshake
        record(20, b"\x01"),  # ChangeCipherSpec before the ClientHello
        record(HANDSHAKE, b"\x02\x00\x00\x00"),  # a ServerHello, from the client
    ],
    ids=["unknown-type", "application-data", "change-cipher-spec", "server-hello"],
)
def test_a_record_out_of_place_is_unexpected_message(
    servers: Callable[[str], RunningServer], mode: str, first: bytes
) -> None:
    records, closed = send_and_read(servers(mode), first)
    assert closed
    assert plaintext_alert(records) == "unexpected_message", records


@EACH_MODE
def test_an_unknown_content_type_mid_handshake_is_unexpected_message(
    servers: Callable[[str], RunningServer], mode: str
) -> None:
    # TLS 1.2: the server's flight and its alert are both in the clear.
    hello = client_hello(SSL.TLS1_2_VERSION)
    with connection(servers(mode)) as sock:
        sock.sendall(hello)
        time.sleep(0.05)  # let the server answer the ClientHello first (not asserted)
        sock.sendall(record(0x63, b"\x00" * 8))
        records, _, closed = read_records(sock)
    assert closed
    assert records[0][0] == HANDSHAKE  # ServerHello ... ServerHelloDone
    assert records[-1] == (ALERT, b"\x02\x0a"), records[-1]  # fatal unexpected_message(10)


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x00" * 100,
        random.Random(7).randbytes(300),
        # an SSLv2-style ClientHello: OpenSSL no longer speaks it
        bytes.fromhex("802b0103010012000000100100800700c0030080060040020080040080") + bytes(16),
        b"SSH-2.0-OpenSSH_9.6\r\n",
    ],
    ids=["zeros", "random", "sslv2-hello", "ssh"],
)
def test_garbage_instead_of_a_client_hello_is_closed(
    servers: Callable[[str], RunningServer], garbage: bytes
) -> None:
    # Not TLS at all: there is nobody to alert (docs/tls.md), the server just closes.
    server = servers("optional")
    records, closed = send_and_read(server, garbage)
    assert closed
    assert all(t == ALERT for t, _ in records), records
    wait_until_no_connection(server)


# -- a handshake that stops halfway ---------------------------------------------------------


@EACH_MODE
@pytest.mark.parametrize("version", [SSL.TLS1_2_VERSION, SSL.TLS1_3_VERSION], ids=["1.2", "1.3"])
def test_a_handshake_that_stops_halfway_is_timed_out_and_freed(
    servers: Callable[[str], RunningServer], mode: str, version: int
) -> None:
    server = servers(mode)
    with connection(server) as sock:
        sock.sendall(client_hello(version))  # and never the rest
        records, _, closed = read_records(sock)
    assert closed, "the server kept a half-done handshake past its handshake timeout"
    assert records and records[0][0] == HANDSHAKE  # it did answer the ClientHello
    wait_until_no_connection(server)


def test_half_a_record_is_timed_out(servers: Callable[[str], RunningServer]) -> None:
    server = servers("require")
    with connection(server) as sock:
        sock.sendall(client_hello()[:20])
        data, closed = read_until_close(sock)
    assert closed and data == b""
    wait_until_no_connection(server)


# -- after the handshake: tampered records ---------------------------------------------------


def handshake_over_socket(sock: socket.socket, client: SSL.Connection) -> None:
    for _ in range(20):
        try:
            client.do_handshake()
            done = True
        except SSL.WantReadError:
            done = False
        try:
            sock.sendall(client.bio_read(65536))
        except SSL.WantReadError:
            pass
        if done:
            return
        client.bio_write(sock.recv(65536))
    pytest.fail("the handshake did not finish")


def tamper(wire: bytes, how: str) -> bytes:
    """One application-data record of ``wire``, tampered with ``how``."""
    assert wire[0] == APPLICATION_DATA
    body = bytearray(wire[5:])
    if how == "truncate":
        return record(APPLICATION_DATA, bytes(body[:-1]))
    index = {"first": 0, "middle": len(body) // 2, "tag": len(body) - 1}[how]
    body[index] ^= 0x01
    return wire[:5] + bytes(body)


@EACH_MODE
@pytest.mark.parametrize("version", [SSL.TLS1_2_VERSION, SSL.TLS1_3_VERSION], ids=["1.2", "1.3"])
@pytest.mark.parametrize("how", ["first", "middle", "tag", "truncate"])
def test_tampered_ciphertext_is_bad_record_mac(
    servers: Callable[[str], RunningServer], test_pki: PKIFiles, mode: str, version: int, how: str
) -> None:
    client = new_client(client_context(test_pki, test_pki.identities["poupou"], version=version))
    with connection(servers(mode)) as sock:
        handshake_over_socket(sock, client)
        client.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        sock.sendall(tamper(client.bio_read(65536), how))
        data, closed = read_until_close(sock)
    assert closed
    client.bio_write(data)  # the alert is encrypted: let the client read it
    with pytest.raises(SSL.Error, match="bad record mac"):
        for _ in range(10):  # TLS 1.3 session tickets come first
            client.recv(65536)


# -- a client that never reads ----------------------------------------------------------------


def _rss_mib() -> int:
    with open("/proc/self/status") as status:
        line = next(x for x in status if x.startswith("VmRSS:"))
    return int(line.split()[1]) // 1024


def _never_reading_client(server: RunningServer, test_pki: PKIFiles) -> socket.socket:
    """A client that asks for 30 × 4 MiB and reads none of it."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(WAIT)
    sock.connect(("127.0.0.1", server.ports[0]))
    client = new_client(client_context(test_pki, test_pki.identities["poupou"]))
    handshake_over_socket(sock, client)
    client.send(b"GET /big HTTP/1.1\r\nHost: localhost\r\n\r\n" * 30)
    sock.sendall(client.bio_read(65536))
    return sock


def test_a_client_that_never_reads_costs_bounded_memory(
    servers: Callable[[str], RunningServer], test_pki: PKIFiles
) -> None:
    server = servers("optional")
    before = _rss_mib()
    with _never_reading_client(server, test_pki):
        time.sleep(1.5)  # let the server write what it can (not a timing assertion)
        # 120 MiB asked for; the server may hold a response or two, not all of them.
        assert _rss_mib() - before < 40
        assert len(server.server.state.connections) == 1  # type: ignore[union-attr]


def test_a_client_that_never_reads_is_closed_after_a_timeout(
    servers: Callable[[str], RunningServer], test_pki: PKIFiles
) -> None:
    server = servers("none")
    with _never_reading_client(server, test_pki):
        deadline = time.monotonic() + TIMEOUTS.send + WAIT
        while server.server.state.connections and time.monotonic() < deadline:  # type: ignore[union-attr]
            time.sleep(0.1)
        assert not server.server.state.connections, "the server kept the connection"  # type: ignore[union-attr]
