"""``REMOTE_USER`` from a client certificate, as Apache's ``SSLUserName`` sets it.

Apps and frameworks that already trust ``REMOTE_USER`` (Django's ``RemoteUserMiddleware``,
Trac, Apache-era apps) then work unchanged behind client certificates. Only a valid
certificate names a user: a name in a certificate nobody vouches for proves nothing.
"""

from __future__ import annotations

import enum

from mutls.authz.patterns import RuleError, spiffe_id
from mutls.tls.client_certificate import ClientCertificate


class UserName(enum.Enum):
    """Which part of the certificate becomes the user's name."""

    CN = "cn"
    EMAIL = "email"
    SUBJECT = "subject"
    DNS = "dns"
    URI = "uri"
    SPIFFE = "spiffe"

    @classmethod
    def parse(cls, text: str) -> UserName:
        """``cn``, ``email``, ... or mod_ssl's variable name (``SSL_CLIENT_S_DN_CN``)."""
        lowered = text.strip().lower()
        for member in cls:
            if member.value == lowered:
                return member
        if text.strip() in MOD_SSL_NAMES:
            return MOD_SSL_NAMES[text.strip()]
        choices = ", ".join(m.value for m in cls)
        raise RuleError(
            f"--remote-user {text}: use one of {choices} (or SSL_CLIENT_S_DN_CN, "
            "SSL_CLIENT_SAN_Email_0, SSL_CLIENT_S_DN, SSL_CLIENT_SAN_DNS_0)"
        )

    def of(self, cert: ClientCertificate | None) -> str | None:
        """The user's name from ``cert`` (``None`` without a valid certificate or that part)."""
        if cert is None or not cert.valid:
            return None
        san = cert.san
        if self is UserName.CN:
            return cert.common_name
        if self is UserName.SUBJECT:
            return cert.subject
        if self is UserName.SPIFFE:
            return spiffe_id(san.uri)
        found = {UserName.EMAIL: san.email, UserName.DNS: san.dns, UserName.URI: san.uri}[self]
        return found[0] if found else None


#: Apache's SSLUserName spellings of the same choices.
MOD_SSL_NAMES = {
    "SSL_CLIENT_S_DN_CN": UserName.CN,
    "SSL_CLIENT_S_DN": UserName.SUBJECT,
    "SSL_CLIENT_SAN_Email_0": UserName.EMAIL,
    "SSL_CLIENT_SAN_DNS_0": UserName.DNS,
}
