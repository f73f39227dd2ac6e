"""Certificates: build them with modern, standard extensions; read and write PEM and DER."""

from __future__ import annotations

import datetime as dt
import os
import secrets
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

from mutls.errors import FileFormatError, PKIError
from mutls.pki.files import PUBLIC, read_file, write_file
from mutls.pki.keys import PrivateKey

SignatureHash = hashes.SHA256 | hashes.SHA384 | hashes.SHA512
HASHES: dict[str, type[SignatureHash]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
WEAK_HASHES = {"sha1", "md5"}
DER_SUFFIXES = {".cer", ".der"}


def utcnow() -> dt.datetime:
    """The current time, UTC, to the second (certificates carry no fractions)."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def random_serial() -> int:
    """A random positive 128-bit serial number (RFC 5280 allows up to 20 octets)."""
    return secrets.randbits(128) or 1


def signature_hash(name: str) -> SignatureHash:
    """The hash for ``-a``; SHA-1 and MD5 are refused, never silently replaced."""
    lowered = name.lower().replace("-", "")
    if lowered in WEAK_HASHES:
        raise PKIError(
            f"-a {name}: {name.upper()} signatures are broken and rejected by OpenSSL 3 and "
            "browsers; use sha256 (default), sha384 or sha512"
        )
    try:
        return HASHES[lowered]()
    except KeyError:
        raise PKIError(f"-a {name}: unknown algorithm; use sha256, sha384 or sha512") from None


def build_certificate(
    *,
    subject: x509.Name,
    public_key: CertificatePublicKeyTypes,
    signing_key: PrivateKey,
    issuer_cert: x509.Certificate | None = None,
    issuer_name: x509.Name | None = None,
    is_ca: bool = False,
    path_length: int | None = None,
    eku: Sequence[ObjectIdentifier] | None = None,
    san: Sequence[x509.GeneralName] = (),
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    days: int = 825,
    serial: int | None = None,
    hash_name: str = "sha256",
    crl_urls: Sequence[str] = (),
) -> x509.Certificate:
    """Sign one certificate.

    ``issuer_cert`` ``None`` means self-signed (``signing_key`` must be the subject's key).
    Extensions are those strict verifiers expect: basicConstraints (critical), keyUsage (critical),
    EKU for leaves, SAN, subject and authority key identifiers; ``crl_urls`` adds a CRL
    Distribution Point, where verifiers that fetch CRLs find the issuer's.
    """
    start = not_before or utcnow() - dt.timedelta(minutes=5)
    end = not_after or start + dt.timedelta(days=days)
    if end <= start:
        raise PKIError("the certificate would end before it starts (check -b/-e/-m/--days)")
    if serial is not None and serial <= 0:
        raise PKIError(f"serial {serial}: must be a positive number")
    issuer = issuer_cert.subject if issuer_cert is not None else (issuer_name or subject)
    pub = public_key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(pub)
        .serial_number(serial if serial is not None else random_serial())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=path_length), critical=True)
        .add_extension(_key_usage(pub, is_ca), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False)
    )
    aki = (
        authority_key_identifier(issuer_cert)
        if issuer_cert is not None
        else x509.AuthorityKeyIdentifier.from_issuer_public_key(signing_key.public_key())
    )
    builder = builder.add_extension(aki, critical=False)
    if crl_urls:
        builder = builder.add_extension(
            x509.CRLDistributionPoints(distribution_points(crl_urls)), critical=False
        )
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
    if san:
        # Critical only when the subject is empty (RFC 5280 4.2.1.6).
        builder = builder.add_extension(
            x509.SubjectAlternativeName(list(san)), critical=len(subject) == 0
        )
    algorithm = (
        None if isinstance(signing_key, ed25519.Ed25519PrivateKey) else signature_hash(hash_name)
    )
    return builder.sign(signing_key, algorithm)


def distribution_points(urls: Sequence[str]) -> list[x509.DistributionPoint]:
    """One distribution point per URL (a CRL's, or where delta CRLs are published)."""
    return [
        x509.DistributionPoint([x509.UniformResourceIdentifier(u)], None, None, None) for u in urls
    ]


def authority_key_identifier(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    """The AKI of what ``issuer`` signs (certificates and CRLs): its SKI, else its key's hash."""
    try:
        ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        # The key's hash, as from_issuer_public_key computes it (RFC 5280 4.2.1.2, method 1),
        # from the certificate's key whatever its type (that one takes only signing key types).
        ski = x509.SubjectKeyIdentifier.from_public_key(issuer.public_key())
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _key_usage(public_key: CertificatePublicKeyTypes, is_ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=not is_ca and isinstance(public_key, rsa.RSAPublicKey),
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=is_ca,
        crl_sign=is_ca,
        encipher_only=False,
        decipher_only=False,
    )


def is_ca_certificate(cert: x509.Certificate) -> bool:
    """True when basicConstraints says CA:TRUE."""
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def extended_key_usage(cert: x509.Certificate) -> list[ObjectIdentifier] | None:
    """The EKU OIDs, or ``None`` when the certificate has no EKU extension (any purpose)."""
    try:
        return list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        return None


def allows_client_auth(cert: x509.Certificate) -> bool:
    """True when the EKU is absent or includes clientAuth (or anyExtendedKeyUsage)."""
    usages = extended_key_usage(cert)
    return usages is None or bool(
        {ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE} & set(usages)
    )


def fingerprint(cert: x509.Certificate, algorithm: str = "sha256") -> str:
    """Lower-case hex fingerprint of the DER encoding."""
    return cert.fingerprint(hashes.SHA1() if algorithm == "sha1" else hashes.SHA256()).hex()  # noqa: S303


def parse_certificates(data: bytes, source: str) -> list[x509.Certificate]:
    """Every certificate in PEM (one or a bundle) or DER ``data``."""
    try:
        if b"-----BEGIN" in data:
            if b"-----BEGIN CERTIFICATE-----" not in data:
                raise FileFormatError(f"{source}: holds no certificate (PEM without CERTIFICATE)")
            return [fully_parsed(c) for c in x509.load_pem_x509_certificates(data)]
        return [fully_parsed(x509.load_der_x509_certificate(data))]
    except FileFormatError:
        raise
    except Exception:  # ValueError, or the Rust ASN.1 parser's own errors
        raise FileFormatError(
            f"{source}: not a certificate, or corrupt (expected PEM or DER X.509)"
        ) from None


def fully_parsed(cert: x509.Certificate) -> x509.Certificate:
    """``cert``, once every field mutls reads has parsed; raises ``ValueError`` otherwise.

    cryptography checks only the outer DER when loading and parses names, extensions and the
    key on first use, so a corrupt field would otherwise surface as a traceback far from the
    file that held it.
    """
    _ = (cert.subject, cert.issuer, cert.extensions, cert.public_key())
    _ = (cert.not_valid_before_utc, cert.not_valid_after_utc, cert.signature_algorithm_oid)
    return cert


def load_certificates(path: str | os.PathLike[str]) -> list[x509.Certificate]:
    """Read every certificate in a PEM bundle or a DER file (``.cer`` as Mono writes)."""
    return parse_certificates(read_file(path, "certificate"), str(path))


def load_certificate(path: str | os.PathLike[str]) -> x509.Certificate:
    """Read the first certificate of a file."""
    return load_certificates(path)[0]


def certificate_bytes(cert: x509.Certificate, path: str | os.PathLike[str] = "x.pem") -> bytes:
    """DER for ``.cer``/``.der`` (as Mono writes), PEM for anything else."""
    der = Path(path).suffix.lower() in DER_SUFFIXES
    return cert.public_bytes(serialization.Encoding.DER if der else serialization.Encoding.PEM)


def write_certificate(
    path: str | os.PathLike[str], cert: x509.Certificate, *, overwrite: bool = False
) -> None:
    """Write ``cert``, in the format its file name implies."""
    write_file(path, certificate_bytes(cert, path), mode=PUBLIC, overwrite=overwrite)


def pem(certs: Sequence[x509.Certificate]) -> bytes:
    """Concatenated PEM of ``certs``."""
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)
