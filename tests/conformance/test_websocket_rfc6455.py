"""The RFC 6455 checks the Autobahn test suite makes of a server (its cases 1-7: framing,
pings, reserved bits and opcodes, fragmentation, UTF-8, close handling, limits), written here
byte by byte over a real socket against the real server. Autobahn itself runs elsewhere (see
docs/server.md, "WebSocket").
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import Iterator
from typing import Any

import pytest

from mutls.server import ServerConfig, serve_in_thread
from mutls.ws import WebSocketLimits

from wsframes import (
    BINARY,
    CLOSE,
    CONTINUATION,
    PING,
    PONG,
    TEXT,
    close_frame,
    close_of,
    echo_messages,
    frame,
    read_frame,
    upgrade,
)

MAX = 100_000


async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "http":  # slow, so that frames arrive while it runs
        await asyncio.sleep(0.3)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    if scope["type"] != "websocket":
        return
    await echo_messages(receive, send)


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    limits = WebSocketLimits(max_message_bytes=MAX, ping_interval=None)
    config = ServerConfig(host="127.0.0.1", port=0, app=echo, websocket=limits)
    with serve_in_thread(config) as running:
        yield running.ports[0]


@pytest.fixture
def ws(port: int) -> Iterator[socket.socket]:
    sock = upgrade(port)
    yield sock
    sock.close()


def echoed(sock: socket.socket) -> tuple[int, bytes]:
    got = read_frame(sock)
    assert got is not None
    opcode, payload, fin = got
    assert fin
    return opcode, payload


# -- what must work --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("opcode", "payload"),
    [
        (TEXT, b""),
        (TEXT, "κόσμε".encode()),
        (BINARY, b"\x00" * 125),
        (BINARY, bytes(range(256)) * 100),  # 16-bit length
        (BINARY, b"\xfe" * 70_000),  # 64-bit length
    ],
)
def test_messages_echo(ws: socket.socket, opcode: int, payload: bytes) -> None:
    ws.sendall(frame(opcode, payload))
    assert echoed(ws) == (opcode, payload)


def test_ping_is_answered_with_the_same_payload(ws: socket.socket) -> None:
    ws.sendall(frame(PING, b"hello ping"))
    assert echoed(ws) == (PONG, b"hello ping")
    ws.sendall(frame(PING, b"x" * 125))  # the largest control frame
    assert echoed(ws) == (PONG, b"x" * 125)


def test_an_unsolicited_pong_is_ignored(ws: socket.socket) -> None:
    ws.sendall(frame(PONG, b"nobody asked") + frame(TEXT, b"after"))
    assert echoed(ws) == (TEXT, b"after")


def test_fragments_with_a_ping_between_are_one_message(ws: socket.socket) -> None:
    ws.sendall(
        frame(TEXT, b"frag", fin=False)
        + frame(PING, b"mid")
        + frame(CONTINUATION, b"men", fin=False)
        + frame(CONTINUATION, b"ted")
    )
    assert echoed(ws) == (PONG, b"mid")
    assert echoed(ws) == (TEXT, b"fragmented")


def test_utf8_split_across_fragments_is_valid(ws: socket.socket) -> None:
    snowman = "☃".encode()  # three bytes, cut in the middle of the character
    ws.sendall(frame(TEXT, snowman[:1], fin=False) + frame(CONTINUATION, snowman[1:]))
    assert echoed(ws) == (TEXT, snowman)


def test_frames_one_byte_at_a_time(ws: socket.socket) -> None:
    for byte in frame(TEXT, b"slowly"):
        ws.sendall(bytes([byte]))
    assert echoed(ws) == (TEXT, b"slowly")


@pytest.mark.parametrize(
    ("code", "reason"), [(1000, b""), (1001, b"going"), (3000, b""), (4999, "ü".encode())]
)
def test_the_close_handshake_echoes_the_code(ws: socket.socket, code: int, reason: bytes) -> None:
    ws.sendall(close_frame(code, reason))
    assert close_of(ws) == (code, reason)


def test_an_empty_close_is_answered_empty(ws: socket.socket) -> None:
    ws.sendall(close_frame())
    assert close_of(ws) == (None, b"")


# -- what must fail the connection, with which code -------------------------------------------

START = frame(TEXT, b"a", fin=False)  # a text message begun
OVER = frame(TEXT, b"t" * MAX, fin=False)  # a text message as large as allowed, not ended


@pytest.mark.parametrize(
    ("name", "data", "code"),
    [
        ("unmasked frame", frame(TEXT, b"plain", mask=False), 1002),
        ("control frame over 125 bytes", frame(PING, b"p" * 126), 1002),
        ("fragmented control frame", frame(PING, b"p", fin=False), 1002),
        ("fragmented close", frame(CLOSE, struct.pack("!H", 1000), fin=False), 1002),
        ("RSV1 without an extension", frame(TEXT, b"x", rsv=4), 1002),
        ("RSV2", frame(TEXT, b"x", rsv=2), 1002),
        ("RSV3", frame(BINARY, b"x", rsv=1), 1002),
        ("reserved data opcode 3", frame(3, b""), 1002),
        ("reserved control opcode 0xB", frame(0xB, b""), 1002),
        ("continuation without a start", frame(CONTINUATION, b"x"), 1002),
        ("new message inside a fragmented one", START + frame(TEXT, b"b"), 1002),
        ("16-bit length for a small payload", frame(TEXT, b"tiny", long_length=2), 1002),
        ("64-bit length for a 16-bit payload", frame(BINARY, b"x" * 200, long_length=8), 1002),
        ("64-bit length with its top bit set", b"\x82\xff" + b"\x80" + b"\0" * 7 + b"mask", 1002),
        ("invalid UTF-8 (a surrogate)", frame(TEXT, "κόσμε".encode() + b"\xed\xa0\x80"), 1007),
        ("invalid UTF-8 in a fragment", START + frame(CONTINUATION, b"\xff"), 1007),
        ("a truncated UTF-8 text", frame(TEXT, "☃".encode()[:2]), 1007),
        ("close with a 1-byte payload", frame(CLOSE, b"\x03"), 1002),
        ("close code 999", close_frame(999), 1002),
        ("close code 1004 (reserved)", close_frame(1004), 1002),
        ("close code 1005 on the wire", close_frame(1005), 1002),
        ("close code 1006 on the wire", close_frame(1006), 1002),
        ("close code 1015 (TLS failure, local only)", close_frame(1015), 1002),
        ("close code 1016 (unassigned)", close_frame(1016), 1002),
        ("close code 2999", close_frame(2999), 1002),
        ("close code 5000", close_frame(5000), 1002),
        ("close reason not UTF-8", close_frame(1000, b"\xff\xfe"), 1007),
        ("a message over --ws-max-size", frame(BINARY, b"b" * (MAX + 1)), 1009),
        ("fragments over --ws-max-size", OVER + frame(CONTINUATION, b"t"), 1009),
    ],
)
def test_broken_rules_close_with_the_right_code(
    ws: socket.socket, name: str, data: bytes, code: int
) -> None:
    ws.sendall(data)
    got, _reason = close_of(ws)
    assert got == code, name


def test_a_declared_huge_frame_is_refused_before_it_arrives(ws: socket.socket) -> None:
    """A header announcing 2**62 bytes: the server closes 1009 once MAX have come, holding
    no more than that (it cannot wait for the rest)."""
    head = bytes([0x82, 0xFF]) + struct.pack("!Q", 1 << 62) + b"mask"
    ws.sendall(head + b"\0" * (MAX + 1))
    assert close_of(ws)[0] == 1009


def test_data_after_the_close_is_not_answered(ws: socket.socket) -> None:
    ws.sendall(close_frame(1000) + frame(TEXT, b"too late") + frame(PING, b"too late"))
    assert close_of(ws) == (1000, b"")


def test_the_server_still_serves_after_every_failure(port: int) -> None:
    with upgrade(port) as sock:
        sock.sendall(frame(TEXT, b"still here"))
        assert echoed(sock) == (TEXT, b"still here")


# -- the opening handshake -------------------------------------------------------------------


def handshake(port: int, head: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode())
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    return data


UPGRADE = "Upgrade: websocket\r\nConnection: Upgrade\r\nHost: x\r\n"
KEY = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
V13 = "Sec-WebSocket-Version: 13\r\n"


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (f"GET / HTTP/1.1\r\n{UPGRADE}{V13}\r\n", b"400"),  # no key
        (f"GET / HTTP/1.1\r\n{UPGRADE}Sec-WebSocket-Key: short\r\n{V13}\r\n", b"400"),
        (f"GET / HTTP/1.1\r\n{UPGRADE}{KEY}Sec-WebSocket-Version: 8\r\n\r\n", b"426"),
        (f"POST / HTTP/1.1\r\n{UPGRADE}{KEY}{V13}\r\n", b"400"),
    ],
)
def test_a_bad_handshake_is_answered_by_http(port: int, head: str, status: bytes) -> None:
    answer = handshake(port, head)
    assert answer.startswith(b"HTTP/1.1 " + status), answer
    if status == b"426":
        assert b"sec-websocket-version: 13" in answer.lower()


def test_deflate_offered_is_not_accepted(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            f"GET / HTTP/1.1\r\n{UPGRADE}Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n".encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(1)
        assert head.startswith(b"HTTP/1.1 101")
        assert b"sec-websocket-extensions" not in head.lower()
        sock.sendall(frame(TEXT, b"x", rsv=4))  # a compressed frame without the extension
        assert close_of(sock)[0] == 1002


def test_frames_sent_with_the_handshake_are_kept_for_after_the_accept(port: int) -> None:
    """A client may pipeline its first frames behind its handshake (in the same read, or in a
    read the HTTP side had queued): they are the WebSocket's once the app accepts."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            f"GET / HTTP/1.1\r\n{UPGRADE}{KEY}{V13}\r\n".encode()
            + frame(TEXT, b"early")
            + frame(BINARY, b"\x01" * 100_000)  # more than the parser takes in one turn
            + frame(PING, b"p")
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(1)
        assert head.startswith(b"HTTP/1.1 101")
        got = [echoed(sock) for _ in range(3)]
        # the pong may come first: the server answers pings as it reads them, the app later
        assert [g for g in got if g[0] != PONG] == [(TEXT, b"early"), (BINARY, b"\x01" * 100_000)]
        assert (PONG, b"p") in got


def test_frames_behind_a_handshake_pipelined_after_a_request_are_kept(port: int) -> None:
    """GET, then the handshake, in one write; frames in the next, while the GET still runs:
    the GET is answered, then the 101, then the frames' echoes (none lost to the HTTP side)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n"
            + f"GET / HTTP/1.1\r\n{UPGRADE}{KEY}{V13}\r\n".encode()
        )
        time.sleep(0.1)  # (a read of its own: not the one the handshake came in)
        sock.sendall(frame(TEXT, b"behind") + frame(BINARY, b"two"))
        heads = b""
        while heads.count(b"\r\n\r\n") < 2:
            heads += sock.recv(1)
        assert heads.startswith(b"HTTP/1.1 204 ") and b"HTTP/1.1 101 " in heads
        assert echoed(sock) == (TEXT, b"behind")
        assert echoed(sock) == (BINARY, b"two")
