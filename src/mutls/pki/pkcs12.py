"""PKCS#12 bundles: modern (AES-256/PBKDF2, SHA-256 MAC) by default, 3DES/SHA-1 with ``legacy``."""

from __future__ import annotations

from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from mutls.errors import FileFormatError, PKIError, WrongPasswordError
from mutls.pki.keys import PrivateKey

MODERN_KDF_ROUNDS = 100_000
LEGACY_KDF_ROUNDS = 2048


def p12_bytes(
    key: PrivateKey,
    cert: x509.Certificate,
    chain: Sequence[x509.Certificate],
    password: str,
    *,
    legacy: bool = False,
    friendly_name: str | None = None,
) -> bytes:
    """Serialise leaf + key + chain.

    Modern: AES-256-CBC with PBKDF2 for key and certificates, HMAC-SHA-256 MAC; OpenSSL 3, Java
    11+, NSS and browsers read it. ``legacy``: 3DES and a SHA-1 MAC, for old Windows, macOS,
    Java 8 and Mono, which read nothing newer.
    """
    if not password:
        raise PKIError("a PKCS#12 file needs a password (an empty one protects nothing)")
    if legacy:
        algorithm = (
            serialization.PrivateFormat.PKCS12.encryption_builder()
            .kdf_rounds(LEGACY_KDF_ROUNDS)
            .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
            .hmac_hash(hashes.SHA1())  # noqa: S303 - what legacy readers can check
            .build(password.encode())
        )
    else:
        algorithm = (
            serialization.PrivateFormat.PKCS12.encryption_builder()
            .kdf_rounds(MODERN_KDF_ROUNDS)
            .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
            .hmac_hash(hashes.SHA256())
            .build(password.encode())
        )
    name = friendly_name.encode() if friendly_name else None
    return pkcs12.serialize_key_and_certificates(name, key, cert, list(chain) or None, algorithm)


def parse_p12(
    data: bytes, source: str, password: str | None
) -> tuple[PrivateKey | None, x509.Certificate | None, list[x509.Certificate]]:
    """Open a PKCS#12 bundle: (key, leaf certificate, other certificates).

    cryptography says "invalid password or PKCS12 data" for both faults; a bundle whose outer DER
    is intact is taken to have a wrong password, anything else to be corrupt.
    """
    secret = password.encode() if password else None
    try:
        key, cert, others = pkcs12.load_key_and_certificates(data, secret)
    except ValueError:
        if not _outer_der_intact(data):
            raise FileFormatError(f"{source}: not a PKCS#12 file, or corrupt/truncated") from None
        if not password:
            raise WrongPasswordError(f"{source}: a password is needed to open it") from None
        raise WrongPasswordError(f"{source}: wrong password") from None
    except Exception:
        raise FileFormatError(f"{source}: not a PKCS#12 file, or corrupt/truncated") from None
    from mutls.pki.keys import _checked

    return (_checked(key, source) if key is not None else None), cert, list(others)


def _outer_der_intact(data: bytes) -> bool:
    """True when ``data`` is one complete DER SEQUENCE (its length matches the bytes)."""
    if len(data) < 2 or data[0] != 0x30:
        return False
    first = data[1]
    if first < 0x80:
        return 2 + first == len(data)
    count = first & 0x7F
    if count == 0 or count > 4 or len(data) < 2 + count:
        return False
    length = int.from_bytes(data[2 : 2 + count], "big")
    return 2 + count + length == len(data)
