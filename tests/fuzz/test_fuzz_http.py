"""The HTTP request-head parser under hypothesis: arbitrary and mutated bytes, in arbitrary
pieces, never raise (a peer's fault is a ``ProtocolViolation`` event), never hang, and nothing
follows an error; valid requests round-trip field by field."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mutls.http import (
    ConnectionClosed,
    Data,
    EndOfMessage,
    Event,
    HTTPConnection,
    HTTPLimits,
    ProtocolViolation,
    Request,
)
from mutls.http.forwarded_certificates import KNOWN_NAMES, KNOWN_PREFIXES

from budget import budget

FAST = budget(300)
LIMITS = HTTPLimits(max_head_bytes=2048, max_headers=20, max_body_bytes=4096)
#: limits small enough for random input to reach every refusal (413, 414, 431).
TIGHT = HTTPLimits(max_head_bytes=200, max_headers=4, max_body_bytes=64)
EVENT_TYPES = (Request, Data, EndOfMessage, ProtocolViolation, ConnectionClosed)


def feed(pieces: list[bytes], *, close: bool = True, limits: HTTPLimits = LIMITS) -> list[Event]:
    conn = HTTPConnection(limits)
    for piece in pieces:
        conn.receive_data(piece)
    if close:
        conn.receive_data(b"")
    events = []
    while (event := conn.next_event()) is not None:
        events.append(event)
    return events


def check_events(events: list[Event]) -> None:
    assert all(isinstance(e, EVENT_TYPES) for e in events)
    errors = [i for i, e in enumerate(events) if isinstance(e, ProtocolViolation)]
    if errors:
        assert errors == [len(events) - 1], "events after a protocol error"
        error = events[-1]
        assert isinstance(error, ProtocolViolation)
        assert error.status in (400, 413, 414, 431, 505)
        assert error.reason


def pieces_of(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds) if b > a]


@FAST
@given(data=st.binary(max_size=600), cuts=st.lists(st.integers(0, 600), max_size=6))
def test_arbitrary_bytes_only_give_events(data: bytes, cuts: list[int]) -> None:
    check_events(feed(pieces_of(data, cuts), limits=TIGHT))
    check_events(feed(pieces_of(b"GET / HTTP/1.1\r\n" + data, cuts), limits=TIGHT))


# -- valid requests, and their mutations -----------------------------------------------------

TOKEN = st.text(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-", min_size=1, max_size=12
)
PATH = st.text("abcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@/", max_size=30)
VALUE = st.text(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 !#$%&'*+-.^_`|~/:;=?@",
    max_size=40,
).map(str.strip)
RESERVED = {"host", "content-length", "transfer-encoding", "connection", "expect", "upgrade"}


def shown(name: str) -> bool:
    """A name the app sees as any other: not one the server acts on, nor a certificate's."""
    lowered = name.lower()
    certificate = lowered.encode() in KNOWN_NAMES or lowered.encode().startswith(KNOWN_PREFIXES)
    return lowered not in RESERVED and not certificate


@st.composite
def requests(draw: st.DrawFn) -> tuple[bytes, dict[str, object]]:
    method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]))
    path = "/" + draw(PATH)
    query = draw(st.one_of(st.none(), PATH))
    names = draw(st.lists(TOKEN.filter(shown), max_size=8))
    headers = [("Host", "example.org"), *((n, draw(VALUE)) for n in names)]
    body = draw(st.binary(max_size=300)) if method in ("POST", "PUT", "PATCH") else b""
    chunked = bool(body) and draw(st.booleans())
    target = path + (f"?{query}" if query is not None else "")
    head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{n}: {v}\r\n" for n, v in headers)
    if chunked:
        head += "Transfer-Encoding: chunked\r\n"
        sizes = draw(st.lists(st.integers(1, 64), max_size=6))
        wire, rest = b"", body
        for size in sizes:
            part, rest = rest[:size], rest[size:]
            if part:
                wire += b"%x\r\n%s\r\n" % (len(part), part)
        if rest:
            wire += b"%x\r\n%s\r\n" % (len(rest), rest)
        wire += b"0\r\n\r\n"
    else:
        if body:
            head += f"Content-Length: {len(body)}\r\n"
        wire = body
    raw = (head + "\r\n").encode("latin-1") + wire
    return raw, {"method": method, "target": target, "headers": headers, "body": body}


@pytest.mark.slow
@FAST
@given(request=requests(), cuts=st.lists(st.integers(0, 2000), max_size=8))
def test_valid_requests_round_trip(
    request: tuple[bytes, dict[str, object]], cuts: list[int]
) -> None:
    raw, want = request
    events = feed(pieces_of(raw, cuts), close=False)
    check_events(events)
    head = events[0]
    assert isinstance(head, Request), events
    assert head.method == want["method"]
    assert head.target == str(want["target"]).encode()
    assert [(n.decode(), v.decode()) for n, v in head.headers[: len(want["headers"])]] == want[
        "headers"
    ]  # type: ignore[arg-type]
    assert b"".join(e.data for e in events if isinstance(e, Data)) == want["body"]
    assert isinstance(events[-1], EndOfMessage)


@pytest.mark.slow
@FAST
@given(
    request=requests(),
    edits=st.lists(
        st.tuples(
            st.integers(0, 2000),
            st.sampled_from(["flip", "delete", "insert"]),
            st.binary(min_size=1, max_size=4),
        ),
        min_size=1,
        max_size=4,
    ),
    cuts=st.lists(st.integers(0, 2000), max_size=4),
)
def test_mutated_requests_only_give_events(
    request: tuple[bytes, dict[str, object]],
    edits: list[tuple[int, str, bytes]],
    cuts: list[int],
) -> None:
    raw = bytearray(request[0])
    for at, how, extra in edits:
        i = at % len(raw)
        if how == "flip":
            raw[i] ^= extra[0] or 1
        elif how == "delete":
            del raw[i : i + len(extra)]
        else:
            raw[i:i] = extra
        if not raw:
            return
    check_events(feed(pieces_of(bytes(raw), cuts)))
    check_events(feed(pieces_of(bytes(raw), cuts), limits=TIGHT))


@budget(50)
@given(request=requests(), count=st.integers(2, 5))
def test_pipelined_valid_requests_come_out_in_order(
    request: tuple[bytes, dict[str, object]], count: int
) -> None:
    events = feed([request[0] * count], close=False)
    check_events(events)
    assert sum(isinstance(e, Request) for e in events) == count
    assert sum(isinstance(e, EndOfMessage) for e in events) == count


@pytest.mark.slow
@FAST
@given(
    before=st.lists(requests(), max_size=3),
    extension=st.sampled_from([b"", b";a=b", b';q="x;y"']),
    cuts=st.lists(st.integers(0, 4000), max_size=10),
)
def test_a_chunk_over_the_limit_is_refused_on_its_size_line_however_the_reads_are_cut(
    before: list[tuple[bytes, dict[str, object]]], extension: bytes, cuts: list[int]
) -> None:
    # Valid requests pipelined before it (their bodies of both framings), and reads cut at
    # random: the 256 MiB chunk is refused with no byte of it sent.
    oversized = b"POST /big HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
    raw = b"".join(r[0] for r in before) + oversized + b"10000000" + extension + b"\r\n"
    events = feed(pieces_of(raw, cuts), close=False)
    check_events(events)
    assert sum(isinstance(e, EndOfMessage) for e in events) == len(before)
    error = events[-1]
    assert isinstance(error, ProtocolViolation) and error.status == 413
