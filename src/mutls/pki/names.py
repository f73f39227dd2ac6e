"""Distinguished names and subject alternative names as people type them."""

from __future__ import annotations

import ipaddress
import re

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from mutls.errors import PKIError


def parse_name(text: str) -> x509.Name:
    """Parse ``"CN=poupou"``, ``"CN=x, O=y"`` (RFC 4514, as Mono's ``-n``) or ``"/O=y/CN=x"``.

    A bare word without ``=`` is taken as a common name.
    """
    text = text.strip()
    if not text:
        raise PKIError("empty name: expected something like CN=poupou")
    if "=" not in text:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])
    if text.startswith("/"):
        # OpenSSL's -subj order is most significant first; RFC 4514 is the reverse.
        text = ",".join(reversed([p for p in text.split("/") if p]))
    try:
        return x509.Name.from_rfc4514_string(_as_typed(text))
    except ValueError as exc:
        raise PKIError(f"invalid name {text!r}: {str(exc) or 'expected e.g. CN=x, O=y'}") from None


#: attribute types RFC 4514 names, which people also type in lower case (``cn=x``).
_KEYWORDS = {"CN", "L", "ST", "O", "OU", "C", "STREET", "DC", "UID"}


def _as_typed(text: str) -> str:
    """``CN=x, o=y`` as RFC 4514 spells it (``CN=x,O=y``): people put a space after the comma
    and write keywords in lower case; cryptography's parser takes neither."""
    parts = []
    for part in re.split(r"(?<!\\),", text):
        key, sep, value = part.partition("=")
        key = key.strip()
        parts.append(f"{key.upper() if key.upper() in _KEYWORDS else key}{sep}{value.lstrip()}")
    return ",".join(parts)


def common_name(name: x509.Name) -> str | None:
    """The (last) CN of a name, or ``None``."""
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not values:
        return None
    value = values[-1].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def parse_general_name(text: str) -> x509.GeneralName:
    """``DNS:x``, ``IP:1.2.3.4``, ``email:a@b``, ``URI:…``, or a bare value guessed by shape."""
    kind, sep, value = text.partition(":")
    lowered = kind.lower()
    if sep and lowered in {"dns", "ip", "email", "uri"}:
        if lowered == "dns":
            return x509.DNSName(value)
        if lowered == "ip":
            try:
                return x509.IPAddress(ipaddress.ip_address(value))
            except ValueError:
                raise PKIError(f"invalid IP address in SAN {text!r}") from None
        if lowered == "email":
            return x509.RFC822Name(value)
        return x509.UniformResourceIdentifier(value)
    try:
        return x509.IPAddress(ipaddress.ip_address(text))
    except ValueError:
        pass
    if "://" in text:
        return x509.UniformResourceIdentifier(text)
    if "@" in text:
        return x509.RFC822Name(text)
    if not text or " " in text:
        raise PKIError(f"invalid SAN {text!r}: expected DNS:, IP:, email: or URI:")
    return x509.DNSName(text)


def host_general_name(host: str) -> x509.GeneralName:
    """The SAN that makes a certificate valid for ``host`` (an IP address or a DNS name)."""
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


EKU_NAMES: dict[str, ObjectIdentifier] = {
    "serverauth": ExtendedKeyUsageOID.SERVER_AUTH,
    "clientauth": ExtendedKeyUsageOID.CLIENT_AUTH,
    "codesigning": ExtendedKeyUsageOID.CODE_SIGNING,
    "emailprotection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "timestamping": ExtendedKeyUsageOID.TIME_STAMPING,
    "ocspsigning": ExtendedKeyUsageOID.OCSP_SIGNING,
}


def parse_eku(text: str) -> list[ObjectIdentifier]:
    """``serverAuth,clientAuth`` or dotted OIDs (Mono's form), comma-separated."""
    oids: list[ObjectIdentifier] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        known = EKU_NAMES.get(part.lower())
        if known is not None:
            oids.append(known)
            continue
        try:
            oids.append(ObjectIdentifier(part))
        except ValueError:
            names = ", ".join(["serverAuth", "clientAuth", "codeSigning", "emailProtection"])
            raise PKIError(f"unknown EKU {part!r}: use a dotted OID or one of {names}") from None
    if not oids:
        raise PKIError("empty EKU list")
    return oids


def eku_name(oid: ObjectIdentifier) -> str:
    """``serverAuth`` for the server-auth OID, the dotted string for unknown ones."""
    for name, known in EKU_NAMES.items():
        if known == oid:
            return {
                "serverauth": "serverAuth",
                "clientauth": "clientAuth",
                "codesigning": "codeSigning",
                "emailprotection": "emailProtection",
                "timestamping": "timeStamping",
                "ocspsigning": "OCSPSigning",
            }[name]
    return oid.dotted_string
