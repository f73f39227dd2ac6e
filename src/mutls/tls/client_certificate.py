"""``ClientCertificate``: what a TLS connection learned about its client's certificate.

Computed once per connection by the TLS engine and shared by every request on it; adapters
(WSGI environ, ASGI scope, the test page) render it, never recompute it. The Python face of the
article's ``HttpClientCertificate`` and of mod_ssl's ``SSL_CLIENT_*`` variables.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import cached_property

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from mutls.pki.names import common_name


@dataclass(frozen=True)
class SubjectAltNames:
    """The subject alternative names of a certificate, by kind."""

    dns: tuple[str, ...] = ()
    email: tuple[str, ...] = ()
    uri: tuple[str, ...] = ()
    ip: tuple[str, ...] = ()


@dataclass(frozen=True)
class ClientCertificate:
    """The client certificate of one TLS connection and the verdict on it.

    ``present`` is False when the client sent none. ``valid`` is True only when the chain was
    verified to a trust anchor, within its validity, with clientAuth (or no EKU), and neither
    revoked nor disallowed. ``error`` is the first reason it is not valid (OpenSSL's wording,
    e.g. "certificate has expired"), ``error_depth`` where in the chain it was found.
    ``chain`` is leaf first, as the client sent it (on a resumed session, as it sent it in the
    full handshake); empty when the leaf itself does not parse (``error`` says so).
    """

    present: bool
    valid: bool
    error: str | None = None
    error_code: int | None = None
    error_depth: int | None = None
    chain: tuple[x509.Certificate, ...] = field(default=())
    resumed: bool = False
    #: the certificate at ``error_depth`` (it may be one of our CAs, not one the client sent).
    error_certificate: x509.Certificate | None = None
    #: the chain OpenSSL built and the verdict judged (DER, leaf first, up to the anchor when
    #: it could be built): what was verified, where ``chain`` is what the client sent.
    verified_chain: tuple[bytes, ...] = field(default=(), repr=False, compare=False)

    @classmethod
    def absent(cls) -> ClientCertificate:
        """No certificate was sent (or none was asked for)."""
        return cls(present=False, valid=False)

    # -- the leaf's fields ---------------------------------------------------------------------

    @property
    def certificate(self) -> x509.Certificate | None:
        """The client's own (leaf) certificate."""
        return self.chain[0] if self.chain else None

    @cached_property
    def subject(self) -> str | None:
        """The subject as RFC 4514, e.g. ``CN=poupou``."""
        cert = self.certificate
        return cert.subject.rfc4514_string() if cert is not None else None

    @cached_property
    def issuer(self) -> str | None:
        """The issuer as RFC 4514."""
        cert = self.certificate
        return cert.issuer.rfc4514_string() if cert is not None else None

    @cached_property
    def common_name(self) -> str | None:
        """The subject's CN."""
        cert = self.certificate
        return common_name(cert.subject) if cert is not None else None

    @cached_property
    def serial(self) -> str | None:
        """The serial number as upper-case hex (mod_ssl's ``SSL_CLIENT_M_SERIAL``)."""
        cert = self.certificate
        return format(cert.serial_number, "X") if cert is not None else None

    @property
    def not_before(self) -> dt.datetime | None:
        """Start of validity, UTC."""
        cert = self.certificate
        return cert.not_valid_before_utc if cert is not None else None

    @property
    def not_after(self) -> dt.datetime | None:
        """End of validity, UTC."""
        cert = self.certificate
        return cert.not_valid_after_utc if cert is not None else None

    def days_remaining(self, now: dt.datetime | None = None) -> int | None:
        """Whole days until ``not_after`` (negative once expired)."""
        end = self.not_after
        if end is None:
            return None
        return (end - (now or dt.datetime.now(dt.UTC))).days

    @cached_property
    def fingerprint_sha256(self) -> str | None:
        """SHA-256 of the DER, lower-case hex."""
        cert = self.certificate
        return cert.fingerprint(hashes.SHA256()).hex() if cert is not None else None

    @cached_property
    def san(self) -> SubjectAltNames:
        """Subject alternative names (DNS, email, URI, IP)."""
        cert = self.certificate
        if cert is None:
            return SubjectAltNames()
        try:
            ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except (x509.ExtensionNotFound, ValueError):
            return SubjectAltNames()
        return SubjectAltNames(
            dns=tuple(ext.get_values_for_type(x509.DNSName)),
            email=tuple(ext.get_values_for_type(x509.RFC822Name)),
            uri=tuple(ext.get_values_for_type(x509.UniformResourceIdentifier)),
            ip=tuple(str(a) for a in ext.get_values_for_type(x509.IPAddress)),
        )

    @cached_property
    def pem(self) -> str | None:
        """The leaf as PEM."""
        cert = self.certificate
        if cert is None:
            return None
        return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")

    @cached_property
    def chain_pem(self) -> tuple[str, ...]:
        """Every certificate of the chain as PEM, leaf first."""
        return tuple(c.public_bytes(serialization.Encoding.PEM).decode("ascii") for c in self.chain)

    @property
    def der(self) -> bytes | None:
        """The leaf as DER."""
        cert = self.certificate
        return cert.public_bytes(serialization.Encoding.DER) if cert is not None else None

    @property
    def verify_status(self) -> str:
        """mod_ssl's ``SSL_CLIENT_VERIFY``: ``NONE``, ``SUCCESS`` or ``FAILED:<reason>``."""
        if not self.present:
            return "NONE"
        if self.valid:
            return "SUCCESS"
        return f"FAILED:{self.error or 'unknown error'}"
