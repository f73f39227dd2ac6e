"""``TLSInfo``: what one established TLS connection is (version, cipher, certificates)."""

from __future__ import annotations

from dataclasses import dataclass

from mutls.tls.client_certificate import ClientCertificate

TLS_VERSION_NUMBERS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


@dataclass(frozen=True)
class TLSInfo:
    """Facts of an established TLS connection, shared by every request on it.

    ``version`` is OpenSSL's name (``TLSv1.3``), ``cipher`` OpenSSL's cipher name,
    ``cipher_id`` the IANA number (ASGI's ``cipher_suite``), ``server_cert_pem`` the server's
    own certificate (ASGI's ``server_cert``).
    """

    version: str
    cipher: str
    cipher_id: int | None
    client_certificate: ClientCertificate
    server_cert_pem: str | None = None
    alpn: str | None = None
    sni: str | None = None
    resumed: bool = False

    @property
    def version_number(self) -> int | None:
        """``0x0303`` for TLS 1.2, ``0x0304`` for TLS 1.3 (ASGI's ``tls_version``)."""
        return TLS_VERSION_NUMBERS.get(self.version)
