"""What one request body may cost the server, over real sockets: a chunk announcing more than
the body limit is refused on its size line, and a body of tiny chunks past the free ones is
refused. Counts, never times."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from mutls.http import HTTPLimits
from mutls.http.framing import FREE_CHUNKS
from mutls.server import ServerConfig, Timeouts, serve_in_thread

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
