"""Certificate revocation lists: issue (full and delta), read, compare, write."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from mutls.errors import FileFormatError
from mutls.pki.certs import authority_key_identifier, distribution_points, utcnow
from mutls.pki.files import read_file, write_file
from mutls.pki.keys import PrivateKey


@dataclass(frozen=True)
class Revocation:
    """One entry of a CRL: which serial, since when, and why (``None``: no reason given, as
    RFC 5280 5.3.1 asks for ``unspecified``)."""

    serial: int
    date: dt.datetime
    reason: x509.ReasonFlags | None = None


def build_crl(
    issuer_cert: x509.Certificate,
    issuer_key: PrivateKey,
    revoked: Iterable[x509.Certificate | int | Revocation] = (),
    *,
    days: int = 30,
    number: int | None = None,
    this_update: dt.datetime | None = None,
    delta_of: int | None = None,
    freshest: Sequence[str] = (),
) -> x509.CertificateRevocationList:
    """A CRL signed by the issuer, listing ``revoked`` (certificates, serials or entries).

    ``number`` is the CRL number (default: the time, so that later CRLs have larger ones);
    ``delta_of`` makes it a delta CRL on the full CRL of that number (RFC 5280 5.2.4);
    ``freshest`` names where deltas are published (the Freshest CRL extension), which OpenSSL
    needs on a base CRL before it applies any delta to it.
    """
    now = this_update or utcnow() - dt.timedelta(minutes=5)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer_cert.subject)
        .last_update(now)
        .next_update(utcnow() + dt.timedelta(days=days))  # from now, not the backdated start
        .add_extension(x509.CRLNumber(number or int(utcnow().timestamp())), critical=False)
        .add_extension(authority_key_identifier(issuer_cert), critical=False)
    )
    if delta_of is not None:
        builder = builder.add_extension(x509.DeltaCRLIndicator(delta_of), critical=True)
    if freshest:
        builder = builder.add_extension(
            x509.FreshestCRL(distribution_points(freshest)), critical=False
        )
    for item in revoked:
        entry = (
            item
            if isinstance(item, Revocation)
            else Revocation(item if isinstance(item, int) else item.serial_number, now)
        )
        revoked_builder = (
            x509.RevokedCertificateBuilder().serial_number(entry.serial).revocation_date(entry.date)
        )
        if entry.reason is not None and entry.reason is not x509.ReasonFlags.unspecified:
            revoked_builder = revoked_builder.add_extension(
                x509.CRLReason(entry.reason), critical=False
            )
        builder = builder.add_revoked_certificate(revoked_builder.build())
    algorithm = None if isinstance(issuer_key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(issuer_key, algorithm)


def crl_number(crl: x509.CertificateRevocationList) -> int | None:
    """The CRL number, ``None`` when the CRL has none (Mono's and other old ones)."""
    try:
        return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        return None


def delta_base(crl: x509.CertificateRevocationList) -> int | None:
    """The base CRL number of a delta CRL, ``None`` for a full CRL."""
    try:
        return crl.extensions.get_extension_for_class(x509.DeltaCRLIndicator).value.crl_number
    except x509.ExtensionNotFound:
        return None


def names_freshest_crl(crl: x509.CertificateRevocationList) -> bool:
    """Whether the CRL says where its deltas are (Freshest CRL, RFC 5280 5.2.6)."""
    try:
        crl.extensions.get_extension_for_class(x509.FreshestCRL)
    except x509.ExtensionNotFound:
        return False
    return True


def ignored_deltas(
    crls: Sequence[x509.CertificateRevocationList],
) -> list[x509.CertificateRevocationList]:
    """The delta CRLs OpenSSL would apply only to certificates naming a Freshest CRL: no full
    CRL of their issuer names one (OpenSSL applies a delta with a base CRL or a certificate
    that does; AD CS base CRLs do)."""
    announced = {c.issuer for c in crls if delta_base(c) is None and names_freshest_crl(c)}
    return [c for c in crls if delta_base(c) is not None and c.issuer not in announced]


def crl_label(crl: x509.CertificateRevocationList) -> str:
    """How messages name a CRL: ``full CRL #3`` or ``delta CRL #4 (base #3)``."""
    number = crl_number(crl)
    shown = f" #{number}" if number is not None else ""
    base = delta_base(crl)
    if base is not None:
        return f"delta CRL{shown} (base #{base})"
    return f"full CRL{shown}"


def parse_crls(data: bytes, source: str) -> list[x509.CertificateRevocationList]:
    """Every CRL in PEM (one or more) or DER ``data``."""
    try:
        if b"-----BEGIN" in data:
            blocks = data.split(b"-----END X509 CRL-----")
            crls = [
                x509.load_pem_x509_crl(block + b"-----END X509 CRL-----\n")
                for block in blocks
                if b"-----BEGIN X509 CRL-----" in block
            ]
            if not crls:
                raise ValueError("no CRL")
            return [_fully_parsed(crl) for crl in crls]
        return [_fully_parsed(x509.load_der_x509_crl(data))]
    except Exception:
        raise FileFormatError(f"{source}: not a CRL, or corrupt (expected PEM or DER)") from None


def _fully_parsed(crl: x509.CertificateRevocationList) -> x509.CertificateRevocationList:
    """``crl`` once its lazily parsed fields have parsed (see ``certs.fully_parsed``)."""
    _ = (crl.issuer, crl.extensions, crl.last_update_utc, crl.next_update_utc)
    for revoked in crl:
        _ = (revoked.serial_number, revoked.revocation_date_utc, revoked.extensions)
    return crl


def load_crls(path: str | os.PathLike[str]) -> list[x509.CertificateRevocationList]:
    """Read every CRL in a file."""
    return parse_crls(read_file(path, "CRL"), str(path))


def write_crl(
    path: str | os.PathLike[str], crl: x509.CertificateRevocationList, *, overwrite: bool = False
) -> None:
    """Write a CRL: DER for ``.crl``/``.der``, PEM otherwise."""
    der = str(path).lower().endswith((".der", ".crl"))
    encoding = serialization.Encoding.DER if der else serialization.Encoding.PEM
    write_file(path, crl.public_bytes(encoding), overwrite=overwrite)
