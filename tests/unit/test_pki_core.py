"""The PKI core: what it makes is accepted by the real openssl, and bad input fails clearly."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from mutls import pki
from mutls.errors import FileFormatError, PKIError, WrongPasswordError

from helpers import FIXTURES, PASSWORD, PKIFiles


def openssl_verify(ca: Path, cert: Path, purpose: str, *untrusted: Path) -> str:
    args = ["openssl", "verify", "-CAfile", str(ca), "-purpose", purpose]
    for u in untrusted:
        args += ["-untrusted", str(u)]
    done = subprocess.run([*args, str(cert)], capture_output=True, text=True, timeout=30)
    return done.stdout + done.stderr


def test_openssl_accepts_server_and_client(test_pki: PKIFiles, tmp_path: Path) -> None:
    assert ": OK" in openssl_verify(test_pki.ca_cert, test_pki.cert("server"), "sslserver")
    leaf = tmp_path / "leaf.pem"
    leaf.write_bytes(test_pki.identities["poupou"].cert_pem())
    assert ": OK" in openssl_verify(test_pki.ca_cert, leaf, "sslclient")


def test_server_only_is_refused_for_client_purpose(test_pki: PKIFiles, tmp_path: Path) -> None:
    leaf = tmp_path / "leaf.pem"
    leaf.write_bytes(test_pki.identities["server-only"].cert_pem())
    assert "unsuitable certificate purpose" in openssl_verify(test_pki.ca_cert, leaf, "sslclient")


def test_keys_and_p12_are_private(test_pki: PKIFiles) -> None:
    for path in (test_pki.key("poupou"), test_pki.p12("poupou")):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_p12_round_trip_modern_and_legacy(test_pki: PKIFiles, tmp_path: Path) -> None:
    poupou = test_pki.identities["poupou"]
    for legacy in (False, True):
        path = tmp_path / f"p{legacy}.p12"
        poupou.write_p12(path, PASSWORD, legacy=legacy)
        back = pki.Identity.from_p12(path, PASSWORD)
        assert back.certificate == poupou.certificate
        assert back.chain == (test_pki.ca.certificate,)


def test_p12_wrong_password_and_corrupt(test_pki: PKIFiles, tmp_path: Path) -> None:
    with pytest.raises(WrongPasswordError, match="wrong password"):
        pki.Identity.from_p12(test_pki.p12("poupou"), "nope")
    broken = tmp_path / "broken.p12"
    broken.write_bytes(test_pki.p12("poupou").read_bytes()[:200])
    with pytest.raises(FileFormatError, match="corrupt"):
        pki.Identity.from_p12(broken, PASSWORD)


def test_refuses_to_overwrite(test_pki: PKIFiles) -> None:
    with pytest.raises(PKIError, match="already exists"):
        test_pki.identities["poupou"].write_p12(test_pki.p12("poupou"), PASSWORD)


def test_mono_pvk_and_cer_issue_new_certificates() -> None:
    ca = pki.CertificateAuthority.load(FIXTURES / "root.cer", key_path=FIXTURES / "root.key")
    assert ca.subject == "CN=My Own Test CA"
    assert pki.describe_key(ca.key) == "RSA 1024"
    child = ca.issue_client("CN=carried-over")
    child.certificate.verify_directly_issued_by(ca.certificate)


def test_mismatched_issuer_pair_names_both_files() -> None:
    with pytest.raises(PKIError, match=r"root\.key.*evil\.cer"):
        pki.CertificateAuthority.load(FIXTURES / "evil.cer", key_path=FIXTURES / "root.key")


def test_weak_hash_refused() -> None:
    with pytest.raises(PKIError, match="SHA1"):
        pki.CertificateAuthority.create("CN=x", hash_name="sha1")


def test_small_rsa_refused() -> None:
    with pytest.raises(PKIError, match="RSA-1024 refused"):
        pki.KeySpec.parse("rsa1024")


def test_aki_of_an_issuer_without_ski_is_its_key_hash() -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import rsa

    from mutls.pki.certs import authority_key_identifier

    # Mono's makecert writes roots without a subjectKeyIdentifier.
    root = x509.load_der_x509_certificate((FIXTURES / "root.cer").read_bytes())
    with pytest.raises(x509.ExtensionNotFound):
        root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    key = root.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    expected = x509.AuthorityKeyIdentifier.from_issuer_public_key(key)
    assert authority_key_identifier(root) == expected
    assert expected.key_identifier is not None
