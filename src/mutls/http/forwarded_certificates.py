"""Client certificates forwarded by a TLS-terminating proxy, read from request headers.

Sans-I/O and strict: header bytes in, certificates (leaf first) out, or one
:class:`ForwardedCertificateError` ("forwarded certificate header malformed: ...") that the
server answers with 400. Nothing here decides whether to believe the header: only a trusted
proxy's headers are read at all (:mod:`mutls.apps.forwarded_certificates`), and the chain is
then verified like a handshake's (:meth:`mutls.tls.verify.ClientVerifier.verify_chain`).

Three formats, chosen by the header's name:

- ``X-Client-Cert`` or any other name: PEM, as nginx's ``$ssl_client_escaped_cert`` sends it
  (URL-escaped), its older ``$ssl_client_cert`` (lines folded with a tab) or raw; several
  PEM blocks are a chain, leaf first.
- ``Client-Cert`` (RFC 9440): a structured-field byte sequence, ``:<base64 DER>:``; the chain
  in ``Client-Cert-Chain`` (a list of byte sequences) is read only when the configuration names
  it too (``Client-Cert, Client-Cert-Chain``): a proxy that does not set it passes on the one a
  client sent.
- ``X-Forwarded-Client-Cert`` (Envoy's XFCC): comma-separated elements of ``;``-separated
  ``key=value`` pairs (values optionally double-quoted); the last element is the one the
  nearest proxy added. ``Chain`` (URL-encoded PEM, leaf included) or ``Cert`` (the leaf)
  carries the certificate; ``Hash``, when given, must match the leaf.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from mutls.pki.certs import fully_parsed

#: the longest forwarded value read (a chain of a few certificates, URL-escaped, fits).
MAX_VALUE_BYTES = 32 * 1024
#: the most certificates one forwarded chain may hold.
MAX_CHAIN = 8
#: the longest XFCC header (every hop's element) before the last element is picked.
MAX_XFCC_BYTES = 64 * 1024

RFC9440_CERT = b"client-cert"
RFC9440_CHAIN = b"client-cert-chain"
XFCC = b"x-forwarded-client-cert"
#: header names proxies use for client certificates (lower-case), and the prefixes of the
#: ones that carry its parts (``X-SSL-Client-Verify``, ``SSL-Client-S-DN``, ...): the HTTP
#: connection sets them aside from every request (:class:`~mutls.http.connection.HTTPConnection`),
#: so an app never reads one; only a trusted proxy's configured header is then read.
KNOWN_NAMES = frozenset(
    {
        b"x-client-cert",
        b"x-ssl-client-cert",
        b"ssl-client-cert",
        b"x-ssl-cert",
        RFC9440_CERT,
        RFC9440_CHAIN,
        XFCC,
    }
)
KNOWN_PREFIXES = (b"x-ssl-client-", b"ssl-client-")
#: an HTTP field name (RFC 9110 5.1), without ``_``: such names never reach the app.
_FIELD_NAME = re.compile(rb"[!#$%&'*+.^`|~0-9a-z-]+")

_PEM_BLOCK = re.compile(
    rb"-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]*?)-----END CERTIFICATE-----"
)
_BASE64 = re.compile(rb"[A-Za-z0-9+/]*={0,2}")
_PERCENT = re.compile(rb"%(?![0-9A-Fa-f]{2})")
_XFCC_KEYS = frozenset({b"by", b"hash", b"cert", b"chain", b"subject", b"uri", b"dns"})


class ForwardedCertificateError(ValueError):
    """A forwarded-certificate header that does not decode: answered 400, never believed."""

    status = 400

    def __init__(self, reason: str) -> None:
        super().__init__(f"forwarded certificate header malformed: {reason}")


class ForwardedFormat(enum.Enum):
    """How a proxy encodes the client's certificate."""

    PEM = "pem"  #: nginx: URL-escaped (or tab-folded, or raw) PEM
    RFC9440 = "rfc9440"  #: Client-Cert / Client-Cert-Chain byte sequences
    XFCC = "xfcc"  #: Envoy's x-forwarded-client-cert


@dataclass(frozen=True)
class ForwardedHeader:
    """The header a server reads forwarded certificates from, and its format; for RFC 9440,
    ``chain_name`` is ``Client-Cert-Chain`` when the configuration names it too."""

    name: bytes
    format: ForwardedFormat
    chain_name: bytes | None = None

    @classmethod
    def named(cls, names: str) -> ForwardedHeader:
        """The header called ``names`` (or ``Client-Cert, Client-Cert-Chain``); its format
        follows from the name (see module docs). Raises ``ValueError`` saying why a name
        cannot work."""
        lowered = [name.strip().lower().encode("latin-1") for name in names.split(",")]
        for name in lowered:
            if b"_" in name:
                raise ValueError(
                    f"{name.decode()}: header names with '_' never reach mutls (they are "
                    "dropped, as nginx does): use '-'"
                )
            if not _FIELD_NAME.fullmatch(name):
                raise ValueError(f"{name.decode()!r}: not a header name")
        if lowered == [RFC9440_CERT, RFC9440_CHAIN]:
            return cls(RFC9440_CERT, ForwardedFormat.RFC9440, RFC9440_CHAIN)
        if len(lowered) > 1 or lowered[0] == RFC9440_CHAIN:
            raise ValueError(
                "one header, or Client-Cert, Client-Cert-Chain (RFC 9440's certificate and "
                "its chain)"
            )
        if lowered[0] == RFC9440_CERT:
            return cls(RFC9440_CERT, ForwardedFormat.RFC9440)
        if lowered[0] == XFCC:
            return cls(XFCC, ForwardedFormat.XFCC)
        return cls(lowered[0], ForwardedFormat.PEM)

    @property
    def names(self) -> frozenset[bytes]:
        """The names read (lower-case)."""
        return frozenset(n for n in (self.name, self.chain_name) if n is not None)

    def chain(self, headers: Sequence[tuple[bytes, bytes]]) -> tuple[x509.Certificate, ...] | None:
        """The forwarded chain (leaf first) in ``headers``, ``None`` when the header is absent;
        raises :class:`ForwardedCertificateError` when it is malformed."""
        values = [v for k, v in headers if k.lower() == self.name]
        if not values:
            return None
        if len(values) > 1 and self.format is not ForwardedFormat.XFCC:
            raise ForwardedCertificateError(f"{self.name.decode()} sent more than once")
        if self.format is ForwardedFormat.PEM:
            return parse_pem(values[0])
        if self.format is ForwardedFormat.XFCC:
            return parse_xfcc(b",".join(values))
        chain = [v for k, v in headers if k.lower() == self.chain_name]
        return parse_rfc9440(values[0], b",".join(chain) if chain else None)


# -- the formats ----------------------------------------------------------------------------


def parse_pem(value: bytes) -> tuple[x509.Certificate, ...]:
    """PEM certificates, URL-escaped or not, lines broken by LF, CRLF, tab-folded or spaces."""
    _check_size(value, MAX_VALUE_BYTES)
    text = _unescape(value.strip()) if b"%" in value else value.strip()
    if not text:
        raise ForwardedCertificateError("empty value")
    blocks = []
    end = 0
    for match in _PEM_BLOCK.finditer(text):
        if text[end : match.start()].strip():
            raise ForwardedCertificateError("text outside the PEM blocks")
        blocks.append(_base64(b"".join(match[1].split()), "PEM"))
        end = match.end()
    if not blocks:
        raise ForwardedCertificateError("no PEM certificate (-----BEGIN CERTIFICATE-----)")
    if text[end:].strip():
        raise ForwardedCertificateError("text outside the PEM blocks")
    return _certificates(blocks)


def parse_rfc9440(cert: bytes, chain: bytes | None) -> tuple[x509.Certificate, ...]:
    """RFC 9440: ``Client-Cert`` (one byte sequence) and ``Client-Cert-Chain`` (a list)."""
    _check_size(cert, MAX_VALUE_BYTES)
    ders = [_byte_sequence(cert.strip())]
    if chain is not None:
        _check_size(chain, MAX_VALUE_BYTES)
        ders += [_byte_sequence(item.strip()) for item in chain.split(b",")]
    return _certificates(ders)


def parse_xfcc(value: bytes) -> tuple[x509.Certificate, ...]:
    """Envoy's XFCC: the last element's ``Chain`` (or ``Cert``), checked against ``Hash``."""
    _check_size(value, MAX_XFCC_BYTES)
    elements = _split_quoted(value, b",")
    pairs: dict[bytes, bytes] = {}
    for pair in _split_quoted(elements[-1], b";"):
        key, sep, raw = pair.strip().partition(b"=")
        key = key.strip().lower()
        if not sep or key not in _XFCC_KEYS:
            raise ForwardedCertificateError(f"XFCC: unknown or bare key {key[:20]!r}")
        if key in pairs and key not in (b"uri", b"dns"):
            raise ForwardedCertificateError(f"XFCC: {key.decode()} given twice")
        pairs[key] = _unquote(raw.strip())
    pem = pairs.get(b"chain") or pairs.get(b"cert")
    if pem is None:
        raise ForwardedCertificateError("XFCC: the last element has no Cert or Chain")
    _check_size(pem, MAX_VALUE_BYTES)
    if b"%" not in pem and b"-----BEGIN" not in pem:
        raise ForwardedCertificateError("XFCC: Cert/Chain is not URL-encoded PEM")
    chain = parse_pem(pem)
    if b"cert" in pairs and b"chain" in pairs:
        leaf = parse_pem(pairs[b"cert"])
        if len(leaf) != 1 or leaf[0] != chain[0]:
            raise ForwardedCertificateError("XFCC: Cert is not the first of Chain")
    expected = pairs.get(b"hash")
    if expected is not None:
        actual = hashlib.sha256(chain[0].public_bytes(Encoding.DER)).hexdigest()
        if expected.lower() != actual.encode():
            raise ForwardedCertificateError("XFCC: Hash does not match the certificate")
    return chain


# -- pieces ---------------------------------------------------------------------------------


def _check_size(value: bytes, limit: int) -> None:
    if len(value) > limit:
        raise ForwardedCertificateError(f"longer than {limit} bytes")


def _unescape(value: bytes) -> bytes:
    """Percent-decoding that refuses a ``%`` without two hex digits ('+' stays '+')."""
    if _PERCENT.search(value):
        raise ForwardedCertificateError("bad percent-escape")
    parts = value.split(b"%")
    out = bytearray(parts[0])
    for part in parts[1:]:
        out.append(int(part[:2], 16))
        out += part[2:]
    return bytes(out)


def _base64(data: bytes, what: str) -> bytes:
    if not data or _BASE64.fullmatch(data) is None:
        raise ForwardedCertificateError(f"{what}: not base64")
    try:
        return base64.b64decode(data + b"=" * (-len(data) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ForwardedCertificateError(f"{what}: not base64") from None


def _byte_sequence(item: bytes) -> bytes:
    """An RFC 8941 byte sequence ``:base64:`` (parameters are refused: RFC 9440 defines none)."""
    if len(item) < 2 or item[:1] != b":" or item[-1:] != b":":
        raise ForwardedCertificateError("Client-Cert: not a byte sequence (:base64:)")
    return _base64(item[1:-1], "Client-Cert")


def _split_quoted(value: bytes, separator: bytes) -> list[bytes]:
    """``value`` split at ``separator`` outside double quotes (``\\`` escapes inside them)."""
    parts: list[bytes] = []
    current = bytearray()
    quoted = escaped = False
    for byte in value:
        char = bytes((byte,))
        if escaped:
            escaped = False
        elif quoted and char == b"\\":
            escaped = True
        elif char == b'"':
            quoted = not quoted
        elif not quoted and char == separator:
            parts.append(bytes(current))
            current.clear()
            continue
        current.append(byte)
    if quoted or escaped:
        raise ForwardedCertificateError("XFCC: unterminated quoted value")
    parts.append(bytes(current))
    return parts


def _unquote(raw: bytes) -> bytes:
    if raw[:1] != b'"':
        if b'"' in raw:
            raise ForwardedCertificateError("XFCC: stray double quote")
        return raw
    if len(raw) < 2 or raw[-1:] != b'"':
        raise ForwardedCertificateError("XFCC: text after a quoted value")
    return re.sub(rb"\\(.)", rb"\1", raw[1:-1], flags=re.DOTALL)


def _certificates(ders: Sequence[bytes]) -> tuple[x509.Certificate, ...]:
    if len(ders) > MAX_CHAIN:
        raise ForwardedCertificateError(f"more than {MAX_CHAIN} certificates")
    certs = []
    for der in ders:
        try:
            certs.append(fully_parsed(x509.load_der_x509_certificate(der)))
        except Exception:  # ValueError, or the Rust ASN.1 parser's own errors
            raise ForwardedCertificateError("not an X.509 certificate") from None
    return tuple(certs)
