"""WebSocket frames under hypothesis: any sequence of frames (valid, odd or broken: any opcode,
reserved bits, masking, length encodings, UTF-8 or not, fragmented anyhow) written in pieces
cut at random. The server never crashes and never hangs: it echoes, answers pings, or closes
with a close frame whose code says why (1000, 1002, 1007, 1009, the client's own, 1011 when a
stuck frame keeps the client from answering pings) and then ends the connection; a new
WebSocket is served afterwards. The session alone (no socket) gets raw bytes too.

Budget: tests/budget.py (``MUTLS_FUZZ_SCALE=20`` for a deeper hunt).
"""

from __future__ import annotations

import itertools
import logging
import struct
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mutls.server import ServerConfig, serve_in_thread
from mutls.ws import Closed, WebSocketLimits, WebSocketSession

from budget import budget
from wsframes import CLOSE, TEXT, close_frame, echo_messages, frame, read_frame, upgrade

MAX = 4096
#: codes the server may close with: its own, or (echoed) any a client may send.
SERVER_CODES = {1000, 1001, 1002, 1007, 1009, 1011}


async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "websocket":
        return
    await echo_messages(receive, send)


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    limits = WebSocketLimits(max_message_bytes=MAX, ping_interval=0.2, ping_timeout=1.0)
    config = ServerConfig(host="127.0.0.1", port=0, app=echo, websocket=limits)
    with serve_in_thread(config) as running:
        yield running.ports[0]


payloads = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=100).map(lambda t: t.encode()),
    st.integers(0, 6000).map(lambda n: b"z" * n),
)


@st.composite
def frames(draw: st.DrawFn) -> bytes:
    if draw(st.integers(0, 19)) == 0:
        return draw(st.binary(min_size=1, max_size=40))  # not a frame at all
    opcode = draw(st.sampled_from([0x0, 0x1, 0x2, 0x8, 0x9, 0xA]) | st.integers(0, 15))
    payload = draw(payloads)
    if opcode == CLOSE and draw(st.booleans()):
        payload = struct.pack("!H", draw(st.integers(0, 65535))) + payload[:100]
    return frame(
        opcode,
        payload,
        fin=draw(st.integers(0, 3)) > 0,
        mask=draw(st.integers(0, 9)) > 0,
        rsv=draw(st.sampled_from([0, 0, 0, 0, 1, 2, 4, 7])),
        long_length=draw(st.sampled_from([0, 0, 0, 2, 8])),
    )


def cut(data: bytes, points: list[int]) -> list[bytes]:
    edges = sorted({0, len(data), *(p % (len(data) + 1) for p in points)})
    return [data[a:b] for a, b in itertools.pairwise(edges)]


@budget(120)
@given(
    sequence=st.lists(frames(), min_size=1, max_size=8),
    points=st.lists(st.integers(0, 10_000), max_size=6),
    end_cleanly=st.booleans(),
)
def test_any_frames_get_echoes_or_a_clean_close(
    caplog: pytest.LogCaptureFixture,
    port: int,
    sequence: list[bytes],
    points: list[int],
    end_cleanly: bool,
) -> None:
    caplog.set_level(logging.ERROR)  # asyncio's "Fatal error in data_received" and the app's
    data = b"".join(sequence) + (close_frame(1000) if end_cleanly else b"")
    with upgrade(port) as sock:
        sock.settimeout(10)
        try:
            for piece in cut(data, points):
                sock.sendall(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server closed first (a broken rule): what it sent must still parse
        if not end_cleanly:
            try:
                sock.sendall(close_frame(1000))
            except OSError:
                pass
        closed_with = None
        try:
            while True:
                got = read_frame(sock)  # asserts the server never masks
                if got is None:
                    break
                opcode, payload, _fin = got
                assert opcode in (0x1, 0x2, 0x8, 0x9, 0xA), opcode
                if opcode == CLOSE:
                    closed_with = struct.unpack("!H", payload[:2])[0] if payload else None
                    assert read_frame(sock) is None  # nothing after the close
                    break
        except ConnectionResetError:
            closed_with = -1  # reset after the close frame was sent: allowed, nothing to check
        assert closed_with is None or closed_with == -1 or 1000 <= closed_with < 5000
        if closed_with is not None and closed_with > 0 and closed_with < 3000:
            assert closed_with in SERVER_CODES, closed_with
    with upgrade(port) as fresh:  # the server still serves
        fresh.sendall(frame(TEXT, b"alive"))
        got = read_frame(fresh)
        while got is not None and got[0] == 0x9:  # the server's pings (0.2 s apart) may come first
            got = read_frame(fresh)
        assert got == (TEXT, b"alive", True)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


@budget(400)
@given(st.lists(st.binary(max_size=200), max_size=10), st.booleans())
def test_the_session_takes_any_bytes(chunks: list[bytes], eof: bool) -> None:
    session = WebSocketSession(WebSocketLimits(max_message_bytes=100))
    for chunk in [*chunks, b""] if eof else chunks:
        session.receive_data(chunk)
        while (event := session.next_event()) is not None:
            if isinstance(event, Closed):
                assert 1000 <= event.code < 5000
        session.data_to_send()
    if eof:
        assert session.closed


def test_no_error_was_logged(caplog: pytest.LogCaptureFixture, port: int) -> None:
    """The server's own log during one broken conversation: no ERROR, no traceback."""
    with caplog.at_level(logging.INFO, logger="mutls"), upgrade(port) as sock:
        sock.sendall(frame(TEXT, b"\xff") + frame(3, b""))
        while read_frame(sock) is not None:
            pass
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
