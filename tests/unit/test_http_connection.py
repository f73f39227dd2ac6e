"""The HTTP/1.1 connection driven by bytes alone: parsing, limits, smuggling, framing."""

from __future__ import annotations

import pytest

from mutls.http import (
    ConnectionClosed,
    Data,
    EndOfMessage,
    Event,
    HTTPConnection,
    HTTPLimits,
    ProtocolViolation,
    Request,
    simple_response,
)
from mutls.http.connection import ParseState
from mutls.http.framing import FREE_CHUNKS


def events(conn: HTTPConnection) -> list[Event]:
    found = []
    while (event := conn.next_event()) is not None:
        found.append(event)
    return found


def feed(data: bytes, limits: HTTPLimits | None = None, *, split: int = 0) -> list[Event]:
    conn = HTTPConnection(limits)
    if split:
        for i in range(0, len(data), split):
            conn.receive_data(data[i : i + split])
    else:
        conn.receive_data(data)
    return events(conn)


def body_of(evs: list[Event]) -> bytes:
    return b"".join(e.data for e in evs if isinstance(e, Data))


def test_get_request_head() -> None:
    evs = feed(b"GET /a%20b/c?x=1&y=%41 HTTP/1.1\r\nHost: example\r\nX-Y: z\r\n\r\n")
    req, end = evs
    assert isinstance(req, Request) and isinstance(end, EndOfMessage)
    assert req.method == "GET"
    assert req.path == "/a b/c"
    assert req.raw_path == b"/a%20b/c"
    assert req.query == b"x=1&y=%41"
    assert req.http_version == "1.1"
    assert req.keep_alive
    assert req.header(b"x-y") == b"z"
    assert req.headers == [(b"Host", b"example"), (b"X-Y", b"z")]


@pytest.mark.parametrize("split", [1, 3, 7])
def test_bytes_in_any_pieces_give_the_same_events(split: int) -> None:
    raw = b"POST /p?q HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
    evs = feed(raw, split=split)
    assert isinstance(evs[0], Request)
    assert evs[0].target == b"/p?q"
    assert body_of(evs) == b"hello"
    assert isinstance(evs[-1], EndOfMessage)


def test_pipelined_requests_come_out_in_order() -> None:
    raw = (
        b"".join(b"GET /%d HTTP/1.1\r\nHost: h\r\n\r\n" % i for i in range(5))
        + b"POST /last HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nok"
    )
    evs = feed(raw)
    paths = [e.path for e in evs if isinstance(e, Request)]
    assert paths == ["/0", "/1", "/2", "/3", "/4", "/last"]
    assert sum(isinstance(e, EndOfMessage) for e in evs) == 6
    assert body_of(evs) == b"ok"


def test_many_pipelined_requests_in_one_read_are_not_taken_for_a_big_head() -> None:
    one = b"GET /x HTTP/1.1\r\nHost: h\r\nUser-Agent: " + b"a" * 200 + b"\r\n\r\n"
    raw = one * 200 + one[:50]  # 50 KiB in one read, the last head unfinished
    evs = feed(raw, HTTPLimits(max_head_bytes=4096))
    assert not any(isinstance(e, ProtocolViolation) for e in evs)
    assert sum(isinstance(e, Request) for e in evs) == 200


def test_chunked_body_is_dechunked() -> None:
    raw = (
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\nTrailer: x\r\n\r\n"
    )
    evs = feed(raw, split=4)
    assert isinstance(evs[0], Request) and evs[0].chunked
    assert body_of(evs) == b"hello world"
    assert isinstance(evs[-1], EndOfMessage)


def test_expect_100_continue_is_flagged() -> None:
    evs = feed(b"PUT /up HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
    assert isinstance(evs[0], Request)
    assert evs[0].expect_continue
    assert len(evs) == 1  # the body has not come yet: the server must say 100 Continue first


def test_http_10_is_not_kept_alive_unless_asked() -> None:
    (req, _) = feed(b"GET / HTTP/1.0\r\n\r\n")
    assert isinstance(req, Request) and not req.keep_alive
    (req, _) = feed(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert isinstance(req, Request) and req.keep_alive
    (req, _) = feed(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    assert isinstance(req, Request) and not req.keep_alive


def error_of(evs: list[Event]) -> ProtocolViolation:
    errors = [e for e in evs if isinstance(e, ProtocolViolation)]
    assert len(errors) == 1, evs
    assert evs[-1] is errors[0], "nothing may follow an error"
    return errors[0]


@pytest.mark.parametrize(
    "raw",
    [
        # CL.TE and TE.CL smuggling: both framings at once
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n"
        b"0\r\n\r\n",
        # two Content-Length headers, equal or not, and a list
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 30\r\n\r\nabc",
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 3\r\n\r\nabc",
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n",
        # HTTP/1.1 needs exactly one Host (RFC 9112 3.2)
        b"GET / HTTP/1.1\r\nX: y\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        # obs-fold (RFC 9112 5.2 lets a server reject it with 400)
        b"GET / HTTP/1.1\r\nHost: h\r\nX-Folded: one\r\n two\r\n\r\n",
        # whitespace before the colon, a bare LF inside a value, garbage
        b"GET / HTTP/1.1\r\nHost : h\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        b"GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
)
def test_malformed_and_smuggling_requests_get_400(raw: bytes) -> None:
    evs = feed(raw)
    assert error_of(evs).status == 400
    assert not any(isinstance(e, Request) and e.path == "/smuggled" for e in evs)


def test_nothing_is_parsed_after_an_error() -> None:
    conn = HTTPConnection()
    conn.receive_data(b"GET / HTTP/1.1\r\nHost : h\r\n\r\n")
    conn.receive_data(b"GET /after HTTP/1.1\r\nHost: h\r\n\r\n")
    assert error_of(events(conn)).status == 400


def test_head_over_the_limit_is_431() -> None:
    limits = HTTPLimits(max_head_bytes=1024)
    evs = feed(b"GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + b"a" * 2000 + b"\r\n\r\n", limits)
    assert error_of(evs).status == 431


def test_head_that_never_ends_is_431_without_buffering_it_all() -> None:
    conn = HTTPConnection(HTTPLimits(max_head_bytes=1024))
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: h\r\nX-Big: ")
    for _ in range(10):
        conn.receive_data(b"a" * 500)  # the header value never completes
    assert error_of(events(conn)).status == 431


def test_too_many_headers_is_431() -> None:
    headers = b"".join(b"X-%d: v\r\n" % i for i in range(20))
    evs = feed(b"GET / HTTP/1.1\r\n" + headers + b"\r\n", HTTPLimits(max_headers=10))
    assert error_of(evs).status == 431


def test_long_target_is_414() -> None:
    evs = feed(b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\n\r\n", HTTPLimits(max_head_bytes=1024))
    assert error_of(evs).status == 414


def test_declared_body_over_the_limit_is_413_before_it_arrives() -> None:
    evs = feed(
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1000\r\n\r\n",
        HTTPLimits(max_body_bytes=100),
    )
    assert error_of(evs).status == 413
    assert not any(isinstance(e, Request) for e in evs)


def test_chunked_body_over_the_limit_is_413() -> None:
    chunk = b"40\r\n" + b"x" * 64 + b"\r\n"
    evs = feed(
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk * 3,
        HTTPLimits(max_body_bytes=100),
    )
    assert error_of(evs).status == 413
    assert not any(isinstance(e, EndOfMessage) for e in evs)


def test_http_2_preface_is_refused() -> None:
    evs = feed(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    assert error_of(evs).status in (400, 505)


def test_eof_between_requests_and_in_the_middle() -> None:
    conn = HTTPConnection()
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    conn.receive_data(b"")
    assert isinstance(events(conn)[-1], ConnectionClosed)
    conn = HTTPConnection()
    conn.receive_data(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc")
    conn.receive_data(b"")
    assert error_of(events(conn)).status == 400


def test_upgrade_request_is_answered_then_closed() -> None:
    evs = feed(
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
        b"\x81\x85garbage"
    )
    req = evs[0]
    assert isinstance(req, Request) and not req.keep_alive


def test_the_parse_state_follows_a_request_through_head_and_body() -> None:
    conn = HTTPConnection()
    assert conn.parse_state is ParseState.IDLE
    conn.receive_data(b"POST / HTTP/1.1\r\nHost: h\r\n")
    assert conn.parse_state is ParseState.HEAD
    conn.receive_data(b"Content-Length: 4\r\n\r\nab")
    assert conn.parse_state is ParseState.BODY
    conn.receive_data(b"cd")
    assert conn.parse_state is ParseState.IDLE
    conn.receive_data(b"")  # a close between requests is no error
    assert conn.parse_state is ParseState.IDLE
    assert isinstance(events(conn)[-1], ConnectionClosed)


def test_a_refused_request_leaves_the_parser_failed_for_good() -> None:
    conn = HTTPConnection()
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: h\r\n")
    conn.receive_data(b"")  # closed in the middle of a head
    assert conn.parse_state is ParseState.FAILED
    assert error_of(events(conn)).status == 400
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert conn.parse_state is ParseState.FAILED and events(conn) == []


def test_an_upgrade_hands_the_rest_of_the_bytes_over() -> None:
    conn = HTTPConnection()
    conn.receive_data(
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nab"
    )
    assert conn.parse_state is ParseState.UPGRADED
    conn.receive_data(b"GET / HTTP/1.1\r\n")  # not parsed: another protocol's bytes
    assert conn.parse_state is ParseState.UPGRADED
    assert conn.upgrade_data == b"abGET / HTTP/1.1\r\n"
    assert [type(e) for e in events(conn)] == [Request, EndOfMessage]


# -- responses ----------------------------------------------------------------------------------


def request(raw: bytes) -> tuple[HTTPConnection, Request]:
    conn = HTTPConnection()
    conn.receive_data(raw)
    req = events(conn)[0]
    assert isinstance(req, Request)
    return conn, req


def test_response_with_length_keeps_the_connection() -> None:
    conn, req = request(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    w = conn.respond(req)
    out = w.head(200, [(b"Content-Type", b"text/plain"), (b"Content-Length", b"5")])
    out += w.body(b"hello") + w.end()
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert head.lower().count(b"content-length: 5") == 1
    assert b"connection: close" not in head.lower()
    assert body == b"hello"
    assert w.keep_alive


def test_response_without_length_is_chunked_for_http_11() -> None:
    conn, req = request(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    w = conn.respond(req)
    out = w.head(200, []) + w.body(b"abc") + w.body(b"") + w.body(b"de") + w.end()
    head, _, body = out.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head
    assert body == b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"


def test_response_without_length_to_http_10_ends_with_the_connection() -> None:
    conn, req = request(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    w = conn.respond(req)
    out = w.head(200, []) + w.body(b"abc") + w.end()
    assert b"connection: close" in out
    assert out.endswith(b"\r\n\r\nabc")
    assert not w.keep_alive


def test_head_response_has_headers_but_no_body() -> None:
    conn, req = request(b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n")
    w = conn.respond(req)
    out = w.head(200, [(b"content-length", b"5")]) + w.body(b"hello") + w.end()
    assert out.endswith(b"\r\n\r\n")
    assert b"content-length: 5" in out
    assert b"hello" not in out
    assert w.keep_alive


@pytest.mark.parametrize("status", [204, 304])
def test_bodiless_statuses_send_no_body(status: int) -> None:
    conn, req = request(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    w = conn.respond(req)
    out = w.head(status, []) + w.body(b"nope") + w.end()
    assert out.endswith(b"\r\n\r\n") and b"nope" not in out
    assert b"transfer-encoding" not in out


def test_body_longer_than_declared_is_cut_and_the_connection_closed() -> None:
    conn, req = request(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    w = conn.respond(req)
    out = w.head(200, [(b"content-length", b"2")]) + w.body(b"abcdef") + w.end()
    assert out.endswith(b"\r\n\r\nab")
    assert not w.keep_alive


def test_app_headers_cannot_inject_lines_or_framing() -> None:
    conn, req = request(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    with pytest.raises(ValueError):
        conn.respond(req).head(200, [(b"x-a", b"b\r\nSet-Cookie: evil")])
    w = conn.respond(req)
    out = w.head(200, [(b"Transfer-Encoding", b"gzip"), (b"Connection", b"upgrade")])
    assert b"gzip" not in out and b"upgrade" not in out


def test_closing_response_says_so() -> None:
    conn, req = request(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    w = conn.respond(req, closing=True)
    assert b"connection: close" in w.head(200, [(b"content-length", b"0")])


def test_simple_response_is_complete() -> None:
    out = simple_response(None, 400, "this is an HTTPS port")
    assert out.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert out.endswith(b"\r\n\r\nthis is an HTTPS port\n")
    assert b"connection: close" in out


def test_rtsp_request_line_is_400_even_pipelined_after_an_http_one() -> None:
    evs = feed(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b RTSP/1.0\r\nHost: x\r\n\r\n")
    assert isinstance(evs[0], Request) and evs[0].path == "/a"
    assert error_of(evs).status == 400


def test_a_body_that_mentions_rtsp_is_just_a_body() -> None:
    body = b"GET / RTSP/1.0\r\n"
    evs = feed(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 16\r\n\r\n" + body)
    assert not [e for e in evs if isinstance(e, ProtocolViolation)]
    assert body_of(evs) == body


# -- what a body may cost, and what the app may see of a head -----------------------------------

CHUNKED = b"POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"


@pytest.mark.parametrize("split", [0, 1, 3])
def test_a_chunk_announced_over_the_body_limit_is_413_before_its_data(split: int) -> None:
    limits = HTTPLimits(max_body_bytes=1 << 20)
    # 256 MiB announced and not one byte of it sent: refused on the size line alone.
    assert error_of(feed(CHUNKED + b"10000000\r\n", limits, split=split)).status == 413
    # A chunk that fits alone but not after the ones before it, announced with its extension.
    first = b"80000\r\n" + b"x" * 0x80000 + b"\r\n"
    evs = feed(CHUNKED + first + b"80001;name=value\r\n", limits, split=split)
    assert error_of(evs).status == 413


def test_a_body_of_tiny_chunks_is_400_past_the_free_chunks() -> None:
    conn = HTTPConnection(HTTPLimits(min_chunk_average=16))
    conn.receive_data(CHUNKED)
    for _ in range(5000):
        conn.receive_data(b"1\r\nx\r\n")
    evs = events(conn)
    assert error_of(evs).status == 400
    # chunk n is refused once n > FREE_CHUNKS + body // 16: the first 1092 get through
    assert len(body_of(evs)) == 1092 == FREE_CHUNKS + 1092 // 16


@pytest.mark.parametrize(("size", "average"), [(16, 16), (1, 0)])
def test_chunks_of_the_average_or_with_the_limit_off_are_read(size: int, average: int) -> None:
    chunk = b"%x\r\n%s\r\n" % (size, b"y" * size)
    evs = feed(CHUNKED + chunk * 5000 + b"0\r\n\r\n", HTTPLimits(min_chunk_average=average))
    assert not [e for e in evs if isinstance(e, ProtocolViolation)]
    assert len(body_of(evs)) == 5000 * size and isinstance(evs[-1], EndOfMessage)


def test_a_read_of_tiny_chunks_is_one_piece_of_body_not_one_per_chunk() -> None:
    evs = feed(CHUNKED + b"1\r\nx\r\n" * 1000 + b"0\r\n\r\n")
    assert [type(e) for e in evs] == [Request, Data, EndOfMessage]
    assert body_of(evs) == b"x" * 1000


@pytest.mark.parametrize(
    "rest",
    [b"1;" + b"e" * 5000 + b"\r\nx\r\n0\r\n\r\n", b"0\r\nX-Trailer: " + b"t" * 5000 + b"\r\n\r\n"],
    ids=["chunk-extension", "trailer"],
)
def test_a_chunk_size_or_trailer_line_over_4k_is_400_without_buffering_it(rest: bytes) -> None:
    conn = HTTPConnection()
    conn.receive_data(CHUNKED)
    for i in range(0, 4500, 100):  # the line never ends: refused once it is over the bound
        conn.receive_data(rest[i : i + 100])
    assert error_of(events(conn)).status == 400


def test_trailers_are_not_headers() -> None:
    evs = feed(CHUNKED + b"3\r\nabc\r\n0\r\nX-Trailer: t\r\nX-Client-Cert: forged\r\n\r\n")
    req = evs[0]
    assert isinstance(req, Request) and isinstance(evs[-1], EndOfMessage)
    assert req.headers == [(b"Host", b"h"), (b"Transfer-Encoding", b"chunked")]
    assert not req.certificate_headers


def test_pipelined_bodies_of_both_framings_then_an_oversized_chunk() -> None:
    raw = (
        b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 6\r\n\r\n\r\n\r\n\r\n"
        + CHUNKED.replace(b"/up", b"/b")
        + b"2\r\nok\r\n0\r\n\r\n"
        + CHUNKED
        + b"10000000\r\n"
    )
    for split in range(12):
        evs = feed(raw, HTTPLimits(max_body_bytes=1 << 20), split=split)
        assert [e.path for e in evs if isinstance(e, Request)] == ["/a", "/b", "/up"]
        assert body_of(evs) == b"\r\n\r\n\r\nok"
        assert error_of(evs).status == 413


def test_header_names_with_underscores_are_dropped() -> None:
    conn = HTTPConnection()
    conn.receive_data(
        b"POST / HTTP/1.1\r\nHost: h\r\nContent_Type: evil\r\nContent-Type: text/plain\r\n"
        b"X_Client_Cert: forged\r\nContent-Length: 0\r\n\r\n"
    )
    req = events(conn)[0]
    assert isinstance(req, Request)
    assert [n for n, _ in req.headers] == [b"Host", b"Content-Type", b"Content-Length"]
    assert conn.dropped_name == b"Content_Type"
