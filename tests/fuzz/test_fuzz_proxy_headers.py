"""The proxy headers' reader under hypothesis: any X-Forwarded-For, X-Forwarded-Proto and
Forwarded values never raise, and what it reports is always an address that was in the headers
(never one made up) and a scheme of http or https."""

from __future__ import annotations

import ipaddress
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mutls.http.proxy_headers import relayed

from budget import budget

FAST = budget(300)

NAMES = (b"X-Forwarded-For", b"X-Forwarded-Proto", b"Forwarded", b"forwarded")
pieces = st.one_of(
    st.ip_addresses().map(str),
    st.sampled_from(["unknown", "_hidden", '"', ";", ",", "=", "for=", "proto=https", "[", "]:"]),
    st.text(max_size=8),
)
values = st.lists(pieces, max_size=8).map("".join)


def addresses_in(text: str) -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Every IP address written in ``text`` (with or without a port)."""
    found = set()
    for token in re.split(r'[,;"\s=\[\]]+', text):
        for candidate in (token, token.rsplit(":", 1)[0]):
            try:
                found.add(ipaddress.ip_address(candidate))
            except ValueError:
                pass
    return found


@pytest.mark.slow
@FAST
@given(st.lists(st.tuples(st.sampled_from(NAMES), values), max_size=4), st.booleans())
def test_never_raises_never_invents(headers: list[tuple[bytes, str]], trust_all: bool) -> None:
    raw = [(name, value.encode("utf-8", "surrogateescape")) for name, value in headers]
    said = relayed(raw, lambda host: trust_all or host.startswith("10."))
    if said.client is not None:
        host, port = said.client
        ipaddress.ip_address(host)
        assert 0 <= port <= 65535
        text = b" ".join(v for _, v in raw).decode("latin-1")
        assert ipaddress.ip_address(host) in addresses_in(text)
    assert said.scheme in (None, "http", "https")
