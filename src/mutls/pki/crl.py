"""Certificate revocation lists: issue, read, check."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from mutls.errors import FileFormatError
from mutls.pki.certs import utcnow
from mutls.pki.files import read_file, write_file
from mutls.pki.keys import PrivateKey


def build_crl(
    issuer_cert: x509.Certificate,
    issuer_key: PrivateKey,
    revoked: Iterable[x509.Certificate | int] = (),
    *,
    days: int = 30,
) -> x509.CertificateRevocationList:
    """A CRL signed by the issuer, listing ``revoked`` (certificates or serial numbers)."""
    now = utcnow()
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer_cert.subject)
        .last_update(now - dt.timedelta(minutes=5))
        .next_update(now + dt.timedelta(days=days))
        .add_extension(x509.CRLNumber(int(now.timestamp())), critical=False)
    )
    for item in revoked:
        serial = item if isinstance(item, int) else item.serial_number
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(now - dt.timedelta(minutes=5))
            .build()
        )
    algorithm = None if isinstance(issuer_key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(issuer_key, algorithm)


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
