"""``mutls inspect``: every kind of file, the facts a person checks, and the weak spots."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization

from mutls import cli, pki
from mutls.pki.describe import describe_file
from mutls.pki.weakness import weaknesses

from helpers import FIXTURES, PASSWORD, PKIFiles, run_mutls


def inspect(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = cli.main(["inspect", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def as_json(capsys: pytest.CaptureFixture[str], *args: object) -> list[dict[str, Any]]:
    code, out, err = inspect(capsys, "--json", *args)
    assert code == 0, err
    result: list[dict[str, Any]] = json.loads(out)
    return result


def test_server_certificate_facts(test_pki: PKIFiles, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = inspect(capsys, test_pki.cert("server"))
    assert code == 0
    server = test_pki.identities["server"].certificate
    assert "Certificate: CN=localhost" in out
    assert "Issuer:      CN=My Own Test CA" in out
    assert f"Serial:      {server.serial_number:X}" in out
    assert "824 days left" in out or "825 days left" in out
    assert "Key:         EC P-256" in out
    assert "Signature:   ecdsa-with-SHA256" in out
    assert "EKU:         serverAuth" in out
    assert "Key usage:   digitalSignature" in out
    assert "SAN:         DNS:localhost, IP:127.0.0.1, IP:::1" in out
    assert "Constraints: CA:FALSE" in out
    sha256 = server.fingerprint(hashes.SHA256()).hex().upper()
    assert sha256[:2] + ":" + sha256[2:4] in out
    assert "WARNING" not in out


def test_chain_tree_of_a_bundle(test_pki: PKIFiles, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = inspect(capsys, test_pki.cert("via-intermediate"))
    tree = out[out.index("Chain:") :].splitlines()[1:4]
    assert tree == [
        "    CN=My Own Test CA",
        "    └── CN=My Intermediate CA",
        "        └── CN=castor",
    ]
    [report] = as_json(capsys, test_pki.cert("via-intermediate"))
    root = report["chain"][0]
    assert root["children"][0]["children"][0]["subject"] == "CN=castor"


def test_expired_and_not_yet_valid(test_pki: PKIFiles, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = inspect(capsys, test_pki.cert("expired"), test_pki.cert("not-yet-valid"))
    assert "(EXPIRED 1 day ago)" in out  # it ended a day (and a few seconds) ago
    assert "(NOT YET VALID)" in out
    reports = as_json(capsys, test_pki.cert("expired"))
    assert reports[0]["certificates"][0]["status"] == "EXPIRED"
    assert reports[0]["certificates"][0]["days_left"] == -1


def test_p12_with_every_password_source(
    test_pki: PKIFiles,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    (tmp_path / "pw").write_text(PASSWORD)
    monkeypatch.setenv("INSPECT_PW", PASSWORD)
    for option in (
        ["--pass", PASSWORD],
        ["--pass-file", tmp_path / "pw"],
        ["--pass-env", "INSPECT_PW"],
    ):
        [report] = as_json(capsys, *option, test_pki.p12("poupou"))
        assert report["kind"] == "PKCS#12"
        assert "MAC verified OK" in report["notes"]
        assert [c["subject"] for c in report["certificates"]] == ["CN=poupou", "CN=My Own Test CA"]
        assert report["keys"][0]["matches"] == "CN=poupou"
        assert report["certificates"][0]["san"] == ["email:poupou@example.org"]


def test_mono_files_and_their_weaknesses(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = inspect(
        capsys,
        "--pass",
        PASSWORD,
        FIXTURES / "root.cer",
        FIXTURES / "root.key",
        FIXTURES / "localhost.p12",
    )
    assert code == 0
    root_part, key_part, p12_part = out.split("\n\n\n")
    assert "DER certificate" in root_part and "(self-signed)" in root_part
    assert "RSA 1024 key" in root_part and "no basicConstraints" in root_part
    assert "Signature:   sha512WithRSAEncryption" in root_part
    assert "Mono/Microsoft PVK" in key_part and "RSA 1024" in key_part
    assert "certificates: 3DES" in p12_part and "MAC: SHA-1, 2000 iterations" in p12_part
    assert "serverAuth certificate without subjectAltName" in p12_part
    assert "    CN=My Own Test CA\n    └── CN=localhost" in p12_part


def test_keys_crls_and_mixed_pem(
    test_pki: PKIFiles, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    [key] = as_json(capsys, test_pki.key("poupou"))
    assert key["keys"] == [
        {
            "key": "EC P-256",
            "format": "PEM PKCS#8",
            "encrypted": False,
            "matches": None,
            "warnings": [],
            "public_key_sha256": hashlib.sha256(
                test_pki.identities["poupou"]
                .certificate.public_key()
                .public_bytes(
                    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
                )
            ).hexdigest(),
        }
    ]
    [crl] = as_json(capsys, test_pki.crl_path)
    revoked = test_pki.identities["revoked"].certificate.serial_number
    assert crl["crls"][0]["revoked"] == [f"{revoked:X}"]
    assert crl["crls"][0]["issuer"] == "CN=My Own Test CA" and crl["crls"][0]["status"] == "valid"
    encrypted = tmp_path / "enc.pem"
    identity = test_pki.identities["poupou"]
    encrypted.write_bytes(identity.cert_pem() + identity.key_pem("kpw"))
    [mixed] = as_json(capsys, "--pass", "kpw", encrypted)
    assert mixed["kind"] == "PEM certificate + private key"
    assert mixed["keys"][0]["encrypted"] and mixed["keys"][0]["matches"] == "CN=poupou"
    other = tmp_path / "other.pem"
    other.write_bytes(identity.cert_pem() + test_pki.key("server").read_bytes())
    [wrong] = as_json(capsys, other)
    assert wrong["keys"][0]["warnings"] == [
        "this key belongs to none of the certificates in the file"
    ]


def test_sha1_signature_is_flagged(tmp_path: Path) -> None:
    # cryptography refuses to sign with SHA-1, so the old certificate comes from openssl
    cert = tmp_path / "old.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-sha1",
            "-nodes",
            "-subj",
            "/CN=old",
            "-keyout",
            tmp_path / "old.key",
            "-out",
            cert,
            "-days",
            "1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    found = weaknesses(pki.load_certificate(cert))
    assert any("signed with sha1WithRSAEncryption" in w for w in found), found


def test_describe_api_asks_for_a_password_only_when_needed(test_pki: PKIFiles) -> None:
    asked: list[str] = []

    def password(prompt: str) -> str:
        asked.append(prompt)
        return PASSWORD

    describe_file(str(test_pki.cert("poupou")), password)
    assert asked == []
    report = describe_file(str(test_pki.p12("poupou")), password)
    assert len(asked) == 1 and "Import Password" in asked[0]
    assert report.certificates[0].subject == "CN=poupou"


# -- bad input ----------------------------------------------------------------------------------


def test_bad_files_are_one_line_each(
    test_pki: PKIFiles, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    corrupt = tmp_path / "corrupt.cer"
    corrupt.write_bytes(b"\x30\x82\x01\x00garbage")
    pem = tmp_path / "empty.pem"
    pem.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n")
    code, out, err = inspect(
        capsys,
        "--pass",
        "wrong",
        corrupt,
        tmp_path / "missing.pem",
        test_pki.p12("poupou"),
        pem,
        test_pki.cert("poupou"),
    )
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 4, err
    assert "corrupt.cer: not a certificate, key, CRL, PKCS#12 or PVK file" in lines[0]
    assert "missing.pem: no such file" in lines[1]
    assert "poupou.p12: wrong password" in lines[2]
    assert "empty.pem: no PEM block found" in lines[3]
    assert "Certificate: CN=poupou" in out  # the good file is still shown


def test_unknown_option(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = inspect(capsys, "--bogus", "x.pem")
    assert code == 2 and "unrecognized arguments: --bogus" in err


def test_end_to_end_without_a_terminal(test_pki: PKIFiles) -> None:
    done = run_mutls("inspect", test_pki.p12("poupou"))
    assert done.returncode == 2
    assert "no password given and no terminal" in done.stderr
    done = run_mutls(
        "inspect",
        "--json",
        test_pki.cert("server"),
        test_pki.p12("server"),
        env={"PW": PASSWORD},
        input="",
    )
    assert done.returncode == 2  # the P12 needs a password
    done = run_mutls(
        "inspect", "--pass-env", "PW", "--json", test_pki.p12("server"), env={"PW": PASSWORD}
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)[0]["certificates"][0]["subject"] == "CN=localhost"


def test_der_key_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = pki.generate_private_key()
    path = tmp_path / "k.der"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    [report] = as_json(capsys, path)
    assert report["kind"] == "DER private key" and report["keys"][0]["key"] == "EC P-256"


def test_a_key_is_paired_with_its_certificate_in_another_file(
    test_pki: PKIFiles, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the article's root.cer and root.key, and Mono's DER root with its PVK key
    test_pki.ca.write(tmp_path / "root.cer", tmp_path / "root.key")
    code, out, _ = inspect(capsys, tmp_path / "root.cer", tmp_path / "root.key")
    assert code == 0
    assert f"(PEM PKCS#8), matches CN=My Own Test CA in {tmp_path / 'root.cer'}" in out
    mono = as_json(capsys, FIXTURES / "root.key", FIXTURES / "root.cer", FIXTURES / "evil.cer")
    assert mono[0]["keys"][0]["matches"] == f"CN=My Own Test CA in {FIXTURES / 'root.cer'}"
    # a key alone, or beside certificates that are not its own, matches nothing
    code, out, _ = inspect(capsys, tmp_path / "root.key", test_pki.other_ca_cert)
    assert code == 0 and "matches" not in out
