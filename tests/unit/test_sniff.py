"""``mutls.pki.sniff``: key material recognised by content in every format mutls, OpenSSL, OpenSSH,
Java and browsers write it, and nothing public taken for it."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from mutls.pki.sniff import SNIFF_BYTES, is_pkcs12, key_material, secret_text

from helpers import FIXTURES, PKIFiles
from tools import need

PEM, DER = serialization.Encoding.PEM, serialization.Encoding.DER
PKCS8 = serialization.PrivateFormat.PKCS8
TRADITIONAL = serialization.PrivateFormat.TraditionalOpenSSL
PLAIN = serialization.NoEncryption()
LOCKED = serialization.BestAvailableEncryption(b"s3kr3t")  # PBES2 (AES-256, PBKDF2)

Serialize = Callable[[PrivateKeyTypes], bytes]

#: what each key format looks like to the sniffer: (key maker, serializer, the reason's start).
KEY_FORMATS: dict[str, tuple[Callable[[], PrivateKeyTypes], Serialize, str]] = {
    "PEM PKCS#8 (pkcs12 -nodes)": (
        lambda: ec.generate_private_key(ec.SECP256R1()),
        lambda k: k.private_bytes(PEM, PKCS8, PLAIN),
        "PEM private key (PRIVATE KEY)",
    ),
    "PEM PKCS#1": (
        lambda: rsa.generate_private_key(65537, 2048),
        lambda k: k.private_bytes(PEM, TRADITIONAL, PLAIN),
        "PEM private key (RSA PRIVATE KEY)",
    ),
    "PEM SEC1": (
        lambda: ec.generate_private_key(ec.SECP384R1()),
        lambda k: k.private_bytes(PEM, TRADITIONAL, PLAIN),
        "PEM private key (EC PRIVATE KEY)",
    ),
    "PEM DSA": (
        lambda: dsa.generate_private_key(2048),
        lambda k: k.private_bytes(PEM, TRADITIONAL, PLAIN),
        "PEM private key (DSA PRIVATE KEY)",
    ),
    "PEM encrypted PKCS#8": (
        lambda: ec.generate_private_key(ec.SECP256R1()),
        lambda k: k.private_bytes(PEM, PKCS8, LOCKED),
        "PEM private key (ENCRYPTED PRIVATE KEY)",
    ),
    "OpenSSH": (
        ed25519.Ed25519PrivateKey.generate,
        lambda k: k.private_bytes(PEM, serialization.PrivateFormat.OpenSSH, PLAIN),
        "PEM private key (OPENSSH PRIVATE KEY)",
    ),
    "DER PKCS#8": (
        lambda: rsa.generate_private_key(65537, 2048),
        lambda k: k.private_bytes(DER, PKCS8, PLAIN),
        "DER private key (RSA 2048)",
    ),
    "DER PKCS#1": (
        lambda: rsa.generate_private_key(65537, 2048),
        lambda k: k.private_bytes(DER, TRADITIONAL, PLAIN),
        "DER private key (RSA 2048)",
    ),
    "DER SEC1": (
        lambda: ec.generate_private_key(ec.SECP256R1()),
        lambda k: k.private_bytes(DER, TRADITIONAL, PLAIN),
        "DER private key (EC P-256)",
    ),
    "DER DSA": (
        lambda: dsa.generate_private_key(2048),
        lambda k: k.private_bytes(DER, TRADITIONAL, PLAIN),
        "DER private key (DSAPrivateKey)",
    ),
    "DER Ed25519": (
        ed25519.Ed25519PrivateKey.generate,
        lambda k: k.private_bytes(DER, PKCS8, PLAIN),
        "DER private key (Ed25519)",
    ),
    "DER encrypted PKCS#8 (PBES2)": (
        lambda: ec.generate_private_key(ec.SECP256R1()),
        lambda k: k.private_bytes(DER, PKCS8, LOCKED),
        "encrypted PKCS#8 private key (DER)",
    ),
}


def sniff(data: bytes) -> str | None:
    """What the static server decides for a file holding ``data``."""
    return key_material(data[:SNIFF_BYTES], whole=len(data) <= SNIFF_BYTES)


@pytest.mark.parametrize("kind", KEY_FORMATS)
def test_every_private_key_format_is_key_material(kind: str) -> None:
    make, serialize, reason = KEY_FORMATS[kind]
    assert sniff(serialize(make())) == reason


def test_a_legacy_encrypted_der_key_is_key_material(tmp_path: Path) -> None:
    # PKCS#12's own PBE (3DES), as `openssl pkcs8 -v1 PBE-SHA1-3DES` writes it
    key = tmp_path / "key.pem"
    key.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(PEM, PKCS8, PLAIN))
    out = tmp_path / "key.der"
    legacy = ["-v1", "PBE-SHA1-3DES", "-passout", "pass:s3kr3t"]
    subprocess.run(
        ["openssl", "pkcs8", "-topk8", *legacy, "-in", key, "-outform", "DER", "-out", out],
        check=True,
        capture_output=True,
        timeout=60,
    )
    assert sniff(out.read_bytes()) == "encrypted PKCS#8 private key (DER)"


def test_pkcs12_by_structure_from_its_first_bytes(test_pki: PKIFiles) -> None:
    for p12 in (test_pki.p12("poupou"), FIXTURES / "poupou.p12"):  # AES/SHA-256 and Mono's 3DES
        data = p12.read_bytes()
        assert sniff(data) == "PKCS#12 (PFX)"
        assert key_material(data[:32], whole=False) == "PKCS#12 (PFX)"  # a large one's head
    # BER's indefinite length, as old Windows exports have it
    data = test_pki.p12("poupou").read_bytes()
    length_octets = data[1] & 0x7F if data[1] & 0x80 else 0
    assert is_pkcs12(b"\x30\x80" + data[2 + length_octets :] + b"\x00\x00")


def test_pvk_jks_jceks_and_putty_by_magic(tmp_path: Path, test_pki: PKIFiles) -> None:
    assert sniff((FIXTURES / "root.key").read_bytes()) == "Mono/Microsoft PVK private key"
    assert sniff(b"PuTTY-User-Key-File-3: ssh-ed25519\r\n") == "PuTTY private key"
    need("keytool")
    for kind in ("JKS", "JCEKS"):
        store = tmp_path / f"store.{kind}"
        where = ["-keystore", store, "-storetype", kind, "-storepass", "changeit"]
        subprocess.run(
            [
                "keytool",
                "-importcert",
                "-noprompt",
                "-alias",
                "root",
                "-file",
                test_pki.ca_cert,
                *where,
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        assert sniff(store.read_bytes()) == f"Java keystore ({kind})"


def test_tls_key_logs(test_pki: PKIFiles) -> None:
    random, secret = os.urandom(32).hex(), os.urandom(48).hex()
    nss = f"# SSL/TLS secrets log file, generated by NSS\nCLIENT_RANDOM {random} {secret}\n"
    assert sniff(nss.encode()) == "TLS key log (CLIENT_RANDOM lines)"
    tls13 = f"SERVER_HANDSHAKE_TRAFFIC_SECRET {random} {secret}\r\n"
    assert sniff(tls13.encode()) == "TLS key log (SERVER_HANDSHAKE_TRAFFIC_SECRET lines)"
    # prose about key logs is not one
    assert sniff(b"Each line reads CLIENT_RANDOM <random> <secret>.\n") is None


def test_a_key_after_a_long_chain_is_found_further_on(test_pki: PKIFiles) -> None:
    chain = test_pki.cert("poupou").read_bytes() * 20
    bundle = chain + test_pki.key("poupou").read_bytes()
    assert len(chain) > SNIFF_BYTES and sniff(bundle) is None  # the head alone holds none
    header = bundle.index(b"-----BEGIN PRIVATE KEY")
    assert secret_text(bundle[header - 100 : header + 40]) == "PEM private key (PRIVATE KEY)"


def public_files(test_pki: PKIFiles) -> dict[str, bytes]:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    cert = test_pki.ca.certificate
    return {
        "PEM certificate chain": test_pki.cert("via-intermediate").read_bytes(),
        "DER certificate": cert.public_bytes(DER),
        "Mono's DER certificate": (FIXTURES / "root.cer").read_bytes(),
        "PEM CRL": test_pki.crl_path.read_bytes(),
        "PEM public key": key.public_bytes(PEM, spki),
        "DER public key": key.public_bytes(DER, spki),
        "OpenSSH public key": key.public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        ),
        "a page about keys": b"<p>Never publish your RSA private key or -----BEGIN lines.</p>",
        "an empty file": b"",
        "random bytes": bytes(range(256)) * 40,
        "a DER SEQUENCE of integers": b"\x30\x06\x02\x01\x00\x02\x01\x03",
    }


def test_public_files_are_not_key_material(test_pki: PKIFiles) -> None:
    found = {name: sniff(data) for name, data in public_files(test_pki).items()}
    assert found == dict.fromkeys(found)
