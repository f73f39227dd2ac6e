"""RFC 9113 over a real TLS socket, frame by frame: what h2spec would check (it is not in
Debian, PyPI or npm; docs/server.md says how to run it elsewhere), the TLS requirements of
section 9.2, ALPN under each ``--http``, and the known HTTP/2 attacks, each refused with a
bounded cost that the test counts (frames, app calls), never times."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from hyperframe.frame import PriorityFrame

from mutls import pki
from mutls.http.connection import HTTPLimits
from mutls.http.http2 import H2Limits
from mutls.server import ServerConfig, Timeouts, serve_in_thread
from mutls.server.thread import RunningServer
from mutls.tls import ClientCertMode, TLSOptions, VerifyPolicy
from mutls.tls.options import HTTPVersions

from h2wire import (
    ContinuationFrame,
    DataFrame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
    Wire,
    tls_client,
)
from helpers import PKIFiles

PROTOCOL_ERROR, FLOW_CONTROL_ERROR, STREAM_CLOSED, FRAME_SIZE_ERROR = 0x1, 0x3, 0x5, 0x6
REFUSED_STREAM, COMPRESSION_ERROR, ENHANCE_YOUR_CALM, INADEQUATE_SECURITY = 0x7, 0x9, 0xB, 0xC
SETTINGS_INITIAL_WINDOW_SIZE = 0x4
SETTINGS_MAX_CONCURRENT_STREAMS, SETTINGS_MAX_HEADER_LIST_SIZE = 0x3, 0x6

#: what the app was called for, per path (counted, so a refused request shows as absent).
CALLS: dict[str, int] = {}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Echoes what it sees as JSON; ``/big?N`` answers N bytes, ``/slow`` waits 1 s first."""
    if scope["type"] != "http":
        return
    CALLS[scope["path"]] = CALLS.get(scope["path"], 0) + 1
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"] == "/slow":
        await asyncio.sleep(1.0)
    if scope["path"] == "/hang":
        await asyncio.sleep(30)
    if scope["path"] == "/trailers":
        assert "http.response.trailers" in scope["extensions"]
        await send({"type": "http.response.start", "status": 200, "trailers": True})
        await send({"type": "http.response.body", "body": b"part 1, ", "more_body": True})
        await send({"type": "http.response.body", "body": b"part 2"})
        await send(
            {
                "type": "http.response.trailers",
                "headers": [(b"x-digest", b"abc")],
                "more_trailers": True,
            }
        )
        await send({"type": "http.response.trailers", "headers": [(b"X-Count", b"2")]})
        return
    if scope["path"] == "/big":
        data = b"x" * int(scope["query_string"] or b"100000")
    else:
        tls = scope["extensions"]["tls"]
        data = json.dumps(
            {
                "http_version": scope["http_version"],
                "method": scope["method"],
                "path": scope["path"],
                "body": body.decode("latin-1"),
                "headers": [[k.decode(), v.decode()] for k, v in scope["headers"]],
                "client_cert_name": tls["client_cert_name"],
                "client_cert_error": tls["client_cert_error"],
                "tls_version": tls["tls_version"],
                "valid": scope["extensions"]["mutls"]["client_certificate"].valid,
            }
        ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", b"%d" % len(data)), (b"connection", b"keep-alive")],
        }
    )
    await send({"type": "http.response.body", "body": data})


def config(test_pki: PKIFiles, **changes: Any) -> ServerConfig:
    base = ServerConfig(
        port=0,
        identity=test_pki.identities["server"],
        client_cert=ClientCertMode.OPTIONAL,
        verify=VerifyPolicy.REPORT,
        trust=pki.TrustMaterial(anchors=(test_pki.ca.certificate,)),
        app=app,
        limits=replace(
            ServerConfig().limits, max_head_bytes=4096, max_headers=20, max_body_bytes=1000
        ),
        h2_limits=H2Limits(max_concurrent_streams=4, max_resets=10, max_control_frames=20),
        timeouts=Timeouts(handshake=5, header=5, keep_alive=5, graceful=5, send=5),
    )
    return base.with_changes(**changes)


@pytest.fixture(scope="module")
def port(test_pki: PKIFiles) -> Iterator[int]:
    with serve_in_thread(config(test_pki)) as running:
        yield running.ports[0]


@pytest.fixture
def wire(port: int, test_pki: PKIFiles) -> Iterator[Wire]:
    context = tls_client(test_pki.ca_cert, test_pki.cert("poupou"), test_pki.key("poupou"))
    with Wire(port, context) as connection:
        yield connection


def answer(wire: Wire, stream_id: int) -> dict[str, Any]:
    headers, body = wire.response(stream_id)
    assert headers.get(":status") == "200", (headers, body)
    return json.loads(body)  # type: ignore[no-any-return]


def error_of(wire: Wire, stream_id: int | None = None) -> tuple[str, int] | None:
    """How the server ended a bad exchange: ("goaway", code), ("rst", code) or None (closed);
    frames already read count too."""

    def ends(frame: Any) -> bool:
        return isinstance(frame, GoAwayFrame) or (
            isinstance(frame, RstStreamFrame) and frame.stream_id == stream_id
        )

    if not any(ends(f) for f in wire.seen):
        wire.read_until(ends)
    for frame in wire.seen:
        if isinstance(frame, GoAwayFrame):
            return "goaway", frame.error_code
        if isinstance(frame, RstStreamFrame) and frame.stream_id == stream_id:
            return "rst", frame.error_code
    return None


def raw_frame(kind: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    return (
        len(payload).to_bytes(3, "big")
        + bytes([kind, flags])
        + stream_id.to_bytes(4, "big")
        + payload
    )


# -- ALPN and the connection preface ------------------------------------------------------------


def test_alpn_prefers_h2_and_the_server_settings_announce_the_limits(wire: Wire) -> None:
    assert wire.alpn == "h2"
    frames = wire.start()
    server_settings = next(
        f for f in frames if isinstance(f, SettingsFrame) and "ACK" not in f.flags
    )
    assert frames[0] is server_settings  # the server's preface is its SETTINGS, first
    assert server_settings.settings[SETTINGS_MAX_CONCURRENT_STREAMS] == 4
    assert server_settings.settings[SETTINGS_MAX_HEADER_LIST_SIZE] == 4096
    assert any(isinstance(f, SettingsFrame) and "ACK" in f.flags for f in frames)


@pytest.mark.parametrize(
    ("http", "offered", "chosen"),
    [
        (HTTPVersions.AUTO, ("http/1.1", "h2"), "h2"),
        (HTTPVersions.AUTO, ("http/1.1",), "http/1.1"),
        (HTTPVersions.AUTO, ("spdy/3",), None),
        (HTTPVersions.HTTP11, ("h2", "http/1.1"), "http/1.1"),
        (HTTPVersions.HTTP11, ("h2",), None),
        (HTTPVersions.HTTP2, ("http/1.1", "h2"), "h2"),
    ],
)
def test_alpn_under_each_http_flag(
    test_pki: PKIFiles, http: HTTPVersions, offered: tuple[str, ...], chosen: str | None
) -> None:
    with serve_in_thread(config(test_pki, http=http)) as running:
        with Wire(running.ports[0], tls_client(test_pki.ca_cert, alpn=offered)) as wire:
            assert wire.alpn == chosen


def test_http2_only_refuses_an_http11_client_in_the_handshake(test_pki: PKIFiles) -> None:
    with serve_in_thread(config(test_pki, http=HTTPVersions.HTTP2)) as running:
        context = tls_client(test_pki.ca_cert, alpn=("http/1.1",))
        with pytest.raises(ssl.SSLError, match="no application protocol"):
            Wire(running.ports[0], context)


def test_http2_only_without_alpn_speaks_h2_by_prior_knowledge_and_505_to_http11(
    test_pki: PKIFiles,
) -> None:
    with serve_in_thread(config(test_pki, http=HTTPVersions.HTTP2)) as running:
        port = running.ports[0]
        with Wire(port, tls_client(test_pki.ca_cert, alpn=())) as wire:
            assert wire.alpn is None
            wire.start()
            wire.send(wire.headers(1, "/prior"))
            assert answer(wire, 1)["http_version"] == "2"
        with Wire(port, tls_client(test_pki.ca_cert, alpn=())) as wire:
            wire.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            wire.sock.settimeout(10)
            reply = wire.sock.recv(4096)
            assert reply.startswith(b"HTTP/1.1 505 "), reply
            assert b"HTTP/2 only" in reply


def test_a_bad_preface_is_a_connection_error(wire: Wire) -> None:
    wire.send(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n")
    assert error_of(wire) in (("goaway", PROTOCOL_ERROR), None)
    assert wire.read_until(lambda f: False, timeout=5) == [] and wire.closed


def test_ping_is_answered_with_the_same_payload(wire: Wire) -> None:
    wire.start()
    wire.send(PingFrame(0, opaque_data=b"12345678"))
    frames = wire.read_until(lambda f: isinstance(f, PingFrame))
    pong = next(f for f in frames if isinstance(f, PingFrame))
    assert "ACK" in pong.flags and pong.opaque_data == b"12345678"


# -- requests, and the one verdict of the connection -----------------------------------------


def test_every_stream_sees_the_connections_verdict_and_version_2(wire: Wire) -> None:
    wire.start()
    wire.send(wire.headers(1, "/a"), wire.headers(3, "/b"), wire.headers(5, "/c"))
    answers = [answer(wire, n) for n in (1, 3, 5)]
    assert [a["path"] for a in answers] == ["/a", "/b", "/c"]
    for seen in answers:
        assert seen["http_version"] == "2"
        assert seen["client_cert_name"] == "CN=poupou"
        assert seen["client_cert_error"] is None and seen["valid"] is True
        assert seen["tls_version"] == 0x0304


def test_headers_are_screened_as_for_http11(wire: Wire) -> None:
    wire.start()
    extra = [
        ("x_client_cert", "forged"),  # '_': dropped
        ("x-ssl-client-verify", "SUCCESS"),  # a certificate header: set aside
        ("x-client-cert", "forged"),
        ("cookie", "a=1"),
        ("cookie", "b=2"),  # crumbs join (RFC 9113 8.2.3)
        ("x-fine", "yes"),
    ]
    wire.send(wire.headers(1, "/h", extra=extra))
    seen = dict(map(tuple, answer(wire, 1)["headers"]))
    assert seen == {"host": "localhost", "x-fine": "yes", "cookie": "a=1; b=2"}


def test_a_body_and_request_trailers(wire: Wire) -> None:
    wire.start()
    trailers = wire.encoder.encode([("x-checksum", "abc")])
    wire.send(
        wire.headers(1, "/post", "POST", end_stream=False),
        DataFrame(1, data=b"hello "),
        DataFrame(1, data=b"world"),
        HeadersFrame(1, data=trailers, flags=["END_HEADERS", "END_STREAM"]),
    )
    seen = answer(wire, 1)
    assert seen["method"] == "POST" and seen["body"] == "hello world"
    assert "x-checksum" not in dict(map(tuple, seen["headers"]))  # counted, never shown


def test_response_trailers_from_an_asgi_app(wire: Wire) -> None:
    wire.start()
    wire.send(wire.headers(1, "/trailers"))
    wire.response(1)
    heads = [f for f in wire.seen if isinstance(f, HeadersFrame) and f.stream_id == 1]
    data = b"".join(f.data for f in wire.seen if isinstance(f, DataFrame) and f.stream_id == 1)
    assert [h.fields.get(":status") for h in heads] == ["200", None]  # type: ignore[attr-defined]
    assert heads[1].fields == {"x-digest": "abc", "x-count": "2"}  # type: ignore[attr-defined]
    assert "END_STREAM" in heads[1].flags and data == b"part 1, part 2"


# -- malformed requests (RFC 9113 8.1.1, 8.2, 8.3) --------------------------------------------


MALFORMED = {
    "no :path": [(":method", "GET"), (":scheme", "https"), (":authority", "localhost")],
    "unknown pseudo-header": [
        (":method", "GET"),
        (":scheme", "https"),
        (":path", "/"),
        (":foo", "bar"),
    ],
    "pseudo-header after a field": [
        (":method", "GET"),
        (":scheme", "https"),
        ("x-a", "b"),
        (":path", "/"),
    ],
    "duplicate :path": [(":method", "GET"), (":scheme", "https"), (":path", "/"), (":path", "/")],
    "upper-case field name": [
        (":method", "GET"),
        (":scheme", "https"),
        (":path", "/"),
        ("X-A", "b"),
    ],
    "connection-specific field": [
        (":method", "GET"),
        (":scheme", "https"),
        (":path", "/"),
        ("connection", "keep-alive"),
    ],
    "te other than trailers": [
        (":method", "GET"),
        (":scheme", "https"),
        (":path", "/"),
        ("te", "gzip"),
    ],
    "empty :path": [(":method", "GET"), (":scheme", "https"), (":path", "")],
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_requests_never_reach_the_app(wire: Wire, case: str) -> None:
    wire.start()
    before = sum(CALLS.values())
    wire.send(wire.headers(1, pseudo=MALFORMED[case]))
    assert error_of(wire, 1) in (("rst", PROTOCOL_ERROR), ("goaway", PROTOCOL_ERROR))
    assert sum(CALLS.values()) == before


# -- stream states and frame sizes (RFC 9113 5.1, 4.2, 6) -------------------------------------


def test_data_on_an_idle_stream_is_a_connection_error(wire: Wire) -> None:
    wire.start()
    wire.send(DataFrame(1, data=b"x"))
    assert error_of(wire) == ("goaway", PROTOCOL_ERROR)


def test_an_even_stream_id_from_the_client_is_a_connection_error(wire: Wire) -> None:
    wire.start()
    wire.send(wire.headers(2))
    assert error_of(wire) == ("goaway", PROTOCOL_ERROR)


def test_headers_on_a_closed_stream(wire: Wire) -> None:
    wire.start()
    wire.send(wire.headers(1, "/one"))
    answer(wire, 1)
    wire.send(wire.headers(1, "/again"))
    assert error_of(wire, 1) in (("goaway", STREAM_CLOSED), ("rst", STREAM_CLOSED))


def test_a_frame_larger_than_max_frame_size(wire: Wire) -> None:
    wire.start()
    wire.send(wire.headers(1, "/post", "POST", end_stream=False))
    wire.send(raw_frame(0x0, 0x1, 1, b"x" * 16385))
    assert error_of(wire) == ("goaway", FRAME_SIZE_ERROR)


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (raw_frame(0x4, 0x0, 0, b"\x00" * 5), FRAME_SIZE_ERROR),  # SETTINGS not 6n bytes
        (raw_frame(0x6, 0x0, 0, b"\x00" * 7), FRAME_SIZE_ERROR),  # PING not 8 bytes
        (raw_frame(0x4, 0x1, 0, b"\x00" * 6), FRAME_SIZE_ERROR),  # SETTINGS ACK with a payload
        (raw_frame(0x6, 0x0, 1, b"\x00" * 8), PROTOCOL_ERROR),  # PING on a stream
        (raw_frame(0x4, 0x0, 1, b""), PROTOCOL_ERROR),  # SETTINGS on a stream
        (raw_frame(0x8, 0x0, 0, b"\x00\x00\x00\x00"), PROTOCOL_ERROR),  # WINDOW_UPDATE of 0
        (raw_frame(0x4, 0x0, 0, b"\x00\x02\x00\x00\x00\x02"), PROTOCOL_ERROR),  # ENABLE_PUSH=2
        (raw_frame(0x4, 0x0, 0, b"\x00\x04\x80\x00\x00\x00"), FLOW_CONTROL_ERROR),  # window 2^31
    ],
)
def test_malformed_control_frames_are_connection_errors(
    wire: Wire, frame: bytes, code: int
) -> None:
    wire.start()
    wire.send(frame)
    assert error_of(wire) == ("goaway", code)


def test_a_window_update_past_2_31_is_a_flow_control_error(wire: Wire) -> None:
    wire.start()
    wire.send(WindowUpdateFrame(0, window_increment=2**31 - 1))
    assert error_of(wire) == ("goaway", FLOW_CONTROL_ERROR)


def test_unknown_frame_types_and_settings_are_ignored(wire: Wire) -> None:
    wire.start()
    wire.send(
        raw_frame(0xEE, 0x0, 0, b"whatever"),  # an unknown type (RFC 9113 4.1: ignored)
        raw_frame(0x4, 0x0, 0, b"\x00\xee\x00\x00\x00\x01"),  # an unknown setting
        wire.headers(1, "/after-unknown"),
    )
    assert answer(wire, 1)["path"] == "/after-unknown"


def test_a_header_block_hpack_cannot_decode_is_a_compression_error(wire: Wire) -> None:
    wire.start()
    wire.send(HeadersFrame(1, data=b"\xff\xff\xff\xff\xff", flags=["END_HEADERS"]))
    assert error_of(wire, 1) == ("goaway", COMPRESSION_ERROR)


def test_a_stream_depending_on_itself_is_a_protocol_error(wire: Wire) -> None:
    wire.start()
    wire.send(PriorityFrame(1, depends_on=1, stream_weight=16))
    assert error_of(wire, 1) in (("rst", PROTOCOL_ERROR), ("goaway", PROTOCOL_ERROR))


def test_data_after_end_stream_is_stream_closed(wire: Wire) -> None:
    wire.start()
    wire.send(wire.headers(1, "/slow"), DataFrame(1, data=b"late"))
    assert error_of(wire, 1) in (("rst", STREAM_CLOSED), ("goaway", STREAM_CLOSED))


def test_a_body_longer_than_its_content_length_is_malformed(wire: Wire) -> None:
    wire.start()
    before = sum(CALLS.values())
    wire.send(
        wire.headers(1, "/cl", "POST", extra=[("content-length", "3")], end_stream=False),
        DataFrame(1, data=b"12345", flags=["END_STREAM"]),
    )
    assert error_of(wire, 1) in (("rst", PROTOCOL_ERROR), ("goaway", PROTOCOL_ERROR))
    assert sum(CALLS.values()) == before


def test_expect_100_continue_is_answered_before_the_body(wire: Wire) -> None:
    wire.start()
    wire.send(wire.headers(1, "/up", "PUT", extra=[("expect", "100-continue")], end_stream=False))
    frames = wire.read_until(lambda f: isinstance(f, HeadersFrame))
    first = next(f for f in frames if isinstance(f, HeadersFrame))
    assert first.stream_id == 1 and first.fields == {":status": "100"}  # type: ignore[attr-defined]
    wire.send(DataFrame(1, data=b"hello", flags=["END_STREAM"]))
    assert answer(wire, 1)["body"] == "hello"


def test_te_trailers_is_allowed(wire: Wire) -> None:
    wire.start()
    wire.send(wire.headers(1, "/te", extra=[("te", "trailers")]))
    assert answer(wire, 1)["path"] == "/te"


def test_pseudo_headers_in_request_trailers_are_malformed(wire: Wire) -> None:
    wire.start()
    trailers = wire.encoder.encode([(":path", "/x")])
    wire.send(
        wire.headers(1, "/post", "POST", end_stream=False),
        DataFrame(1, data=b"x"),
        HeadersFrame(1, data=trailers, flags=["END_HEADERS", "END_STREAM"]),
    )
    assert error_of(wire, 1) in (("rst", PROTOCOL_ERROR), ("goaway", PROTOCOL_ERROR))


def test_a_smaller_initial_window_applies_to_open_streams(wire: Wire) -> None:
    wire.start(settings={SETTINGS_INITIAL_WINDOW_SIZE: 100})
    wire.send(wire.headers(1, "/big"))
    first = wire.read_until(lambda f: False, timeout=1.0)
    assert sum(len(f.data) for f in first if isinstance(f, DataFrame)) == 100
    # RFC 9113 6.9.2: a new SETTINGS_INITIAL_WINDOW_SIZE moves every stream's window by the
    # difference: 150 more bytes may now be sent on stream 1.
    wire.send(SettingsFrame(0, settings={SETTINGS_INITIAL_WINDOW_SIZE: 250}))
    more = wire.read_until(lambda f: False, timeout=1.0)
    assert sum(len(f.data) for f in more if isinstance(f, DataFrame)) == 150


# -- request limits, as for HTTP/1.1 ----------------------------------------------------------


def test_too_many_fields_431_and_a_long_body_413(wire: Wire) -> None:
    wire.start()
    before = sum(CALLS.values())
    wire.send(wire.headers(1, "/many", extra=[(f"x-{n}", "v") for n in range(25)]))
    headers, _ = wire.response(1)
    assert headers[":status"] == "431"
    wire.send(wire.headers(3, "/cl", "POST", extra=[("content-length", "5000")], end_stream=False))
    headers, body = wire.response(3)
    assert headers[":status"] == "413" and b"too large" in body
    wire.send(wire.headers(5, "/long", "POST", end_stream=False), DataFrame(5, data=b"y" * 1500))
    headers, _ = wire.response(5)
    assert headers[":status"] == "413"
    assert sum(CALLS.values()) == before


# -- flow control and back-pressure -------------------------------------------------------------


def test_the_response_waits_for_the_clients_window(wire: Wire) -> None:
    wire.start(settings={SETTINGS_INITIAL_WINDOW_SIZE: 1000})
    wire.send(
        wire.headers(1, "/big", extra=[]),
    )
    wire.send(wire.headers(3, "/big"))  # (never read past its window either)
    frames = wire.read_until(lambda f: False, timeout=1.5)  # everything the server will send
    sent = sum(len(f.data) for f in frames if isinstance(f, DataFrame) and f.stream_id == 1)
    assert sent == 1000  # the stream's whole window, not a byte more
    wire.send(WindowUpdateFrame(1, window_increment=500))
    frames = wire.read_until(lambda f: False, timeout=1.0)
    more = sum(len(f.data) for f in frames if isinstance(f, DataFrame) and f.stream_id == 1)
    assert more == 500


def test_a_client_that_never_opens_its_window_is_dropped_by_timeout_send(
    test_pki: PKIFiles,
) -> None:
    stalls = config(test_pki, timeouts=Timeouts(send=1))
    with serve_in_thread(stalls) as running:
        with Wire(running.ports[0], tls_client(test_pki.ca_cert)) as wire:
            wire.start(settings={SETTINGS_INITIAL_WINDOW_SIZE: 0})
            wire.send(wire.headers(1, "/big"))
            frames = wire.read_until(lambda f: False, timeout=8)  # --timeout-send is 1 s here
            assert wire.closed
            assert not any(isinstance(f, DataFrame) and f.data for f in frames)


# -- the known attacks, refused with a bounded, counted cost --------------------------------


def test_rapid_reset_gets_goaway_enhance_your_calm(wire: Wire) -> None:
    wire.start()
    for n in range(10):  # the limit (10 in 10 s here): still served
        stream = 2 * n + 1
        wire.send(wire.headers(stream, "/reset"), RstStreamFrame(stream, error_code=0x8))
        wire.send(PingFrame(0, opaque_data=b"%08d" % n))
        seen = wire.read_until(lambda f: isinstance(f, PingFrame | GoAwayFrame))
        assert not any(isinstance(f, GoAwayFrame) for f in seen)
    wire.send(wire.headers(21, "/reset"), RstStreamFrame(21, error_code=0x8))  # one more
    assert error_of(wire) == ("goaway", ENHANCE_YOUR_CALM)


def test_continuation_flood_is_refused_at_the_header_block_bound(wire: Wire) -> None:
    wire.start()
    block = wire.encoder.encode([(":method", "GET"), (":scheme", "https"), (":path", "/")])
    wire.send(HeadersFrame(1, data=block))  # no END_HEADERS: CONTINUATIONs must follow
    # Six 1000-byte CONTINUATIONs: past the 4096-byte bound at the fifth, before any decoding
    # (tests/unit/test_http2_connection.py counts the frames exactly).
    wire.send(*[ContinuationFrame(1, data=b"\x40\x01a\x01b" * 200) for _ in range(6)])
    assert error_of(wire) == ("goaway", ENHANCE_YOUR_CALM)


def test_an_hpack_bomb_is_refused_by_the_decoded_size(wire: Wire) -> None:
    wire.start()
    # One 4000-byte field in the dynamic table, then referenced by index: 1 byte each.
    first = wire.encoder.encode(
        [
            (":method", "GET"),
            (":scheme", "https"),
            (":authority", "localhost"),
            (":path", "/"),
            ("x-big", "b" * 3000),
        ]
    )
    wire.send(HeadersFrame(1, data=first, flags=["END_HEADERS", "END_STREAM"]))
    answer(wire, 1)
    bomb = wire.encoder.encode(
        [(":method", "GET"), (":scheme", "https"), (":authority", "localhost"), (":path", "/")]
    )
    bomb += bytes([0x80 | 62]) * 10  # ten more copies, 30 KB decoded from 10 bytes
    wire.send(HeadersFrame(3, data=bomb, flags=["END_HEADERS", "END_STREAM"]))
    assert error_of(wire, 3) in (
        ("goaway", ENHANCE_YOUR_CALM),
        ("goaway", COMPRESSION_ERROR),
        ("goaway", PROTOCOL_ERROR),
    )


@pytest.mark.parametrize("kind", ["settings", "ping", "priority", "empty-data"])
def test_control_frame_floods_get_goaway(wire: Wire, kind: str) -> None:
    wire.start()
    if kind == "empty-data":
        wire.send(wire.headers(1, "/post", "POST", end_stream=False))
    make = {
        "settings": lambda: SettingsFrame(0),
        "ping": lambda: PingFrame(0, opaque_data=b"floodfld"),
        "priority": lambda: PriorityFrame(1, depends_on=0, stream_weight=16),
        "empty-data": lambda: DataFrame(1, data=b""),
    }[kind]
    wire.send(*[make() for _ in range(19)])  # at the limit, with the SETTINGS of start()
    wire.send(PingFrame(0, flags=["ACK"], opaque_data=b"nocount!"))
    frames = wire.read_until(lambda f: isinstance(f, GoAwayFrame), timeout=1.0)
    assert not any(isinstance(f, GoAwayFrame) for f in frames)
    wire.send(make())  # the 21st in 10 s
    assert error_of(wire) == ("goaway", ENHANCE_YOUR_CALM)


def test_a_body_in_one_byte_data_frames_gets_goaway(test_pki: PKIFiles) -> None:
    uploads = config(test_pki, limits=HTTPLimits(max_body_bytes=100_000))
    before = sum(CALLS.values())
    with serve_in_thread(uploads) as running:
        with Wire(running.ports[0], tls_client(test_pki.ca_cert)) as wire:
            wire.start()
            wire.send(wire.headers(1, "/post", "POST", end_stream=False))
            wire.send(*[DataFrame(1, data=b"x") for _ in range(1100)])  # 1093 is one too many
            assert error_of(wire) == ("goaway", ENHANCE_YOUR_CALM)
    assert sum(CALLS.values()) == before


def test_streams_beyond_the_concurrency_bound_are_refused(test_pki: PKIFiles) -> None:
    CALLS.pop("/slow", None)
    with serve_in_thread(config(test_pki)) as running:
        context = tls_client(test_pki.ca_cert)
        with Wire(running.ports[0], context) as wire:
            wire.start()
            # Six streams at once, where SETTINGS_MAX_CONCURRENT_STREAMS is 4.
            wire.send(*[wire.headers(n, "/slow") for n in (1, 3, 5, 7, 9, 11)])
            # The fifth and sixth are refused (a stream error: the others go on).
            assert error_of(wire, 9) == ("rst", REFUSED_STREAM)
            assert error_of(wire, 11) == ("rst", REFUSED_STREAM)
            answers = [json.loads(wire.response(n)[1])["path"] for n in (1, 3, 5, 7)]
            assert answers == ["/slow"] * 4
            assert not any(isinstance(f, GoAwayFrame) for f in wire.seen)
    assert CALLS["/slow"] == 4  # the app ran for the four streams allowed, never more


# -- TLS requirements (RFC 9113 9.2) ----------------------------------------------------------


def test_tls12_with_a_non_aead_suite_gets_inadequate_security(test_pki: PKIFiles) -> None:
    ciphers = "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES128-GCM-SHA256"
    with serve_in_thread(config(test_pki, tls_options=TLSOptions(ciphers=ciphers))) as running:
        port = running.ports[0]
        bad = tls_client(test_pki.ca_cert, tls12_ciphers="ECDHE-ECDSA-AES128-SHA")
        with Wire(port, bad) as wire:
            assert wire.alpn == "h2" and wire.sock.cipher()[0] == "ECDHE-ECDSA-AES128-SHA"
            assert error_of(wire) == ("goaway", INADEQUATE_SECURITY)
        good = tls_client(test_pki.ca_cert, tls12_ciphers="ECDHE-ECDSA-AES128-GCM-SHA256")
        with Wire(port, good) as wire:
            wire.start()
            wire.send(wire.headers(1, "/tls12"))
            assert answer(wire, 1)["tls_version"] == 0x0303


def test_the_certificate_is_asked_for_in_the_handshake_never_after(test_pki: PKIFiles) -> None:
    # A TLS 1.3 client that would answer a post-handshake request: the server never sends
    # one (mutls does not enable it), so the verdict the first stream sees is the handshake's.
    context = tls_client(
        test_pki.ca_cert, test_pki.cert("poupou"), test_pki.key("poupou"), post_handshake_auth=True
    )
    with serve_in_thread(config(test_pki)) as running, Wire(running.ports[0], context) as wire:
        wire.start()
        wire.send(wire.headers(1, "/pha"))
        assert answer(wire, 1)["client_cert_name"] == "CN=poupou"


@pytest.mark.parametrize(
    ("client", "says"),
    [
        (None, "client certificate required"),
        ("expired", "client certificate not valid: certificate has expired"),
    ],
)
def test_strict_refuses_with_403_before_the_app(
    test_pki: PKIFiles, client: str | None, says: str
) -> None:
    strict = config(test_pki, client_cert=ClientCertMode.REQUIRE, verify=VerifyPolicy.STRICT)
    before = sum(CALLS.values())
    cert = (test_pki.cert(client), test_pki.key(client)) if client else (None, None)
    with serve_in_thread(strict) as running:
        with Wire(running.ports[0], tls_client(test_pki.ca_cert, *cert)) as wire:
            wire.start()
            wire.send(wire.headers(1, "/secret"))
            headers, body = wire.response(1)
            assert headers[":status"] == "403" and says in body.decode()
            assert wire.goaway() is not None  # a new connection may carry a certificate
    assert sum(CALLS.values()) == before


def test_a_silent_app_gets_504_on_its_stream_and_the_others_go_on(test_pki: PKIFiles) -> None:
    timed = config(test_pki, timeouts=Timeouts(app=1.0, send=5))
    with serve_in_thread(timed) as running:
        with Wire(running.ports[0], tls_client(test_pki.ca_cert)) as wire:
            wire.start()
            wire.send(wire.headers(1, "/hang"), wire.headers(3, "/quick"))
            assert answer(wire, 3)["path"] == "/quick"  # not held by the stream beside it
            headers, body = wire.response(1)
            assert headers[":status"] == "504" and b"did not answer in time" in body
            wire.send(wire.headers(5, "/after"))
            assert answer(wire, 5)["path"] == "/after"  # the connection goes on


# -- a graceful stop ------------------------------------------------------------------------


def test_shutdown_sends_goaway_and_finishes_the_streams_in_flight(test_pki: PKIFiles) -> None:
    running = RunningServer(config(test_pki))
    running.start()
    try:
        with Wire(running.ports[0], tls_client(test_pki.ca_cert)) as wire:
            wire.start()
            wire.send(wire.headers(1, "/slow"))
            stopper = threading.Timer(0.3, running.stop)
            stopper.start()
            frames = wire.read_until(lambda f: "END_STREAM" in f.flags and f.stream_id == 1)
            goaways = [f for f in frames if isinstance(f, GoAwayFrame)]
            assert goaways and goaways[0].error_code == 0 and goaways[0].last_stream_id == 1
            data = b"".join(f.data for f in frames if isinstance(f, DataFrame))
            assert json.loads(data)["path"] == "/slow"  # served to its end after the GOAWAY
            stopper.join(10)
    finally:
        running.stop()


def test_plain_socket_fixture_sanity(port: int) -> None:
    # The TLS port still answers HTTP/1.1 to a client that offers it (ALPN http/1.1).
    with socket.create_connection(("127.0.0.1", port), timeout=10):
        pass
