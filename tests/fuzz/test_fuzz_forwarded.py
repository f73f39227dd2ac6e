"""Forwarded-certificate headers under hypothesis: arbitrary and mutated bytes in every format
never raise anything but ForwardedCertificateError (the server's 400), and never hang."""

from __future__ import annotations

import urllib.parse

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mutls.http.forwarded_certificates import (
    ForwardedCertificateError,
    ForwardedHeader,
    parse_pem,
    parse_rfc9440,
    parse_xfcc,
)

from budget import budget
from helpers import PKIFiles

FAST = budget(300)
NAMES = ("X-Client-Cert", "Client-Cert", "X-Forwarded-Client-Cert")


def only_our_error(parse: object, *args: bytes | None) -> None:
    try:
        result = parse(*args)  # type: ignore[operator]
    except ForwardedCertificateError as exc:
        assert str(exc).startswith("forwarded certificate header malformed: ")
    else:
        assert isinstance(result, tuple) and result


@FAST
@given(st.binary(max_size=600))
def test_arbitrary_bytes(value: bytes) -> None:
    only_our_error(parse_pem, value)
    only_our_error(parse_rfc9440, value, None)
    only_our_error(parse_rfc9440, b":YWJj:", value)
    only_our_error(parse_xfcc, value)


@FAST
@given(
    st.lists(
        st.sampled_from(
            [
                *(b"-----BEGIN CERTIFICATE-----", b"-----END CERTIFICATE-----", b"%0A", b"%2"),
                *(b"\n\t", b":", b'"', b"\\", b";", b",", b"=", b"Cert=", b"Hash=", b"Chain="),
                *(b"MII", b"A"),
            ]
        )
        | st.binary(max_size=8),
        max_size=30,
    )
)
def test_structured_noise(pieces: list[bytes]) -> None:
    """Pieces of each grammar, shuffled: reaches deeper than uniform bytes."""
    value = b"".join(pieces)
    for name in NAMES:
        only_our_error(ForwardedHeader.named(name).chain, [(name.lower().encode(), value)])


@pytest.fixture(scope="module")
def pem_value(test_pki: PKIFiles) -> bytes:
    return test_pki.cert("poupou").read_bytes()


@FAST
@given(st.data())
def test_mutated_certificate(pem_value: bytes, data: st.DataObject) -> None:
    """A real escaped certificate with bytes flipped, cut or inserted."""
    value = bytearray(urllib.parse.quote_from_bytes(pem_value, safe=b"").encode())
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(value) - 1))
        action = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if action == "flip":
            value[at] ^= data.draw(st.integers(1, 255))
        elif action == "cut":
            del value[at : at + data.draw(st.integers(1, 40))]
        else:
            value[at:at] = data.draw(st.binary(min_size=1, max_size=4))
        if not value:
            value = bytearray(b"%")
    only_our_error(parse_pem, bytes(value))
    only_our_error(parse_xfcc, b'Cert="' + bytes(value) + b'"')
