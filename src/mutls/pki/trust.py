"""What a verifier trusts: anchors, intermediates, and what revokes (Disallowed, CRLs)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mutls.pki.certs import fingerprint


@dataclass(frozen=True)
class TrustMaterial:
    """Everything a client-certificate verifier needs, whatever it came from.

    ``anchors`` are trusted roots (the ``Trust`` store or ``--client-ca`` files);
    ``intermediates`` help build chains (the ``CA`` store) but are not trusted on their own;
    ``disallowed`` certificates are refused wherever they appear in a chain;
    ``crls`` revoke by serial number.
    """

    anchors: tuple[x509.Certificate, ...] = ()
    intermediates: tuple[x509.Certificate, ...] = ()
    disallowed: tuple[x509.Certificate, ...] = ()
    crls: tuple[x509.CertificateRevocationList, ...] = field(default=())

    @property
    def disallowed_fingerprints(self) -> frozenset[str]:
        """SHA-256 fingerprints of the Disallowed certificates."""
        return frozenset(fingerprint(c) for c in self.disallowed)

    @property
    def disallowed_keys(self) -> frozenset[str]:
        """SHA-256 of the public keys (SPKI) of the Disallowed certificates: a re-issued copy
        of a withdrawn certificate (same key) is withdrawn too."""
        return frozenset(k for k in map(spki_sha256, self.disallowed) if k is not None)


def spki_sha256(cert: x509.Certificate) -> str | None:
    """SHA-256 of the certificate's SubjectPublicKeyInfo, hex (``None`` when its key cannot
    be read)."""
    try:
        spki = cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    except Exception:  # an algorithm cryptography does not know
        return None
    return hashlib.sha256(spki).hexdigest()
