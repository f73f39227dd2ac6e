"""What one request body may cost the server, over real sockets: a chunk announcing more than
the body limit is refused on its size line, a body of tiny chunks past the free ones is refused,
and a connection hands the parser at most FEED_PER_TURN bytes and LINES_PER_TURN line ends per
turn of the event loop, so that another connection is answered while it uploads. Counts, never
times."""

from __future__ import annotations

import collections
import re
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from mutls.http import HTTPConnection, HTTPLimits
from mutls.http.framing import FREE_CHUNKS
from mutls.server import ServerConfig, Timeouts, serve_in_thread
from mutls.server.intake import FEED_PER_TURN, LINES_PER_TURN

from helpers import asgi_answer, asgi_body, read_until_close

CHUNKED = b"POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
LIMITS = HTTPLimits(max_body_bytes=1 << 20)
TIMEOUTS = Timeouts(handshake=2.0, header=2.0, keep_alive=2.0, graceful=2.0)
WAIT = 10


#: the paths the app answered, in order.
SEEN: list[str] = []


async def measure(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers the body's length; notes the path in :data:`SEEN`."""
    body = await asgi_body(receive)
    SEEN.append(scope["path"])
    await asgi_answer(send, b"%d" % len(body))


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    config = ServerConfig(port=0, app=measure, limits=LIMITS, timeouts=TIMEOUTS)
    with serve_in_thread(config) as running:
        yield running.ports[0]


def status_of(raw: bytes) -> int:
    match = re.match(rb"HTTP/1\.1 (\d{3}) ", raw)
    assert match, raw[:100]
    return int(match[1])


def test_a_chunk_announcing_more_than_the_limit_is_refused_before_any_of_it(port: int) -> None:
    # 256 MiB announced, nothing of it sent: the answer comes at once (before, the server read
    # up to --max-body-size of it first; here it would wait, then time out with a 408).
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        sock.sendall(CHUNKED + b"10000000\r\n")
        raw, closed = read_until_close(sock)
    assert closed and status_of(raw) == 413


def test_a_body_of_one_byte_chunks_is_refused_past_the_free_chunks(port: int) -> None:
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        sock.sendall(CHUNKED)
        try:
            for _ in range(8):  # 8 x 1000 chunks: 8000 bytes of body in 48,000 on the wire
                sock.sendall(b"1\r\nx\r\n" * 1000)
                sent += 1000
        except OSError:
            pass  # the server closed while we sent: the refusal may be lost to a reset
        raw, closed = read_until_close(sock)
    assert closed
    assert sent < 8000 or raw, "the server read 8000 one-byte chunks"
    if raw:
        assert status_of(raw) == 400 and b"too many small chunks" in raw
    assert FREE_CHUNKS < 8000 // 2  # what the count above relies on


def test_a_connection_feeds_the_parser_a_bounded_amount_per_loop_turn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The event loop stands still while a client queues a large body of one-byte chunks in
    the socket (reads then come 256 KiB at a time); once it turns, no turn feeds any one
    connection's parser more than FEED_PER_TURN bytes or LINES_PER_TURN line ends (a 1-byte
    chunk is two), and a request on another connection is answered before the upload's."""
    fed: list[tuple[int, int, int, int]] = []  # (turn, connection, bytes, line ends)
    turns = [0]
    receive_data = HTTPConnection.receive_data

    def counting(self: HTTPConnection, data: bytes) -> None:
        fed.append((turns[0], id(self), len(data), bytes(data).count(b"\n")))
        receive_data(self, data)

    monkeypatch.setattr(HTTPConnection, "receive_data", counting)
    SEEN.clear()
    body = 256 * 1024  # 1.5 MiB on the wire: ~24 turns at most FEED_PER_TURN each
    limits = HTTPLimits(min_chunk_average=0)  # the chunks are read, not refused
    config = ServerConfig(port=0, app=measure, limits=limits, timeouts=TIMEOUTS)
    with serve_in_thread(config) as running:
        loop = running.loop
        ticking, release = threading.Event(), threading.Event()
        ticking.set()

        def tick() -> None:  # runs once per turn of the loop
            turns[0] += 1
            if ticking.is_set():
                loop.call_soon(tick)

        loop.call_soon_threadsafe(tick)
        loop.call_soon_threadsafe(release.wait, WAIT)  # the loop stands still meanwhile
        upload = socket.create_connection(("127.0.0.1", running.ports[0]), timeout=WAIT)
        queued = threading.Event()
        answers: dict[str, bytes] = {}

        def send_upload() -> None:
            try:
                upload.sendall(CHUNKED)
                for n in range(body // 8192):
                    upload.sendall(b"1\r\nx\r\n" * 8192)
                    if n == 16:  # 768 KiB queued in the socket
                        queued.set()
                upload.sendall(b"0\r\n\r\n")
                answers["upload"] = read_until_close(upload)[0]
            finally:
                queued.set()

        sender = threading.Thread(target=send_upload)
        sender.start()
        queued.wait(WAIT)
        release.set()
        with socket.create_connection(("127.0.0.1", running.ports[0]), timeout=WAIT) as probe:
            probe.sendall(b"GET /probe HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
            answers["probe"] = read_until_close(probe)[0]
        sender.join(WAIT * 3)
        upload.close()
        ticking.clear()
    assert answers["upload"].endswith(b"\r\n\r\n%d" % body)
    assert status_of(answers["probe"]) == 200
    assert SEEN == ["/probe", "/up"]
    per_turn: collections.Counter[tuple[int, int]] = collections.Counter()
    lines_per_turn: collections.Counter[tuple[int, int]] = collections.Counter()
    for turn, connection, size, lines in fed:
        per_turn[turn, connection] += size
        lines_per_turn[turn, connection] += lines
    wire = len(CHUNKED) + body * 6 + 5
    assert sum(per_turn.values()) >= wire
    assert max(per_turn.values()) <= FEED_PER_TURN
    assert max(lines_per_turn.values()) <= LINES_PER_TURN
    assert len(per_turn) >= 2 * body // LINES_PER_TURN
