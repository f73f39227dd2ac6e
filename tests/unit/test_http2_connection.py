"""The sans-I/O HTTP/2 connection and its frame guard, fed bytes: every bound is counted in
frames, and time is a number the test passes."""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events
import hpack
from hyperframe.frame import ContinuationFrame, Frame, HeadersFrame, PingFrame, RstStreamFrame

from mutls.http.connection import HTTPLimits
from mutls.http.frameguard import ENHANCE_YOUR_CALM, PREFACE, FrameGuard
from mutls.http.h2events import (
    ConnectionEnded,
    StreamCancelled,
    StreamOpened,
    StreamReady,
    StreamRefused,
)
from mutls.http.http2 import H2Limits, HTTP2Connection

REQUEST = [(":method", "GET"), (":scheme", "https"), (":authority", "example"), (":path", "/p?q")]


def pair(
    limits: HTTPLimits | None = None, h2_limits: H2Limits | None = None
) -> tuple[HTTP2Connection, h2.connection.H2Connection]:
    server = HTTP2Connection(limits, h2_limits)
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    client.initiate_connection()
    server.receive_data(client.data_to_send(), 0.0)
    client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send(), 0.0)  # the client's SETTINGS ack
    return server, client


def guard(**changes: int) -> FrameGuard:
    values = {"max_block": 1000, "max_resets": 5, "max_control_frames": 5, **changes}
    return FrameGuard(window_seconds=10.0, **values)


def test_a_request_becomes_opened_then_ready_with_its_body() -> None:
    server, client = pair()
    client.send_headers(1, [(":method", "POST"), *REQUEST[1:]], end_stream=False)
    client.send_data(1, b"abc", end_stream=True)
    events = server.receive_data(client.data_to_send(), 0.0)
    opened = next(e for e in events if isinstance(e, StreamOpened))
    ready = next(e for e in events if isinstance(e, StreamReady))
    request = opened.request
    assert (request.method, request.path, request.query, request.http_version) == (
        "POST",
        "/p",
        b"q",
        "2",
    )
    assert request.header(b"host") == b"example"  # :authority, for HTTP/1.1-minded apps
    assert ready.body == b"abc"


def test_screening_is_the_http11_one() -> None:
    server, client = pair()
    client.send_headers(
        1,
        [*REQUEST, ("x_a", "1"), ("x-ssl-client-s-dn", "CN=forged"), ("x-b", "2")],
        end_stream=True,
    )
    opened = next(
        e for e in server.receive_data(client.data_to_send(), 0.0) if isinstance(e, StreamOpened)
    )
    assert opened.request.headers == [(b"host", b"example"), (b"x-b", b"2")]
    assert opened.request.certificate_headers == ((b"x-ssl-client-s-dn", b"CN=forged"),)
    assert server.dropped_name == b"x_a"


def test_bodies_past_the_buffer_hold_the_clients_window_back() -> None:
    server, client = pair(HTTPLimits(max_body_bytes=100_000))
    for stream in (1, 3):
        client.send_headers(stream, REQUEST, end_stream=False)
        for _ in range(4):
            client.send_data(stream, b"x" * 15_000)
    server.receive_data(client.data_to_send(), 0.0)
    client.receive_data(server.data_to_send())
    # 120,000 bytes buffered, 100,000 allowed: the second body's window is not reopened.
    assert server._buffered == 120_000 and len(server._held) == 2
    client.end_stream(1)
    events = server.receive_data(client.data_to_send(), 0.0)
    assert any(isinstance(e, StreamReady) and e.stream_id == 1 for e in events)
    assert server._buffered == 60_000 and not server._held  # handed on: the window reopens


def test_413_and_431_are_stream_refusals() -> None:
    server, client = pair(HTTPLimits(max_body_bytes=10, max_headers=3))
    client.send_headers(
        1, [*REQUEST, ("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")], end_stream=True
    )
    client.send_headers(3, REQUEST, end_stream=False)
    client.send_data(3, b"y" * 11, end_stream=True)
    events = server.receive_data(client.data_to_send(), 0.0)
    refused = [(e.stream_id, e.status) for e in events if isinstance(e, StreamRefused)]
    assert refused == [(1, 431), (3, 413)]
    assert not any(isinstance(e, StreamReady) for e in events)


def test_a_graceful_goaway_refuses_later_streams_and_serves_earlier_ones() -> None:
    server, client = pair()
    client.send_headers(1, REQUEST, end_stream=True)
    server.receive_data(client.data_to_send(), 0.0)
    server.goaway("stopping")
    events = client.receive_data(server.data_to_send())
    goaway = next(e for e in events if isinstance(e, h2.events.ConnectionTerminated))
    assert goaway.error_code == 0 and goaway.last_stream_id == 1
    server.send_head(1, 200, [(b"Connection", b"close"), (b"X-A", b"b")], end=True)
    head = server.data_to_send()
    # The stream in flight is still answered after the GOAWAY: HEADERS, END_STREAM, stream 1
    # (h2's client, closed by the GOAWAY it heard, would refuse to read it: read by hand).
    frame, length = Frame.parse_frame_header(memoryview(head[:9]))
    frame.parse_body(memoryview(head[9 : 9 + length]))
    assert isinstance(frame, HeadersFrame) and frame.stream_id == 1
    assert {"END_STREAM", "END_HEADERS"} <= set(frame.flags)
    fields = dict(client.decoder.decode(frame.data, raw=True))
    assert fields[b"x-a"] == b"b" and b"connection" not in fields
    # A stream the client opens after it (it should not) is refused, not served.
    # (h2's client would not send it: the frame is made by hand.)
    block = hpack.Encoder().encode(REQUEST)
    late = HeadersFrame(3, data=block, flags=["END_HEADERS", "END_STREAM"]).serialize()
    assert not any(isinstance(e, StreamOpened) for e in server.receive_data(late, 0.0))
    assert RstStreamFrame(3, error_code=7).serialize() in server.data_to_send()  # REFUSED


def test_frame_guard_counts_rapid_resets_exactly() -> None:
    g = guard()
    g.feed(PREFACE, 0.0)
    for n in range(5):
        assert g.feed(RstStreamFrame(2 * n + 1, error_code=8).serialize(), 1.0) is None
    refusal = g.feed(RstStreamFrame(11, error_code=8).serialize(), 1.0)
    assert refusal is not None and refusal.error_code == ENHANCE_YOUR_CALM
    assert g.resets == 6 and g.frames == 6


def test_frame_guard_counts_per_window() -> None:
    g = guard()
    g.feed(PREFACE, 0.0)
    for n in range(5):
        assert g.feed(PingFrame(0, opaque_data=b"%08d" % n).serialize(), 1.0) is None
    # A new window: the count starts again.
    assert g.feed(PingFrame(0, opaque_data=b"new-wind").serialize(), 11.0) is None
    assert g.control_frames == 1


def test_server_resets_count_with_the_clients() -> None:
    g = guard(max_resets=2)
    assert g.note_reset(0.0) is None and g.note_reset(0.0) is None
    assert g.note_reset(0.0) is not None


def test_a_continuation_flood_is_refused_at_the_byte_bound_in_frames() -> None:
    g = guard(max_block=1000)
    g.feed(PREFACE, 0.0)
    assert g.feed(HeadersFrame(1, data=b"h" * 100).serialize(), 0.0) is None
    frames = 0
    refusal = None
    while refusal is None and frames < 100:
        refusal = g.feed(ContinuationFrame(1, data=b"c" * 300).serialize(), 0.0)
        frames += 1
    assert refusal is not None and frames == 4  # 100 + 3 x 300 fits in 1000, a fourth not


def test_empty_continuations_count_as_control_frames() -> None:
    g = guard(max_block=10**6, max_control_frames=3)
    g.feed(PREFACE + HeadersFrame(1, data=b"h").serialize(), 0.0)
    results = [g.feed(ContinuationFrame(1, data=b"").serialize(), 0.0) for _ in range(4)]
    assert results[:3] == [None, None, None] and results[3] is not None


def test_frames_split_across_reads_are_walked_the_same() -> None:
    data = PREFACE + b"".join(RstStreamFrame(2 * n + 1).serialize() for n in range(4))
    g = guard(max_resets=3)
    refusals = [g.feed(data[i : i + 1], 0.0) for i in range(len(data))]
    assert sum(r is not None for r in refusals) >= 1 and g.resets == 4


def test_guard_refusal_ends_the_connection_with_goaway() -> None:
    server, client = pair(h2_limits=H2Limits(max_resets=2))
    for stream in (1, 3, 5):
        client.send_headers(stream, REQUEST, end_stream=True)
        client.reset_stream(stream)
    events = server.receive_data(client.data_to_send(), 0.0)
    assert isinstance(events[-1], ConnectionEnded) and events[-1].error_code == ENHANCE_YOUR_CALM
    client_events = client.receive_data(server.data_to_send())
    assert any(isinstance(e, h2.events.ConnectionTerminated) for e in client_events)


def test_a_client_reset_cancels_the_stream() -> None:
    server, client = pair()
    client.send_headers(1, REQUEST, end_stream=False)
    client.reset_stream(1)
    events = server.receive_data(client.data_to_send(), 0.0)
    assert any(isinstance(e, StreamCancelled) and e.stream_id == 1 for e in events)


def test_adequate_security_is_rfc_9113_9_2() -> None:
    from mutls.server.http2 import adequate_security

    assert adequate_security("TLSv1.3", "TLS_AES_128_GCM_SHA256")
    assert adequate_security("TLSv1.2", "ECDHE-ECDSA-AES128-GCM-SHA256")
    assert adequate_security("TLSv1.2", "ECDHE-RSA-CHACHA20-POLY1305")
    assert adequate_security("TLSv1.2", "DHE-RSA-AES256-GCM-SHA384")
    assert not adequate_security("TLSv1.2", "ECDHE-ECDSA-AES128-SHA")  # CBC
    assert not adequate_security("TLSv1.2", "AES128-GCM-SHA256")  # no ephemeral exchange
    assert not adequate_security("TLSv1.1", "ECDHE-ECDSA-AES128-GCM-SHA256")


def test_response_heads_are_checked_by_the_server() -> None:
    import pytest

    server, client = pair()
    client.send_headers(1, REQUEST, end_stream=True)
    server.receive_data(client.data_to_send(), 0.0)
    for bad in [(b":path", b"/x"), (b"x-a", b"a\r\nb"), (b"bad name", b"v"), (b"x-b", b" lead")]:
        with pytest.raises(ValueError, match="not a valid HTTP/2 field"):
            server.send_head(1, 200, [bad], end=True)
    server.send_head(1, 200, [(b"X-Ok", b"fine"), (b"Transfer-Encoding", b"chunked")], end=True)
    events = client.receive_data(server.data_to_send())
    response = next(e for e in events if isinstance(e, h2.events.ResponseReceived))
    assert (b"x-ok", b"fine") in response.headers
    assert not any(name == b"transfer-encoding" for name, _ in response.headers)


def test_a_body_in_tiny_data_frames_ends_the_connection_as_chunks_do() -> None:
    # HTTP/1.1's chunk rule: 1024 frames, plus one per --min-chunk-average (16) bytes: at one
    # byte a frame, frame 1093 is one too many (1093 > 1024 + 1093 // 16).
    server, client = pair(HTTPLimits(min_chunk_average=16))
    client.send_headers(1, [(":method", "POST"), *REQUEST[1:]], end_stream=False)
    for _ in range(1092):
        client.send_data(1, b"x")
    events = server.receive_data(client.data_to_send(), 0.0)
    assert not any(isinstance(e, ConnectionEnded) for e in events)
    client.send_data(1, b"x")
    events = server.receive_data(client.data_to_send(), 0.0)
    assert isinstance(events[-1], ConnectionEnded) and events[-1].error_code == ENHANCE_YOUR_CALM
    assert "too many small DATA frames" in events[-1].reason
