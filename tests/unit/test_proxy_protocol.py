"""The PROXY protocol header reader (HAProxy's v1 text and v2 binary), fed bytes alone: what it
reads, in any fragmentation, what it refuses, and the bounds it keeps."""

from __future__ import annotations

import struct

import pytest

from mutls.http.proxy_protocol import (
    V1_MAX,
    V2_SIGNATURE,
    ProxyHeader,
    ProxyHeaderError,
    ProxyHeaderReader,
    v1_header,
    v2_header,
)

HELLO = b"\x16\x03\x01\x00\x05hello"  # what follows: a TLS record


def read(data: bytes, step: int | None = None) -> ProxyHeader | None:
    reader = ProxyHeaderReader()
    if step is None:
        return reader.receive_data(data)
    found = None
    for i in range(0, len(data), step):
        found = reader.receive_data(data[i : i + step])
        if found is not None:
            # what came with the last piece after the header, and the rest of the input
            return ProxyHeader(
                found.version, found.source, found.destination, found.rest + data[i + step :]
            )
    return found


@pytest.mark.parametrize(
    "header",
    [
        v1_header(("192.0.2.1", 56324), ("198.51.100.2", 443)),
        v1_header(("2001:db8::1", 65535), ("2001:db8::2", 0)),
        v2_header(("192.0.2.1", 56324), ("198.51.100.2", 443)),
        v2_header(("2001:db8::1", 65535), ("2001:db8::2", 0)),
    ],
)
@pytest.mark.parametrize("step", [None, 1, 3])
def test_reads_the_source_whole_or_in_pieces(header: bytes, step: int | None) -> None:
    found = read(header + HELLO, step)
    assert found is not None and found.rest == HELLO
    assert found.source is not None and found.destination is not None
    assert found.source[0] in ("192.0.2.1", "2001:db8::1")
    assert found.source[1] in (56324, 65535)


def test_v1_as_the_specification_shows_it() -> None:
    found = read(b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET / HTTP/1.1\r\n")
    assert found == ProxyHeader(
        1, ("192.168.0.1", 56324), ("192.168.0.11", 443), b"GET / HTTP/1.1\r\n"
    )


def test_incomplete_waits() -> None:
    reader = ProxyHeaderReader()
    assert reader.receive_data(b"PROXY TCP4 1.2.3.4 ") is None
    assert reader.receive_data(b"5.6.7.8 1 2\r") is None
    assert reader.receive_data(b"\n") is not None
    reader = ProxyHeaderReader()
    assert reader.receive_data(V2_SIGNATURE[:5]) is None
    with pytest.raises(ProxyHeaderError, match="closed before"):
        reader.receive_eof()


@pytest.mark.parametrize(
    "header",
    [
        b"PROXY UNKNOWN\r\n",
        b"PROXY UNKNOWN ffff::1 ffff::2 65535 65535\r\n",
        v2_header(None),  # LOCAL: the balancer's health check
        # PROXY over UDP, AF_UNIX, AF_UNSPEC: the real endpoints apply
        V2_SIGNATURE + bytes([0x21, 0x12]) + struct.pack("!H", 12) + bytes(12),
        V2_SIGNATURE + bytes([0x21, 0x31]) + struct.pack("!H", 216) + bytes(216),
        V2_SIGNATURE + bytes([0x21, 0x00]) + struct.pack("!H", 0),
    ],
)
def test_the_real_endpoints_apply(header: bytes) -> None:
    found = read(header + HELLO)
    assert found is not None and (found.source, found.destination, found.rest) == (
        None,
        None,
        HELLO,
    )


def test_v2_tlvs_are_skipped() -> None:
    tlv = bytes([0x04, 0x00, 0x03]) + b"abc"  # PP2_TYPE_NOOP
    block = bytes([192, 0, 2, 1, 198, 51, 100, 2]) + struct.pack("!HH", 1000, 443) + tlv
    header = V2_SIGNATURE + bytes([0x21, 0x11]) + struct.pack("!H", len(block)) + block
    found = read(header + HELLO)
    assert found is not None and found.source == ("192.0.2.1", 1000) and found.rest == HELLO


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"\x16\x03\x01\x02\x00", "starts otherwise"),  # a TLS ClientHello, no header
        (b"GET / HTTP/1.1\r\n", "starts otherwise"),
        (b"PROXY\tTCP4", "starts otherwise"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", "CRLF"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", "CRLF"),
        (b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", "malformed"),
        (b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", "malformed"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", "malformed"),
        (b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", "address malformed"),
        (b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n", "not TCP4"),
        (b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n", "not TCP6"),
        (b"PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n", "address"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", "port malformed"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n", "out of range"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", "port malformed"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 \xb9 2\r\n", "US-ASCII"),
        (b"PROXY " + b"A" * V1_MAX, "longer than"),
        (V2_SIGNATURE + bytes([0x11, 0x11, 0, 12]) + bytes(12), "another version"),
        (V2_SIGNATURE + bytes([0x22, 0x11, 0, 12]) + bytes(12), "command unknown"),
        (V2_SIGNATURE + bytes([0x21, 0x41, 0, 12]) + bytes(12), "family/protocol unknown"),
        (V2_SIGNATURE + bytes([0x21, 0x13, 0, 12]) + bytes(12), "family/protocol unknown"),
        (V2_SIGNATURE + bytes([0x21, 0x11, 0, 11]) + bytes(11), "too short"),
        (V2_SIGNATURE + bytes([0x21, 0x21, 0, 12]) + bytes(12), "too short"),
        (b"\r\n\r\n\x00\r\nQUIX", "starts otherwise"),
    ],
)
def test_refuses(data: bytes, why: str) -> None:
    with pytest.raises(ProxyHeaderError, match=why):
        read(data)
    # and the same a byte at a time: refused as early as the bytes allow
    with pytest.raises(ProxyHeaderError, match=why):
        read(data, 1)


def test_a_v1_line_is_refused_at_its_bound_without_a_crlf() -> None:
    reader = ProxyHeaderReader()
    line = b"PROXY UNKNOWN " + b"f" * (V1_MAX - 15)  # 106 bytes: a CRLF may still come
    assert reader.receive_data(line) is None
    with pytest.raises(ProxyHeaderError, match="longer than 107"):
        reader.receive_data(b"f")
    longest = b"PROXY UNKNOWN " + b"f" * (V1_MAX - 16) + b"\r\n"
    assert len(longest) == V1_MAX and read(longest) is not None


def test_a_second_header_is_not_read() -> None:
    reader = ProxyHeaderReader()
    assert reader.receive_data(v2_header(None)) is not None
    with pytest.raises(ProxyHeaderError):
        reader.receive_data(b"x")
