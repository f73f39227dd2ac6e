"""Server host name matching (RFC 6125 as browsers do it)."""

from __future__ import annotations

import pytest
from cryptography import x509

from mutls import pki
from mutls.client.hostname import certificate_names, host_matches
from mutls.pki.certs import build_certificate


def _server(*names: str, cn: str = "server") -> x509.Certificate:
    key = pki.generate_private_key()
    san = [pki.parse_general_name(n) for n in names]
    return build_certificate(
        subject=x509.Name.from_rfc4514_string(f"CN={cn}"),
        public_key=key.public_key(),
        signing_key=key,
        san=san,
    )


@pytest.mark.parametrize(
    ("names", "host", "expected"),
    [
        (["DNS:localhost"], "localhost", True),
        (["DNS:localhost"], "LOCALHOST.", True),
        (["DNS:*.example.org"], "www.example.org", True),
        (["DNS:*.example.org"], "a.b.example.org", False),
        (["DNS:*.example.org"], "example.org", False),
        (["DNS:*.org"], "example.org", False),
        (["IP:127.0.0.1"], "127.0.0.1", True),
        (["IP:::1"], "::1", True),
        (["DNS:127.0.0.1"], "127.0.0.1", False),  # an IP must be an IP SAN
        (["DNS:localhost"], "127.0.0.2", False),
    ],
)
def test_host_matches(names: list[str], host: str, expected: bool) -> None:
    assert host_matches(_server(*names), host) is expected


def test_common_name_counts_only_without_san() -> None:
    without = _server(cn="legacy.example")
    assert certificate_names(without) == ["legacy.example"]
    assert host_matches(without, "legacy.example")
    with_san = _server("DNS:other.example", cn="legacy.example")
    assert not host_matches(with_san, "legacy.example")
    assert certificate_names(with_san) == ["other.example"]
