"""Mono's own store layout, read (and written when asked) so article-era trust carries over.

What Mono does (Mono.Security ``X509Store``, ``X509StoreManager``, ``X509Stores``):

- user stores under ``ApplicationData/.mono/certs/<Store>/`` (``~/.config/.mono/certs``),
  machine stores under ``CommonApplicationData/.mono/certs`` (``/usr/share/.mono/certs``);
- one DER file per certificate, ``*.cer``; CRLs as DER ``*.crl`` in the same directory;
- the file name is ``ski-<SubjectKeyIdentifier>.cer`` when the certificate has that extension
  (later Mono appends the serial number, little-endian, to avoid collisions), otherwise
  ``tbp-<hash>.cer``; hex is upper-case;
- that "thumbprint" (``X509Certificate.Hash``, also shown as "Unique Hash" by ``certmgr -list``
  and taken by ``certmgr -del``) is *not* the usual SHA-1 fingerprint: it is the hash of the
  TBSCertificate with the signature's own hash algorithm (SHA-512 for a ``sha512WithRSA``
  certificate from Mono 6.8's makecert); the algorithm comes from ``PKCS1.HashNameFromOid``,
  which knows only RSA PKCS#1 v1.5 and DSA-SHA1 signatures: for ECDSA, RSA-PSS or Ed25519
  ``Hash`` is null, ``certmgr -list`` prints an empty "Unique Hash" and ``certmgr -del`` can
  name no such certificate (seen with Mono 6.8.0.105: the sha512WithRSA root removed by its
  hash, an ecdsa-with-SHA256 root listed with an empty one and removed by nothing);
- unreadable files are skipped silently by Mono; here they are reported;
- private keys live apart, in Mono's CSP key-pair files, which this layout does not hold.
"""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from mutls.store.directory import CertificateStore
from mutls.store.locations import StoreError

#: the signature algorithms whose hash Mono's ``PKCS1.HashNameFromOid`` names (RSA PKCS#1 v1.5
#: with MD2 to SHA-512 and RIPEMD-160, the old SHA-1/RSA OID, DSA with SHA-1).
MONO_HASHED_SIGNATURES = frozenset(
    {
        "1.2.840.113549.1.1.2",
        "1.2.840.113549.1.1.3",
        "1.2.840.113549.1.1.4",
        "1.2.840.113549.1.1.5",
        "1.2.840.113549.1.1.11",
        "1.2.840.113549.1.1.12",
        "1.2.840.113549.1.1.13",
        "1.3.14.3.2.29",
        "1.2.840.10040.4.3",
        "1.3.36.3.3.1.2",
    }
)


def mono_hash(cert: x509.Certificate | x509.CertificateRevocationList) -> str | None:
    """Mono's ``Hash`` ("Unique Hash", what Mono's ``certmgr -del`` takes), upper-case hex, or
    ``None`` where Mono has none (ECDSA, RSA-PSS, Ed25519 signatures: see the module docstring).
    """
    if cert.signature_algorithm_oid.dotted_string not in MONO_HASHED_SIGNATURES:
        return None
    return _tbs_digest(cert)


def _tbs_digest(cert: x509.Certificate | x509.CertificateRevocationList) -> str:
    """The to-be-signed part hashed with the signature's hash (SHA-256 when it has none)."""
    algorithm = cert.signature_hash_algorithm or hashes.SHA256()
    tbs = (
        cert.tbs_certificate_bytes
        if isinstance(cert, x509.Certificate)
        else cert.tbs_certlist_bytes
    )
    digest = hashes.Hash(type(algorithm)())
    digest.update(tbs)
    return digest.finalize().hex().upper()


def _serial_little_endian(serial: int) -> bytes:
    # Mono keeps the DER INTEGER's content octets (sign byte included), reversed.
    length = (serial.bit_length() + 8) // 8
    return serial.to_bytes(length, "big", signed=True)[::-1]


def mono_file_name(cert: x509.Certificate) -> str:
    """The name later Mono gives ``cert`` in a store: ``ski-…`` or ``tbp-…`` + ``.cer``."""
    try:
        ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return f"tbp-{_tbs_digest(cert)}.cer"
    return f"ski-{(ski + _serial_little_endian(cert.serial_number)).hex().upper()}.cer"


class MonoCertificateStore(CertificateStore):
    """A store in Mono's layout (``--mono``)."""

    layout = "mono"

    def certificate_path(self, cert: x509.Certificate) -> Path:
        """Where Mono would put ``cert``; an existing file for it under another name wins."""
        for entry in self.certificates():
            if entry.certificate == cert:
                return entry.path
        return self.directory / mono_file_name(cert)

    def key_path(self, cert: x509.Certificate) -> Path:
        """Mono keeps keys elsewhere; refuse rather than write a file Mono would never read."""
        raise StoreError(
            "Mono's store keeps no private keys (Mono uses its own key-pair files); "
            "import the P12 into the mutls store (without --mono)"
        )

    def existing_key_path(self, cert: x509.Certificate) -> Path | None:
        """None: Mono's key pairs are not read here."""
        return None

    def crl_path(self, crl: x509.CertificateRevocationList) -> Path:
        """``tbp-<hash>.crl`` beside the certificates, as Mono names a CRL without an SKI."""
        return self.directory / f"tbp-{_tbs_digest(crl)}.crl"

    def certificate_files(self) -> list[Path]:
        """``*.cer`` files, as Mono reads."""
        return self._files(self.directory, "*.cer")

    def crl_files(self) -> list[Path]:
        """``*.crl`` files beside the certificates."""
        return self._files(self.directory, "*.crl")

    def encode_certificate(self, cert: x509.Certificate) -> bytes:
        """DER, as Mono writes."""
        return cert.public_bytes(serialization.Encoding.DER)

    def encode_crl(self, crl: x509.CertificateRevocationList) -> bytes:
        """DER, as Mono writes."""
        return crl.public_bytes(serialization.Encoding.DER)

    def aliases(self, cert: x509.Certificate) -> tuple[str, ...]:
        """Mono's unique hash, so ``-del`` takes what Mono's ``certmgr -list`` printed."""
        digest = mono_hash(cert)
        return (digest.lower(),) if digest else ()

    def crl_aliases(self, crl: x509.CertificateRevocationList) -> tuple[str, ...]:
        """Mono's unique hash of the CRL."""
        digest = mono_hash(crl)
        return (digest.lower(),) if digest else ()
