"""``TLSConnection.receive_data`` under hypothesis, beyond the arbitrary-bytes test of
tests/unit/test_tls_engine.py: real ClientHellos and real application records, mutated. Only
``TLSError`` ever comes out; when the input was a TLS record, the alert that error names is
queued in ``data_to_send()`` (in the clear before the handshake), and the connection stays failed.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from OpenSSL import SSL
from records import client_hello

from mutls.tls import PlainHTTPError, ServerContext, TLSConnection, TLSError
from mutls.tls.alerts import alert_name

from budget import budget
from helpers import PKIFiles
from tls_driver import client_context, client_output, connect, server_context

EDITS = st.lists(
    st.tuples(
        st.integers(0, 1 << 12),
        st.sampled_from(["flip", "delete", "insert", "cut"]),
        st.binary(min_size=1, max_size=4),
    ),
    min_size=1,
    max_size=4,
)


def mutate(data: bytes, edits: list[tuple[int, str, bytes]], *, keep: int = 0) -> bytes:
    """``data`` edited; the first ``keep`` bytes stay as they were."""
    out = bytearray(data)
    for at, how, extra in edits:
        if len(out) <= keep:
            break
        i = keep + at % (len(out) - keep)
        if how == "flip":
            out[i] ^= extra[0] or 0x40
        elif how == "delete":
            del out[i : i + len(extra)]
        elif how == "insert":
            out[i:i] = extra
        else:
            del out[i:]
    return bytes(out)


@pytest.fixture(scope="module")
def context(test_pki: PKIFiles) -> ServerContext:
    return server_context(test_pki)


@pytest.fixture(scope="module")
def hellos() -> dict[str, bytes]:
    return {"1.2": client_hello(SSL.TLS1_2_VERSION), "1.3": client_hello(SSL.TLS1_3_VERSION)}


def feed(server: TLSConnection, data: bytes, pieces: int) -> TLSError | None:
    """Feed ``data`` in ``pieces`` parts; the TLSError it ends with, or None."""
    error, _ = feed_reading(server, data, pieces)
    return error


def feed_reading(server: TLSConnection, data: bytes, pieces: int) -> tuple[TLSError | None, bytes]:
    """Like :func:`feed`, and the plaintext that came out."""
    size = max(1, len(data) // pieces)
    plain = b""
    try:
        for start in range(0, len(data), size):
            plain += server.receive_data(data[start : start + size])
    except TLSError as error:
        return error, plain
    return None, plain


def assert_alert_queued(server: TLSConnection, error: TLSError) -> None:
    queued = server.data_to_send()
    assert error.alert is not None, f"no alert for {error}"
    # The alert record is the last one queued (after the server's flight, if it answered).
    assert queued[-7] == 0x15 and queued[-4:-2] == b"\x00\x02", queued[-16:]  # an alert record
    assert alert_name(queued[-1]) == error.alert
    with pytest.raises(TLSError):  # the connection stays failed
        server.receive_data(b"\x16\x03\x03\x00\x01\x00")


@budget(150)
@given(version=st.sampled_from(["1.2", "1.3"]), edits=EDITS, pieces=st.integers(1, 4))
def test_mutated_client_hellos_are_refused_with_an_alert(
    context: ServerContext,
    hellos: dict[str, bytes],
    version: str,
    edits: list[tuple[int, str, bytes]],
    pieces: int,
) -> None:
    # The record header's type and version stay: this is a TLS client that gets it wrong.
    data = mutate(hellos[version], edits, keep=3)
    server = TLSConnection(context)
    error = feed(server, data, pieces)
    if error is None:
        return  # a harmless edit (an unknown extension, a cipher list change...) or more to come
    assert not isinstance(error, PlainHTTPError)
    assert_alert_queued(server, error)


@budget(100)
@given(data=st.binary(min_size=1, max_size=300), pieces=st.integers(1, 3))
def test_bytes_after_a_handshake_record_header(
    context: ServerContext, data: bytes, pieces: int
) -> None:
    server = TLSConnection(context)
    error = feed(server, b"\x16\x03\x01" + len(data).to_bytes(2, "big") + data, pieces)
    if error is None:  # a handshake message may span records: the server waits for the rest
        assert not server.handshake_complete and server.data_to_send() == b""
        return
    assert_alert_queued(server, error)


@budget(60)
@given(
    version=st.sampled_from([SSL.TLS1_2_VERSION, SSL.TLS1_3_VERSION]),
    edits=EDITS,
    pieces=st.integers(1, 3),
)
def test_mutated_application_records_are_refused(
    test_pki: PKIFiles,
    context: ServerContext,
    version: int,
    edits: list[tuple[int, str, bytes]],
    pieces: int,
) -> None:
    server, client = connect(test_pki, context, client_context(test_pki, version=version))
    request = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"
    client.send(request)
    wire = client_output(client)
    data = mutate(wire, edits, keep=1)  # still an application-data record, in name
    error, plain = feed_reading(server, data, pieces)
    # Never a byte that the client did not send: tampering is caught, not decrypted (the
    # request itself comes out when only the ignored record version was touched).
    assert plain in (b"", request), plain
    if error is None:  # a cut or a longer length: the server waits for the rest of the record
        return
    assert error.alert is not None
    assert server.data_to_send(), "no alert queued"
