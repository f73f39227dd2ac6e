"""Raw TLS records for misbehaving-client tests: a real ClientHello to cut up, and a reader that
returns what the server sent before it closed."""

from __future__ import annotations

import socket
import struct

from OpenSSL import SSL

from mutls.tls.alerts import alert_name

from helpers import read_until_close

HANDSHAKE, ALERT, CHANGE_CIPHER_SPEC, APPLICATION_DATA = 22, 21, 20, 23


def client_hello(version: int = SSL.TLS1_3_VERSION) -> bytes:
    """The first flight of a real OpenSSL client (one handshake record), to mutate."""
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.set_max_proto_version(version)
    client = SSL.Connection(context, None)
    client.set_connect_state()
    client.set_tlsext_host_name(b"localhost")
    try:
        client.do_handshake()
    except SSL.WantReadError:
        pass
    data = client.bio_read(65536)
    assert data[0] == HANDSHAKE and data[5] == 1, "not a ClientHello record"
    return bytes(data)


def record(content_type: int, payload: bytes, version: bytes = b"\x03\x03") -> bytes:
    """One TLS record around ``payload``."""
    return struct.pack("!B2sH", content_type, version, len(payload)) + payload


def truncated_client_hello(hello: bytes, keep: int) -> bytes:
    """The ClientHello cut to ``keep`` body bytes, re-framed so record and message lengths agree:
    the lengths inside the body then overrun it (a decode_error, not a wait for more)."""
    body = hello[9 : 9 + keep]
    message = b"\x01" + len(body).to_bytes(3, "big") + body
    return record(HANDSHAKE, message, hello[1:3])


def read_records(sock: socket.socket) -> tuple[list[tuple[int, bytes]], bytes, bool]:
    """Every record the server sends until it closes: the records, any bytes that did not form
    a whole record, and whether it closed (``False``: the socket timed out first)."""
    data, closed = read_until_close(sock)
    records = []
    while len(data) >= 5:
        content_type, _, length = struct.unpack("!B2sH", data[:5])
        if len(data) < 5 + length:
            break
        records.append((content_type, data[5 : 5 + length]))
        data = data[5 + length :]
    return records, data, closed


def plaintext_alert(records: list[tuple[int, bytes]]) -> str | None:
    """The name of the first unencrypted alert among ``records`` (``None`` if none)."""
    for content_type, payload in records:
        if content_type == ALERT and len(payload) == 2:
            return alert_name(payload[1])
    return None
