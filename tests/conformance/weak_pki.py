"""Client certificates that must never be valid, beyond helpers.CLIENT_CASES.

A CA certificate used as a client certificate, an intermediate-issued certificate sent without
its intermediate, an RSA-1024 key, and a SHA-1 signature. ``cryptography`` refuses to sign with
SHA-1 at all, so the SHA-1 certificate is made by re-signing a SHA-256 one: the two RSA
signature OIDs have the same length, so the DER keeps its shape (see :func:`resign_sha1`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from mutls import pki

from helpers import PKIFiles

SHA256_WITH_RSA = bytes.fromhex("06092a864886f70d01010b")
SHA1_WITH_RSA = bytes.fromhex("06092a864886f70d010105")

#: the extra cases and the error each must be reported with (never valid).
WEAK_CASES: dict[str, str] = {
    "ca-as-client": "unsuitable certificate purpose",
    "missing-intermediate": "unable to get local issuer certificate",
    "rsa-1024": "EE certificate key too weak",
    "sha1-signed": "CA signature digest algorithm too weak",
}


@dataclass
class WeakPKI:
    """The identities of :data:`WEAK_CASES`, and the RSA root that signed the SHA-1 one."""

    identities: dict[str, pki.Identity]
    rsa_ca: pki.CertificateAuthority


def _leaf(subject: str, key: rsa.RSAPrivateKey, ca: pki.CertificateAuthority) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name.from_rfc4514_string(subject))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([pki.CLIENT_AUTH]), critical=False)
    )
    return builder.sign(ca.key, hashes.SHA256())  # type: ignore[arg-type]


def resign_sha1(cert: x509.Certificate, ca_key: rsa.RSAPrivateKey) -> x509.Certificate:
    """The same certificate, signed sha1WithRSAEncryption by ``ca_key`` (same key size)."""
    der = cert.public_bytes(serialization.Encoding.DER)
    assert der.count(SHA256_WITH_RSA) == 2, "expected the OID in the TBS and the outer algorithm"
    tbs = cert.tbs_certificate_bytes.replace(SHA256_WITH_RSA, SHA1_WITH_RSA)
    signature = ca_key.sign(tbs, padding.PKCS1v15(), hashes.SHA1())  # noqa: S303 - the point of the case
    assert len(signature) == len(cert.signature)
    head = der[: der.index(cert.tbs_certificate_bytes)]
    tail = der[der.index(cert.tbs_certificate_bytes) + len(tbs) : -len(signature)]
    sha1 = head + tbs + tail.replace(SHA256_WITH_RSA, SHA1_WITH_RSA) + signature
    return x509.load_der_x509_certificate(sha1)


def make_weak_pki(test_pki: PKIFiles) -> WeakPKI:
    """Build the :data:`WEAK_CASES` identities on ``test_pki``'s CAs (plus one RSA root)."""
    rsa_ca = pki.CertificateAuthority.create("CN=RSA Test CA", key=pki.KeySpec.parse("rsa"))
    weak_key = rsa.generate_private_key(65537, 1024)  # noqa: S505 - ditto
    sha1_key = rsa.generate_private_key(65537, 2048)
    castor = test_pki.identities["via-intermediate"]
    ids = {
        "ca-as-client": pki.Identity(test_pki.intermediate.certificate, test_pki.intermediate.key),
        "missing-intermediate": pki.Identity(castor.certificate, castor.key),
        "rsa-1024": pki.Identity(_leaf("CN=weakling", weak_key, test_pki.ca), weak_key),
        "sha1-signed": pki.Identity(
            resign_sha1(_leaf("CN=oldsig", sha1_key, rsa_ca), rsa_ca.key),  # type: ignore[arg-type]
            sha1_key,
        ),
    }
    return WeakPKI(ids, rsa_ca)


def conformance_trust(test_pki: PKIFiles, weak: WeakPKI) -> pki.TrustMaterial:
    """The root and the RSA root as anchors, the CRL revoking ``revoked``, ``disallowed``."""
    return pki.TrustMaterial(
        anchors=(test_pki.ca.certificate, weak.rsa_ca.certificate),
        disallowed=(test_pki.identities["disallowed"].certificate,),
        crls=tuple(pki.load_crls(test_pki.crl_path)),
    )


class CountingApp:
    """An ASGI app that records the TLS extension of every request it is called for."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        tls = scope["extensions"].get("tls") or {}
        self.calls.append(tls)
        error = tls.get("client_cert_error")
        body = f"error={error}\n".encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})
