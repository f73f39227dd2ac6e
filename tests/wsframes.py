"""Raw WebSocket frames for tests: a client's frames built byte by byte (any rule broken on
purpose) and the server's read back from a socket."""

from __future__ import annotations

import os
import socket
import struct
from typing import Any

TEXT, BINARY, CLOSE, PING, PONG, CONTINUATION = 0x1, 0x2, 0x8, 0x9, 0xA, 0x0
KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455's example; its answer:
ACCEPT = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    mask: bool = True,
    rsv: int = 0,
    long_length: int = 0,
) -> bytes:
    """One frame; ``long_length`` 2 or 8 forces that length encoding (minimal or not)."""
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    size = len(payload)
    bit = 0x80 if mask else 0
    if long_length == 8 or (not long_length and size > 0xFFFF):
        head += bytes([bit | 127]) + struct.pack("!Q", size)
    elif long_length == 2 or (not long_length and size > 125):
        head += bytes([bit | 126]) + struct.pack("!H", size)
    else:
        head += bytes([bit | size])
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def close_frame(code: int | None = None, reason: bytes = b"") -> bytes:
    return frame(CLOSE, b"" if code is None else struct.pack("!H", code) + reason)


def upgrade(port: int, path: str = "/", host: str = "127.0.0.1", **kw: Any) -> socket.socket:
    """A socket past a successful opening handshake."""
    sock = socket.create_connection((host, port), timeout=10)
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        assert chunk, head
        head += chunk
    assert head.startswith(b"HTTP/1.1 101 "), head
    assert ACCEPT in head
    return sock


def read_exact(sock: socket.socket, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def read_frame(sock: socket.socket) -> tuple[int, bytes, bool] | None:
    """The server's next frame ``(opcode, payload, fin)``, or ``None`` at EOF. A server's
    frame is never masked (RFC 6455 section 5.1): asserted."""
    head = read_exact(sock, 2)
    if head is None:
        return None
    assert head[1] & 0x80 == 0, "the server masked a frame"
    size = head[1] & 0x7F
    if size == 126:
        size = struct.unpack("!H", read_exact(sock, 2) or b"\0\0")[0]
    elif size == 127:
        size = struct.unpack("!Q", read_exact(sock, 8) or b"\0" * 8)[0]
    payload = read_exact(sock, size) if size else b""
    assert payload is not None
    return head[0] & 0x0F, payload, bool(head[0] & 0x80)


def close_of(sock: socket.socket) -> tuple[int | None, bytes]:
    """Read until the server's close frame; its ``(code, reason)``; then the socket must end."""
    while True:
        got = read_frame(sock)
        assert got is not None, "the connection ended without a close frame"
        opcode, payload, _fin = got
        if opcode == CLOSE:
            break
    code = struct.unpack("!H", payload[:2])[0] if payload else None
    assert read_frame(sock) is None, "the server sent more after its close"
    return code, payload[2:]


async def echo_messages(receive: Any, send: Any) -> None:
    """An ASGI websocket app's body: accept, then send back every message until the close."""
    await receive()
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        await send({"type": "websocket.send", **{k: message.get(k) for k in ("text", "bytes")}})
