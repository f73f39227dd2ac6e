"""HTTP/2 frames under hypothesis: any sequence of frames (any type, flags, stream, payload,
valid requests mixed in), written in pieces cut anywhere, never raises out of the sans-I/O
connection, and over a socket never stops the server: a fresh connection is served after each
case.

Budget: ``tests/fuzz/budget.py`` (small and derandomized in ``make test``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import hpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mutls import pki
from mutls.http.connection import HTTPLimits
from mutls.http.frameguard import PREFACE
from mutls.http.http2 import H2Limits, HTTP2Connection
from mutls.server import ServerConfig, Timeouts, serve_in_thread
from mutls.tls import ClientCertMode

from budget import budget
from h2wire import Wire, tls_client
from helpers import PKIFiles, asgi_answer, asgi_body

FRAME_TYPES = st.integers(0, 12)  # the ten RFC 9113 types, and unknown ones


@st.composite
def frames(draw: st.DrawFn) -> bytes:
    kind = draw(FRAME_TYPES)
    flags = draw(st.integers(0, 255))
    stream = draw(st.sampled_from([0, 1, 2, 3, 5, 2**31 - 1]) | st.integers(0, 2**31 - 1))
    if draw(st.booleans()) and kind == 1:
        fields = [(":method", "GET"), (":scheme", "https"), (":path", "/"), (":authority", "x")]
        payload = hpack.Encoder().encode(
            fields
            + draw(
                st.lists(
                    st.tuples(
                        st.sampled_from(["a", "x_y", "te", "connection", ":path", "Up"]),
                        st.text("abc\x00\r", max_size=4),
                    ),
                    max_size=3,
                )
            )
        )
    else:
        payload = draw(st.binary(max_size=40))
    length = draw(st.sampled_from([len(payload)]) | st.integers(0, 70))
    header = length.to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big")
    return header + payload[:length]


CASES = st.lists(frames(), min_size=1, max_size=12)


def pieces(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points) if b > a]


@budget(300)
@given(CASES, st.lists(st.integers(0, 10_000), max_size=4))
def test_the_connection_never_raises(case: list[bytes], cuts: list[int]) -> None:
    connection = HTTP2Connection(HTTPLimits(max_head_bytes=2048), H2Limits(max_resets=3))
    for piece in pieces(PREFACE + b"".join(case), cuts):
        for event in connection.receive_data(piece, 0.0):
            assert event is not None
        assert isinstance(connection.data_to_send(), bytes)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "http":
        await asgi_answer(send, b"ok:" + await asgi_body(receive))


@pytest.fixture(scope="module")
def port(test_pki: PKIFiles) -> Iterator[int]:
    config = ServerConfig(
        port=0,
        identity=test_pki.identities["server"],
        client_cert=ClientCertMode.OPTIONAL,
        trust=pki.TrustMaterial(anchors=(test_pki.ca.certificate,)),
        app=app,
        timeouts=Timeouts(handshake=5, header=2, keep_alive=2, send=2),
    )
    with serve_in_thread(config) as running:
        yield running.ports[0]


@budget(25)
@given(CASES)
def test_the_server_survives_any_frames(port: int, test_pki: PKIFiles, case: list[bytes]) -> None:
    context = tls_client(test_pki.ca_cert)
    with Wire(port, context) as wire:
        wire.send(PREFACE, *case)
        wire.read_until(lambda f: False, timeout=0.3)
    with Wire(port, context) as wire:
        wire.start()
        wire.send(wire.headers(1, "/after"))
        headers, body = wire.response(1)
        assert headers.get(":status") == "200" and body == b"ok:"
