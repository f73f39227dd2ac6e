"""mutls.ws without a socket: the handshake's rules and the session's events, fed bytes."""

from __future__ import annotations

import pytest

from mutls.http.events import Request
from mutls.ws import (
    Closed,
    HandshakeError,
    Message,
    Pong,
    WebSocketLimits,
    WebSocketSession,
    accept_response,
    check_handshake,
    wants_websocket,
)

from wsframes import ACCEPT, BINARY, PING, TEXT, close_frame, frame

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="


def request(*headers: tuple[bytes, bytes], method: str = "GET") -> Request:
    base = [
        (b"Host", b"x"),
        (b"Upgrade", b"WebSocket"),
        (b"Connection", b"keep-alive, Upgrade"),
        (b"Sec-WebSocket-Key", KEY),
        (b"Sec-WebSocket-Version", b"13"),
    ]
    names = {name.lower() for name, _ in headers}
    kept = [(n, v) for n, v in base if n.lower() not in names]
    return Request(method, b"/", b"/", "/", b"", "1.1", [*kept, *headers], keep_alive=False)


def test_a_handshake_with_tokens_in_any_case() -> None:
    req = request((b"Sec-WebSocket-Protocol", b"a, b"), (b"sec-websocket-protocol", b"c"))
    assert wants_websocket(req)
    shake = check_handshake(req)
    assert shake.subprotocols == ("a", "b", "c")
    head = accept_response(shake, "b", [(b"X-Extra", b"1"), (b"Connection", b"close")])
    assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"sec-websocket-accept: " + ACCEPT in head
    assert b"sec-websocket-protocol: b\r\n" in head and b"X-Extra: 1\r\n" in head
    assert b"close" not in head  # the app cannot break the upgrade's own headers


def test_the_app_cannot_pick_a_subprotocol_not_offered_or_split_a_header() -> None:
    shake = check_handshake(request())
    with pytest.raises(ValueError, match="not offered"):
        accept_response(shake, "chat")
    with pytest.raises(ValueError, match="line break"):
        accept_response(shake, None, [(b"X-A", b"1\r\nSet-Cookie: x")])


@pytest.mark.parametrize(
    ("changes", "status"),
    [
        ({"method": "POST"}, 400),
        ({"headers": ((b"Connection", b"keep-alive"),)}, 400),
        ({"headers": ((b"Sec-WebSocket-Version", b"13, 8"),)}, 426),
        ({"headers": ((b"Sec-WebSocket-Key", b"AAAA"),)}, 400),
        ({"headers": ((b"Sec-WebSocket-Key", b"not base64!!not base64!!"),)}, 400),
    ],
)
def test_broken_handshakes(changes: dict[str, object], status: int) -> None:
    req = request(*changes.get("headers", ()), method=str(changes.get("method", "GET")))  # type: ignore[arg-type]
    with pytest.raises(HandshakeError) as refused:
        check_handshake(req)
    assert refused.value.status == status


def test_messages_are_parsed_only_when_asked_for() -> None:
    """A read of many messages stays bytes until the caller takes them one by one (its queue
    bounds what is parsed; the read bounds what is buffered)."""
    session = WebSocketSession()
    session.receive_data(b"".join(frame(TEXT, b"%d" % n) for n in range(1000)))
    assert session.next_event() == Message("0")
    assert session.next_event() == Message("1")
    assert len(session._ready) == 0  # nothing parsed ahead


def test_eof_after_messages_gives_them_first_then_1006() -> None:
    session = WebSocketSession()
    session.receive_data(frame(BINARY, b"one") + frame(TEXT, b"two"))
    session.receive_data(b"")
    events = [session.next_event() for _ in range(3)]
    assert events == [Message(b"one"), Message("two"), Closed(1006, "connection lost")]
    assert session.next_event() is None


def test_ping_pong_and_the_servers_close() -> None:
    session = WebSocketSession(WebSocketLimits(max_message_bytes=10))
    session.receive_data(frame(PING, b"p"))
    assert session.next_event() is None
    assert session.data_to_send() == b"\x8a\x01p"  # the pong, unmasked
    session.ping(b"abcd")
    assert session.data_to_send() == b"\x89\x04abcd"
    session.receive_data(frame(0xA, b"abcd"))
    assert session.next_event() == Pong(b"abcd")
    session.close(4000, "done")
    assert session.data_to_send() == b"\x88\x06\x0f\xa0done"
    assert not session.open
    with pytest.raises(RuntimeError):
        session.send("late")
    session.receive_data(frame(TEXT, b"dropped") + close_frame(4000, b"done"))
    assert session.next_event() == Closed(4000, "done", by_client=True)


def test_text_is_weighed_in_utf8_bytes() -> None:
    session = WebSocketSession(WebSocketLimits(max_message_bytes=8))
    session.receive_data(frame(TEXT, "€€".encode()))  # 2 characters, 6 bytes: fits
    assert session.next_event() == Message("€€")
    session.receive_data(frame(TEXT, "€€€".encode()))  # 3 characters, 9 bytes: too big
    assert session.next_event() == Closed(1009, "message too big")


def test_the_http_side_keeps_what_follows_an_upgrade_bounded() -> None:
    from mutls.http.connection import MAX_UPGRADE_DATA, HTTPConnection

    conn = HTTPConnection()
    conn.receive_data(
        b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nab"
    )
    assert conn.upgrade_data == b"ab"
    conn.receive_data(b"cd")  # a later read, while an earlier request still runs
    assert conn.upgrade_data == b"abcd"
    for _ in range(3):
        conn.receive_data(b"x" * MAX_UPGRADE_DATA)
    assert len(conn.upgrade_data) <= 2 * MAX_UPGRADE_DATA + 4  # then dropped
    plain = HTTPConnection()
    plain.receive_data(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert plain.upgrade_data is None
