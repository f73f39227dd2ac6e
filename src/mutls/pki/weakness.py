"""What strict verifiers refuse: OpenSSL 3, browsers and Java, one sentence per reason.

The one place that judges keys and certificates, so that ``mutls inspect`` (on any file) and
``mutls makecert`` (on the issuer it is given) say the same thing.
"""

from __future__ import annotations

from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, SignatureAlgorithmOID

from mutls.pki.certs import extended_key_usage
from mutls.pki.keys import MIN_RSA_BITS

_SIGNATURES: dict[x509.ObjectIdentifier, str] = {
    SignatureAlgorithmOID.RSA_WITH_MD5: "md5WithRSAEncryption",
    SignatureAlgorithmOID.RSA_WITH_SHA1: "sha1WithRSAEncryption",
    SignatureAlgorithmOID.RSA_WITH_SHA224: "sha224WithRSAEncryption",
    SignatureAlgorithmOID.RSA_WITH_SHA256: "sha256WithRSAEncryption",
    SignatureAlgorithmOID.RSA_WITH_SHA384: "sha384WithRSAEncryption",
    SignatureAlgorithmOID.RSA_WITH_SHA512: "sha512WithRSAEncryption",
    SignatureAlgorithmOID.RSASSA_PSS: "rsassaPss",
    SignatureAlgorithmOID.ECDSA_WITH_SHA1: "ecdsa-with-SHA1",
    SignatureAlgorithmOID.ECDSA_WITH_SHA224: "ecdsa-with-SHA224",
    SignatureAlgorithmOID.ECDSA_WITH_SHA256: "ecdsa-with-SHA256",
    SignatureAlgorithmOID.ECDSA_WITH_SHA384: "ecdsa-with-SHA384",
    SignatureAlgorithmOID.ECDSA_WITH_SHA512: "ecdsa-with-SHA512",
    SignatureAlgorithmOID.ED25519: "ED25519",
    SignatureAlgorithmOID.ED448: "ED448",
    SignatureAlgorithmOID.DSA_WITH_SHA1: "dsa_with_SHA1",
    SignatureAlgorithmOID.DSA_WITH_SHA256: "dsa_with_SHA256",
}
_WEAK_SIGNATURES = {
    SignatureAlgorithmOID.RSA_WITH_MD5,
    SignatureAlgorithmOID.RSA_WITH_SHA1,
    SignatureAlgorithmOID.ECDSA_WITH_SHA1,
    SignatureAlgorithmOID.DSA_WITH_SHA1,
}


def signature_algorithm_name(cert: x509.Certificate | x509.CertificateRevocationList) -> str:
    """OpenSSL's name for the signature algorithm (``sha256WithRSAEncryption``, …)."""
    oid = cert.signature_algorithm_oid
    return _SIGNATURES.get(oid, oid.dotted_string)


def extension_value(cert: x509.Certificate, kind: type[Any]) -> Any:
    """The value of ``cert``'s extension of class ``kind``, or ``None`` when it has none."""
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def is_self_signed(cert: x509.Certificate) -> bool:
    """True when the certificate names itself as its issuer and its own key signed it."""
    return cert.subject == cert.issuer and issued_by(cert, cert)


def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """True when ``issuer``'s key signed ``cert`` (names match and the signature checks)."""
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except Exception:  # InvalidSignature, ValueError, TypeError: not this issuer
        return False
    return True


def key_weaknesses(key: PrivateKeyTypes | PublicKeyTypes) -> list[str]:
    """Why verifiers refuse ``key`` (public or private): an RSA key under 2048 bits."""
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        return [
            f"RSA {key.key_size} key: OpenSSL 3, browsers and Java reject keys under "
            f'{MIN_RSA_BITS} bits ("key too small")'
        ]
    return []


def weaknesses(cert: x509.Certificate, *, issues_others: bool = False) -> list[str]:
    """What about ``cert`` OpenSSL 3, browsers or Java refuse, one sentence each.

    ``issues_others``: the certificate is used as an issuer (so it must be marked as a CA).
    """
    found = key_weaknesses(cert.public_key())
    if cert.signature_algorithm_oid in _WEAK_SIGNATURES:
        found.append(
            f"signed with {signature_algorithm_name(cert)}: SHA-1 and MD5 signatures are "
            "rejected by OpenSSL 3 and browsers"
        )
    constraints = extension_value(cert, x509.BasicConstraints)
    if constraints is None and (issues_others or is_self_signed(cert)):
        found.append(
            "used as a CA but has no basicConstraints: OpenSSL 3 refuses it as an issuer "
            '("invalid CA certificate")'
        )
    usage = extension_value(cert, x509.KeyUsage)
    if constraints is not None and constraints.ca and usage is not None and not usage.key_cert_sign:
        found.append("a CA whose keyUsage lacks keyCertSign: verifiers refuse what it issues")
    ekus = extended_key_usage(cert) or []
    if (
        ExtendedKeyUsageOID.SERVER_AUTH in ekus
        and extension_value(cert, x509.SubjectAlternativeName) is None
    ):
        found.append(
            "serverAuth certificate without subjectAltName: browsers and curl ignore the CN "
            "and accept it for no host name"
        )
    if cert.version is x509.Version.v1:
        found.append("X.509 v1 certificate: it carries no extensions")
    return found
