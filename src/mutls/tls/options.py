"""The two questions a client-certificate server answers: ask for one? and what if it is bad?"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class ClientCertMode(enum.Enum):
    """Whether the server asks for a client certificate (a TLS CertificateRequest)."""

    NONE = "none"  #: never asks (XSP's --https)
    OPTIONAL = "optional"  #: asks; a client may send none (XSP's --https-client-accept)
    REQUIRE = "require"  #: asks; a request without one is refused (--https-client-require)


class HTTPVersions(enum.Enum):
    """Which HTTP versions the server offers in ALPN (``--http``)."""

    AUTO = "auto"  #: h2 and http/1.1, HTTP/2 first; no ALPN: HTTP/1.1
    HTTP11 = "1.1"  #: http/1.1 only
    HTTP2 = "2"  #: h2 only; a client offering only others is refused, one without ALPN gets h2

    @property
    def alpn(self) -> tuple[bytes, ...]:
        """The ALPN names offered, in the server's order of preference."""
        if self is HTTPVersions.HTTP11:
            return (b"http/1.1",)
        if self is HTTPVersions.HTTP2:
            return (b"h2",)
        return (b"h2", b"http/1.1")


class VerifyPolicy(enum.Enum):
    """What happens to a request whose certificate is missing (when required) or not valid."""

    STRICT = "strict"  #: refused with 403 before the app runs
    REPORT = "report"  #: the app runs and sees ``valid=False`` and the ``error`` (as XSP)


#: the largest Certificate message a client may send (``--max-client-chain``): a leaf and a
#: few intermediates take 1-6 KB; OpenSSL's own default is 100 KB.
DEFAULT_MAX_CLIENT_CHAIN = 32 * 1024
MIN_CLIENT_CHAIN = 4 * 1024
MAX_CLIENT_CHAIN = 100 * 1024


@dataclass(frozen=True, kw_only=True)
class TLSOptions:
    """How the server's handshake is tuned, as one value: ``ServerConfig`` holds it and
    :class:`~mutls.tls.context.ServerTLSConfig` is made of it (its keyword-only fields), so a
    new setting is added here once.

    ``send_ca_names`` lists the anchors' subjects in the CertificateRequest (clients then offer
    only certificates from those CAs); ``ciphers`` is an OpenSSL cipher string for TLS 1.2
    (default: Mozilla intermediate, ECDHE with AES-GCM or ChaCha20), ``tls13_ciphers`` the
    TLS 1.3 suites (default: OpenSSL's). ``reject_at_handshake`` makes ``require`` mode fail
    the handshake when no certificate is sent (``certificate_required`` in TLS 1.3) instead of
    the HTTP 403. ``keylog_path`` writes NSS key-log lines (file mode 0600), for Wireshark.
    ``max_client_chain`` caps the client's Certificate message in bytes (OpenSSL refuses a
    longer one in the handshake).
    """

    send_ca_names: bool = True
    ciphers: str | None = None
    tls13_ciphers: str | None = None
    reject_at_handshake: bool = False
    keylog_path: str | None = None
    max_client_chain: int = DEFAULT_MAX_CLIENT_CHAIN
