"""The PROXY protocol reader under hypothesis: arbitrary and mutated bytes, in arbitrary pieces,
never raise anything but ProxyHeaderError and never hold more than a header's bound; any valid
header round-trips, with the bytes after it untouched."""

from __future__ import annotations

import ipaddress
import itertools

from hypothesis import given
from hypothesis import strategies as st

from mutls.http.proxy_protocol import (
    V1_MAX,
    V2_FIXED,
    ProxyHeaderError,
    ProxyHeaderReader,
    v1_header,
    v2_header,
)

from budget import budget

FAST = budget(300)

ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(str)
port = st.integers(0, 65535)


def pieces_of(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds) if b > a]


def feed(pieces: list[bytes]) -> tuple[object, int]:
    """The header (or None, or the error) and the most bytes the reader held meanwhile."""
    reader = ProxyHeaderReader()
    fed = 0
    for piece in pieces:
        fed += len(piece)
        try:
            found = reader.receive_data(piece)
        except ProxyHeaderError as exc:
            return exc, fed
        if found is not None:
            return found, fed
    return None, fed


@FAST
@given(st.binary(max_size=400), st.lists(st.integers(0, 400), max_size=6))
def test_arbitrary_bytes(data: bytes, cuts: list[int]) -> None:
    found, held = feed(pieces_of(data, cuts))
    if found is None:  # still waiting: only ever within a header's bound
        assert held <= max(V1_MAX, V2_FIXED + 0xFFFF)
        if data[:1] == b"P":
            assert held < V1_MAX


@FAST
@given(
    st.one_of(st.tuples(ipv4, ipv4), st.tuples(ipv6, ipv6)),
    port,
    port,
    st.booleans(),
    st.binary(max_size=40),
    st.lists(st.integers(0, 200), max_size=5),
)
def test_valid_headers_round_trip(
    hosts: tuple[str, str], sport: int, dport: int, v2: bool, rest: bytes, cuts: list[int]
) -> None:
    make = v2_header if v2 else v1_header
    header = make((hosts[0], sport), (hosts[1], dport))
    data = header + rest
    reader = ProxyHeaderReader()
    found = None
    tail = b""
    for piece in pieces_of(data, cuts):
        if found is not None:
            tail += piece
            continue
        found = reader.receive_data(piece)
        if found is not None:
            tail = found.rest
    assert found is not None
    assert found.source == (str(ipaddress.ip_address(hosts[0])), sport)
    assert found.destination == (str(ipaddress.ip_address(hosts[1])), dport)
    assert tail == rest


@FAST
@given(
    st.tuples(ipv4, ipv4),
    st.booleans(),
    st.integers(0, 60),
    st.integers(0, 255),
)
def test_mutated_headers(hosts: tuple[str, str], v2: bool, where: int, byte: int) -> None:
    header = (v2_header if v2 else v1_header)((hosts[0], 1), (hosts[1], 2))
    where %= len(header)
    mutated = header[:where] + bytes([byte]) + header[where + 1 :]
    found, _ = feed([mutated])
    assert found is None or isinstance(found, ProxyHeaderError) or hasattr(found, "source")
