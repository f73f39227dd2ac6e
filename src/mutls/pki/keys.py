"""Private keys: generate, read (PEM, DER, Mono's PVK), write (PEM PKCS#8, mode 0600)."""

from __future__ import annotations

import enum
import os
import struct
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

from mutls.errors import FileFormatError, PKIError, WrongPasswordError
from mutls.pki.files import PRIVATE, read_file, write_file

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey

MIN_RSA_BITS = 2048
MAX_RSA_BITS = 8192


class KeyType(enum.Enum):
    """The key algorithms mutls makes."""

    EC_P256 = "ec"
    EC_P384 = "ec-p384"
    RSA = "rsa"
    ED25519 = "ed25519"


@dataclass(frozen=True)
class KeySpec:
    """What key to generate: ECDSA P-256 by default, P-384, RSA (2048 to 8192 bits) or Ed25519."""

    type: KeyType = KeyType.EC_P256
    rsa_bits: int = 2048

    @classmethod
    def parse(cls, text: str, bits: int | None = None) -> KeySpec:
        """``ec``/``p256``, ``p384``, ``rsa``/``rsa2048``/``rsa:3072``, ``ed25519``."""
        word = text.strip().lower().replace("-", "").replace(":", "").replace("_", "")
        if word in {"ec", "ecdsa", "p256", "ecp256", "prime256v1", "secp256r1"}:
            return cls(KeyType.EC_P256)
        if word in {"p384", "ecp384", "secp384r1"}:
            return cls(KeyType.EC_P384)
        if word in {"ed25519", "eddsa"}:
            return cls(KeyType.ED25519)
        if word.startswith("rsa"):
            digits = word[3:]
            size = int(digits) if digits.isdigit() else (bits or 2048)
            if size < MIN_RSA_BITS or size > MAX_RSA_BITS:
                raise PKIError(
                    f"RSA-{size} refused: use {MIN_RSA_BITS} to {MAX_RSA_BITS} bits "
                    "(OpenSSL 3 and browsers reject smaller keys)"
                )
            return cls(KeyType.RSA, size)
        raise PKIError(f"unknown key type {text!r}: use ec, p384, rsa, rsa3072, rsa4096 or ed25519")


def generate_private_key(spec: KeySpec | None = None) -> PrivateKey:
    """A fresh private key of ``spec`` (ECDSA P-256 when not given)."""
    spec = spec or KeySpec()
    if spec.type is KeyType.EC_P256:
        return ec.generate_private_key(ec.SECP256R1())
    if spec.type is KeyType.EC_P384:
        return ec.generate_private_key(ec.SECP384R1())
    if spec.type is KeyType.ED25519:
        return ed25519.Ed25519PrivateKey.generate()
    return rsa.generate_private_key(public_exponent=65537, key_size=spec.rsa_bits)


def describe_key(key: PrivateKeyTypes | PublicKeyTypes) -> str:
    """``EC P-256``, ``RSA 2048``, ``Ed25519`` for a private or public key."""
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return f"RSA {key.key_size}"
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        names = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
        return f"EC {names.get(key.curve.name, key.curve.name)}"
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return "Ed25519"
    return type(key).__name__


def key_matches_certificate(key: PrivateKey, cert: x509.Certificate) -> bool:
    """True when ``cert`` holds the public half of ``key``."""
    fmt = serialization.PublicFormat.SubjectPublicKeyInfo
    enc = serialization.Encoding.DER
    return bool(key.public_key().public_bytes(enc, fmt) == cert.public_key().public_bytes(enc, fmt))


def private_key_pem(key: PrivateKey, password: str | None = None) -> bytes:
    """PEM PKCS#8, encrypted (AES-256, best available) when a password is given."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password.encode())
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def write_private_key(
    path: str | os.PathLike[str],
    key: PrivateKey,
    *,
    password: str | None = None,
    overwrite: bool = False,
) -> None:
    """Write ``key`` as PEM PKCS#8 with mode 0600."""
    write_file(path, private_key_pem(key, password), mode=PRIVATE, overwrite=overwrite)


def load_private_key_bytes(data: bytes, source: str, password: str | None = None) -> PrivateKey:
    """Read a PEM or DER key (PKCS#8, PKCS#1, SEC1) or a Mono PVK from bytes."""
    if is_pvk(data):
        return load_pvk(data, source)
    secret = password.encode() if password else None
    loader = (
        serialization.load_pem_private_key
        if b"-----BEGIN" in data
        else serialization.load_der_private_key
    )
    try:
        key = loader(data, password=secret)
    except TypeError as exc:
        message = str(exc)
        if "encrypted" in message and secret is None:
            raise WrongPasswordError(
                f"{source}: the key is encrypted: a password is needed"
            ) from None
        raise WrongPasswordError(f"{source}: {message}") from None
    except ValueError as exc:
        if secret is not None and b"ENCRYPTED" in data:
            raise WrongPasswordError(f"{source}: wrong password for the private key") from None
        if b"-----BEGIN" in data and b"PRIVATE KEY-----" not in data:
            raise FileFormatError(f"{source}: holds no private key") from exc
        raise FileFormatError(f"{source}: not a private key (PEM, DER or PVK expected)") from exc
    except Exception as exc:  # the Rust bindings raise their own errors on odd DER
        raise FileFormatError(f"{source}: not a private key (PEM, DER or PVK expected)") from exc
    return _checked(key, source)


def load_private_key(path: str | os.PathLike[str], password: str | None = None) -> PrivateKey:
    """Read a private key file: PEM or DER (PKCS#8, PKCS#1, SEC1), or Mono's PVK."""
    return load_private_key_bytes(read_file(path, "private key"), str(path), password)


def _checked(key: PrivateKeyTypes, source: str) -> PrivateKey:
    if isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        return key
    raise FileFormatError(f"{source}: unsupported key type {type(key).__name__}")


# --- Mono / Microsoft PVK ------------------------------------------------------------------------
# Layout (little-endian): magic, reserved, key type, encrypted, salt length, key length, salt,
# then a PRIVATEKEYBLOB: BLOBHEADER (type 7, version 2, reserved, algorithm), RSAPUBKEY ("RSA2",
# bit length, public exponent), modulus, prime1, prime2, exponent1, exponent2, coefficient,
# private exponent; every integer little-endian.

PVK_MAGIC = 0xB0B5F11E
_PVK_HEADER = struct.Struct("<IIIIII")
_RSA2 = 0x32415352


def is_pvk(data: bytes) -> bool:
    """True when ``data`` starts as a PVK file does (its magic number, little-endian)."""
    return data[:4] == PVK_MAGIC.to_bytes(4, "little")


def load_pvk(data: bytes, source: str) -> rsa.RSAPrivateKey:
    """Read an unencrypted PVK (what Mono's ``makecert -sv`` writes) into an RSA key."""
    if len(data) < _PVK_HEADER.size:
        raise FileFormatError(f"{source}: truncated PVK file")
    magic, _reserved, _keytype, encrypted, salt_len, key_len = _PVK_HEADER.unpack_from(data)
    if magic != PVK_MAGIC:
        raise FileFormatError(f"{source}: not a PVK file")
    if encrypted:
        raise PKIError(
            f"{source}: encrypted PVK keys are not supported: export the key unencrypted, "
            "or convert it with `openssl rsa -inform PVK`"
        )
    blob = data[_PVK_HEADER.size + salt_len :]
    if len(blob) < key_len or key_len < 20:
        raise FileFormatError(f"{source}: truncated PVK file")
    btype, _version, _res, _alg, pubmagic, bitlen, pubexp = struct.unpack_from("<BBHIIII", blob)
    if btype != 7 or pubmagic != _RSA2:
        raise FileFormatError(f"{source}: PVK holds no RSA private key blob")
    n8, n16 = bitlen // 8, bitlen // 16
    need = 20 + n8 + 5 * n16 + n8
    if len(blob) < need or bitlen <= 0 or bitlen % 16:
        raise FileFormatError(f"{source}: truncated PVK file")
    offset = 20

    def take(size: int) -> int:
        nonlocal offset
        value = int.from_bytes(blob[offset : offset + size], "little")
        offset += size
        return value

    n, p, q = take(n8), take(n16), take(n16)
    dmp1, dmq1, iqmp, d = take(n16), take(n16), take(n16), take(n8)
    try:
        numbers = rsa.RSAPrivateNumbers(p, q, d, dmp1, dmq1, iqmp, rsa.RSAPublicNumbers(pubexp, n))
        return numbers.private_key(unsafe_skip_rsa_key_validation=False)
    except ValueError as exc:
        raise FileFormatError(f"{source}: PVK key is inconsistent: {exc}") from None
