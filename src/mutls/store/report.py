"""Words about stored certificates: ``certmgr -list -v`` details and warnings before trusting."""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from mutls.pki.certs import fingerprint, is_ca_certificate
from mutls.store.directory import StoredCertificate, StoredCRL
from mutls.store.mono import mono_hash


def _colons(hexed: str) -> str:
    return ":".join(hexed[i : i + 2] for i in range(0, len(hexed), 2)).upper()


def certificate_details(entry: StoredCertificate, *, mono: bool = False) -> list[str]:
    """What ``-list -v`` prints for a certificate, one fact a line."""
    cert = entry.certificate
    lines = [
        f"Subject:     {cert.subject.rfc4514_string()}",
        f"Issuer:      {cert.issuer.rfc4514_string()}",
        f"Serial:      {cert.serial_number:X}",
        f"Not before:  {cert.not_valid_before_utc:%Y-%m-%d %H:%M:%S} UTC",
        f"Not after:   {cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC",
        f"SHA-256:     {_colons(fingerprint(cert))}",
        f"SHA-1:       {_colons(fingerprint(cert, 'sha1'))}",
        f"CA:          {'yes' if is_ca_certificate(cert) else 'no'}",
    ]
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        names = [getattr(u, "_name", None) or u.dotted_string for u in usages]
        lines.append(f"Purposes:    {', '.join(names)}")
    except x509.ExtensionNotFound:
        pass
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        lines.append(f"Alt names:   {', '.join(str(n.value) for n in san)}")
    except x509.ExtensionNotFound:
        pass
    if mono:
        digest = mono_hash(cert)
        lines.append(f"Mono hash:   {digest or NO_MONO_HASH}")
    lines.append(f"File:        {entry.path}")
    if entry.key_path is not None:
        lines.append(f"Private key: {entry.key_path}")
    return lines


#: what Mono's own certmgr shows for an ECDSA (RSA-PSS, Ed25519) certificate, and what follows.
NO_MONO_HASH = (
    "none (Mono hashes only RSA and DSA signatures: its certmgr -list shows an empty Unique "
    "Hash and its -del cannot remove this one; mutls certmgr -del --mono takes the SHA-256)"
)


def crl_details(entry: StoredCRL) -> list[str]:
    """What ``-list -crl -v`` prints for a CRL."""
    crl = entry.crl
    next_update = crl.next_update_utc
    return [
        f"Issuer:      {entry.issuer}",
        f"This update: {crl.last_update_utc:%Y-%m-%d %H:%M:%S} UTC",
        f"Next update: {next_update:%Y-%m-%d %H:%M:%S} UTC" if next_update else "Next update: -",
        f"Revoked:     {', '.join(f'{r.serial_number:X}' for r in crl) or 'none'}",
        f"SHA-256:     {_colons(entry.fingerprint)}",
        f"File:        {entry.path}",
    ]


def trust_warning(cert: x509.Certificate) -> str | None:
    """Why ``cert`` makes a poor trust anchor, or ``None``."""
    if is_ca_certificate(cert):
        return None
    subject = cert.subject.rfc4514_string()
    self_signed = cert.issuer == cert.subject
    has_constraints = True
    try:
        cert.extensions.get_extension_for_class(x509.BasicConstraints)
    except x509.ExtensionNotFound:
        has_constraints = False
    if self_signed and not has_constraints:
        return (
            f"{subject} has no basicConstraints (a root from Mono's makecert?): OpenSSL 3 "
            "refuses it as an issuer ('invalid CA certificate'); re-issue the root with "
            "`mutls makecert -r`"
        )
    return (
        f"{subject} is not a CA certificate (basicConstraints CA:FALSE or missing): as a trust "
        "anchor it vouches only for itself"
    )


def is_self_signed(cert: x509.Certificate) -> bool:
    """True for a root: issued to itself, and its signature checks with its own key."""
    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True
