"""PKCS#12 bundles: AES-256/PBKDF2 with a SHA-256 MAC, or 3DES with a SHA-1 MAC (``legacy``).

Which one is whose default: ``pkcs12 -export`` and the Python API write AES-256 as OpenSSL 3
does; ``makecert`` writes 3DES, the one form every reader takes (Mono 6.8 takes no other).
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from mutls.errors import FileFormatError, PKIError, WrongPasswordError
from mutls.pki import der
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
    11+, NSS and browsers read it. ``legacy``: 3DES and a SHA-1 MAC, which those read too and
    Mono 6.8, Windows before Server 2019 and older macOS read alone.
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
        if not der.is_sequence(data):
            raise FileFormatError(f"{source}: not a PKCS#12 file, or corrupt/truncated") from None
        if not password:
            raise WrongPasswordError(f"{source}: a password is needed to open it") from None
        raise WrongPasswordError(f"{source}: wrong password") from None
    except Exception:
        raise FileFormatError(f"{source}: not a PKCS#12 file, or corrupt/truncated") from None
    from mutls.pki.keys import _checked

    return (_checked(key, source) if key is not None else None), cert, list(others)


# -- what protects a PKCS#12 file ------------------------------------------------------------------
# cryptography does not say how a bundle it opened was encrypted, yet that is what decides whether
# old Windows, macOS, Java 8 or Mono can read it. A tiny DER walk over the unencrypted structure
# finds the algorithm identifiers: the one after encryptedData protects the certificates, the one
# after pkcs8ShroudedKeyBag the key, and macData closes the file.

_ENCRYPTED_DATA = "1.2.840.113549.1.7.6"
_SHROUDED_KEY_BAG = "1.2.840.113549.1.12.10.1.2"
_CIPHERS = {
    "1.2.840.113549.1.12.1.3": "3DES (pbeWithSHA1And3-KeyTripleDES-CBC)",
    "1.2.840.113549.1.12.1.6": "RC2-40 (pbeWithSHA1And40BitRC2-CBC)",
    "1.2.840.113549.1.12.1.5": "RC2-128 (pbeWithSHA1And128BitRC2-CBC)",
    "2.16.840.1.101.3.4.1.2": "AES-128-CBC (PBES2)",
    "2.16.840.1.101.3.4.1.22": "AES-192-CBC (PBES2)",
    "2.16.840.1.101.3.4.1.42": "AES-256-CBC (PBES2)",
}
_DIGESTS = {
    "1.3.14.3.2.26": "SHA-1",
    "2.16.840.1.101.3.4.2.1": "SHA-256",
    "2.16.840.1.101.3.4.2.2": "SHA-384",
    "2.16.840.1.101.3.4.2.3": "SHA-512",
}


def _walk(data: bytes, start: int, end: int, depth: int, out: list[tuple[int, bytes]]) -> None:
    pos = start
    while pos < end:
        tag, body, stop = der.element(data, pos)
        if tag == der.OID:
            out.append((tag, data[body:stop]))
        elif tag == der.INTEGER and stop - body <= 4:
            out.append((tag, data[body:stop]))
        elif depth < 24 and (
            tag & 0x20 or (tag == der.OCTET_STRING and data[body : body + 1] == b"\x30")
        ):
            try:
                _walk(data, body, stop, depth + 1, out)
            except (ValueError, IndexError):
                pass  # an OCTET STRING that only looked like DER
        pos = stop


def describe_p12_algorithms(data: bytes) -> list[str]:
    """How a PKCS#12 file is protected: ``["certificates: 3DES (…)", "key: …", "MAC: SHA-1, …"]``.

    Returns an empty list for a file that is not PKCS#12 DER.
    """
    try:
        elements: list[tuple[int, bytes]] = []
        _tag, body, stop = der.element(data, 0)
        _walk(data, body, stop, 0, elements)
    except (ValueError, IndexError):
        return []
    facts: dict[str, str] = {}
    target: str | None = None
    for i, (tag, raw) in enumerate(elements):
        if tag != der.OID:
            continue
        oid = der.oid_text(raw)
        if oid == _ENCRYPTED_DATA:
            target = "certificates"
        elif oid == _SHROUDED_KEY_BAG:
            target = "key"
        elif oid in _CIPHERS and target is not None and target not in facts:
            facts[target] = _CIPHERS[oid]
            target = None
        elif oid in _DIGESTS:
            # the last digest in the file is macData's; an INTEGER after it is the iteration count
            rounds = [r for t, r in elements[i + 1 :] if t == der.INTEGER]
            count = f", {int.from_bytes(rounds[-1], 'big')} iterations" if rounds else ""
            facts["MAC"] = _DIGESTS[oid] + count
    facts.setdefault("certificates", "not encrypted")
    return [f"{what}: {how}" for what, how in facts.items()]
