"""Does a server certificate name the host we connected to? (RFC 6125, as browsers check it.)"""

from __future__ import annotations

import ipaddress

from cryptography import x509

from mutls.pki.names import common_name


def certificate_names(cert: x509.Certificate) -> list[str]:
    """The DNS names and IP addresses a certificate is for (SAN; the CN only without a SAN)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):
        cn = common_name(cert.subject)
        return [cn] if cn else []
    names: list[str] = list(san.get_values_for_type(x509.DNSName))
    names += [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return names


def is_ip_address(host: str) -> bool:
    """True for an IPv4 or IPv6 literal (without brackets)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def host_matches(cert: x509.Certificate, host: str) -> bool:
    """True when ``cert`` is valid for ``host`` (a DNS name or an IP literal)."""
    if is_ip_address(host):
        wanted = ipaddress.ip_address(host)
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except (x509.ExtensionNotFound, ValueError):
            return False
        return wanted in san.get_values_for_type(x509.IPAddress)
    return any(_dns_matches(pattern, host) for pattern in certificate_names(cert))


def _dns_matches(pattern: str, host: str) -> bool:
    pattern = pattern.lower().rstrip(".")
    host = host.lower().rstrip(".")
    if pattern == host:
        return True
    # A wildcard stands for exactly one whole left-most label, never for a public suffix
    # ("*.com") nor inside a label ("f*o.example"): what browsers accept.
    if not pattern.startswith("*.") or pattern.count(".") < 2:
        return False
    head, _, rest = host.partition(".")
    return bool(head) and rest == pattern[2:]
