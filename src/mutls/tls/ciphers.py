"""Cipher suites: the defaults we offer, and OpenSSL names turned into IANA numbers.

pyOpenSSL has no accessor for a suite's IANA number (ASGI's ``cipher_suite``) and the bundled
OpenSSL's ``SSL_CIPHER_get_protocol_id`` is not in its bindings, so the table is built once, at
first use, from the standard library's view of OpenSSL's cipher list: ``ssl.SSLContext
.get_ciphers()`` reports each suite's protocol id, and OpenSSL names a suite the same in every
version. Nothing here opens a socket.
"""

from __future__ import annotations

import ssl
from functools import cache

#: Mozilla's "intermediate" profile for TLS 1.2, ECDHE only: forward secrecy and AEAD ciphers.
DEFAULT_TLS12_CIPHERS = ":".join(
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
    )
)

#: Suites OpenSSL knows but does not enable by default, so the stdlib list may lack them.
_EXTRA_IDS = {
    "TLS_AES_128_CCM_SHA256": 0x1304,
    "TLS_AES_128_CCM_8_SHA256": 0x1305,
}


@cache
def cipher_ids() -> dict[str, int]:
    """OpenSSL cipher name -> IANA number, for every suite the system OpenSSL can list."""
    table = dict(_EXTRA_IDS)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.set_ciphers("ALL:COMPLEMENTOFALL:@SECLEVEL=0")
    except ssl.SSLError:  # an OpenSSL that rejects the level keeps its default list
        pass
    for suite in context.get_ciphers():
        # The id is OpenSSL's internal 0x0300XXXX form; the low 16 bits are the IANA number.
        table[suite["name"]] = suite["id"] & 0xFFFF
    return table


def iana_cipher_id(name: str | None) -> int | None:
    """The IANA number of an OpenSSL cipher name (``None`` when unknown)."""
    if name is None:
        return None
    return cipher_ids().get(name)
