"""Just enough DER to look inside a file without parsing it: element headers, OIDs, and whether
some bytes are one whole SEQUENCE.

cryptography parses what it loads but says nothing of how a file is built, which is what the
PKCS#12 algorithm report (:mod:`mutls.pki.pkcs12`) and the key-material sniffer
(:mod:`mutls.pki.sniff`) need. Single-byte tags only: every structure they look at has them.
"""

from __future__ import annotations

SEQUENCE = 0x30
INTEGER = 0x02
OCTET_STRING = 0x04
OID = 0x06


def header(data: bytes, pos: int) -> tuple[int, int, int | None]:
    """(tag, start of content, content length) of the element at ``pos``.

    The length is ``None`` for BER's indefinite form (old Windows PKCS#12 files use it); the
    content itself may lie beyond ``data``, so a file's first bytes are enough. Raises
    ``IndexError`` or ``ValueError`` when the header itself is cut or malformed.
    """
    tag, first = data[pos], data[pos + 1]
    pos += 2
    if first == 0x80:
        return tag, pos, None
    if first & 0x80:
        count = first & 0x7F
        if count > 4 or pos + count > len(data):
            raise ValueError("bad length")
        return tag, pos + count, int.from_bytes(data[pos : pos + count], "big")
    return tag, pos, first


def element(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start of content, end of content) of the element at ``pos``, which must be whole."""
    tag, start, length = header(data, pos)
    if length is None or start + length > len(data):
        raise ValueError("truncated")
    return tag, start, start + length


def oid_text(raw: bytes) -> str:
    """The dotted form of an OBJECT IDENTIFIER's content octets."""
    first, rest, value = raw[0], raw[1:], 0
    parts = [str(min(first // 40, 2)), str(first - 40 * min(first // 40, 2))]
    for byte in rest:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            parts.append(str(value))
            value = 0
    return ".".join(parts)


def is_sequence(data: bytes) -> bool:
    """True when ``data`` is one complete DER SEQUENCE (its length matches the bytes)."""
    try:
        tag, start, length = header(data, 0)
    except (IndexError, ValueError):
        return False
    return tag == SEQUENCE and length is not None and start + length == len(data)
