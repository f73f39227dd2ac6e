"""``mutls makecert``: the article's commands verbatim, Mono's options, modern defaults, errors."""

from __future__ import annotations

import datetime as dt
import os
import re
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID

from mutls import cli, pki
from mutls.pki.pkcs12 import describe_p12_algorithms

from helpers import ARTICLE_MAKECERT, FIXTURES, PASSWORD, run_mutls

SERVER, CLIENT = ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH


def mutls(*args: object) -> int:
    return cli.main(["makecert", *map(str, args)])


def fails(capsys: pytest.CaptureFixture[str], *args: object, match: str) -> str:
    """Run makecert, expect exit 2 and exactly one line on stderr matching ``match``."""
    assert mutls(*args) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert re.search(match, err), err
    return err


def ext(cert: x509.Certificate, kind: type) -> object:
    return cert.extensions.get_extension_for_class(kind)


def eku(cert: x509.Certificate) -> list[x509.ObjectIdentifier]:
    return list(ext(cert, x509.ExtendedKeyUsage).value)  # type: ignore[attr-defined]


def san(cert: x509.Certificate) -> list[str]:
    value = ext(cert, x509.SubjectAlternativeName).value  # type: ignore[attr-defined]
    return [str(n.value) for n in value]


def p12(path: Path, password: str = PASSWORD) -> pki.Identity:
    return pki.Identity.from_p12(path, password)


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def article(work: Path) -> Path:
    """The article's three commands, verbatim."""
    assert mutls("-r", "-n", "CN=My Own Test CA", "-sv", "root.key", "root.cer") == 0
    base = ["-iv", "root.key", "-ic", "root.cer", "-eku"]
    assert mutls(*base, "-n", "CN=pollux", "-p12", "pollux.p12", "s3kr3t") == 0
    assert mutls(*base, "-n", "CN=poupou", "-p12", "poupou.p12", "s3kr3t") == 0
    return work


def test_article_root_is_a_modern_ca(article: Path) -> None:
    data = (article / "root.cer").read_bytes()
    root = x509.load_der_x509_certificate(data)  # .cer is DER, as Mono writes it
    constraints = ext(root, x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca  # type: ignore[attr-defined]
    usage = ext(root, x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign  # type: ignore[attr-defined]
    assert isinstance(root.signature_hash_algorithm, hashes.SHA256)
    assert root.serial_number.bit_length() > 64
    lifetime = root.not_valid_after_utc - root.not_valid_before_utc
    assert lifetime == dt.timedelta(days=3650)
    key_text = (article / "root.key").read_text()
    assert key_text.startswith("-----BEGIN PRIVATE KEY-----")
    assert stat.S_IMODE(os.stat(article / "root.key").st_mode) == 0o600
    assert pki.describe_key(pki.load_private_key(article / "root.key")) == "EC P-256"


def test_article_leaves_carry_both_ekus_a_san_and_the_chain(article: Path) -> None:
    root = pki.load_certificate(article / "root.cer")
    for name in ("pollux", "poupou"):
        identity = p12(article / f"{name}.p12")
        cert = identity.certificate
        assert identity.subject == f"CN={name}"
        assert eku(cert) == [SERVER, CLIENT]
        assert san(cert) == [name]  # CN=pollux is valid for https://pollux
        assert identity.chain == (root,)
        cert.verify_directly_issued_by(root)
        assert not ext(cert, x509.BasicConstraints).value.ca  # type: ignore[attr-defined]
        aki = ext(cert, x509.AuthorityKeyIdentifier).value.key_identifier  # type: ignore[attr-defined]
        assert aki == ext(root, x509.SubjectKeyIdentifier).value.digest  # type: ignore[attr-defined]
        assert cert.not_valid_after_utc - cert.not_valid_before_utc == dt.timedelta(days=825)
        assert stat.S_IMODE(os.stat(article / f"{name}.p12").st_mode) == 0o600
        # Mono 6.8's X509Certificate2 and certmgr read 3DES with a SHA-1 MAC, nothing newer
        facts = describe_p12_algorithms((article / f"{name}.p12").read_bytes())
        assert facts[0].startswith("certificates: 3DES") and "MAC: SHA-1" in facts[-1]


@pytest.mark.parametrize(
    ("options", "expected", "has_san"),
    [
        (["-eku", "serverAuth"], [SERVER], True),
        (["-eku", "clientAuth"], [CLIENT], False),
        (["-eku", "1.3.6.1.5.5.7.3.2"], [CLIENT], False),  # Mono's dotted form
        (["-eku", "serverAuth,clientAuth"], [SERVER, CLIENT], True),
        (["--client"], [CLIENT], False),
        (["--server"], [SERVER], True),
        ([], [SERVER, CLIENT], True),
    ],
)
def test_eku_spellings(
    article: Path, options: list[str], expected: list[x509.ObjectIdentifier], has_san: bool
) -> None:
    assert (
        mutls(
            "-iv", "root.key", "-ic", "root.cer", *options, "-n", "CN=host", "-p12", "x.p12", "pw"
        )
        == 0
    )
    cert = p12(article / "x.p12", "pw").certificate
    assert eku(cert) == expected
    if has_san:
        assert san(cert) == ["host"]
    else:
        with pytest.raises(x509.ExtensionNotFound):
            cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)


@pytest.mark.parametrize(
    ("key_type", "described"),
    [("ec", "EC P-256"), ("p384", "EC P-384"), ("rsa", "RSA 2048"), ("ed25519", "Ed25519")],
)
def test_key_types(work: Path, key_type: str, described: str) -> None:
    assert mutls("-r", "-n", "CN=k", "--key-type", key_type, "-sv", "k.key", "k.pem") == 0
    assert pki.describe_key(pki.load_certificate(work / "k.pem").public_key()) == described


def test_legacy_p12_is_3des_with_an_rsa_2048_key(article: Path) -> None:
    base = ["-iv", "root.key", "-ic", "root.cer"]
    assert mutls(*base, "--legacy", "-n", "CN=old", "-p12", "old.p12", "s3kr3t") == 0
    facts = describe_p12_algorithms((article / "old.p12").read_bytes())
    assert facts[0].startswith("certificates: 3DES") and "MAC: SHA-1" in facts[-1]
    assert pki.describe_key(p12(article / "old.p12").key) == "RSA 2048"
    assert mutls(*base, "--legacy", "--key-type", "ec", "-n", "CN=o", "-p12", "o.p12", "x") == 0
    assert pki.describe_key(p12(article / "o.p12", "x").key) == "EC P-256"


def test_p12_cipher_aes256_is_one_flag_away(
    article: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["-iv", "root.key", "-ic", "root.cer", "-n", "CN=new"]
    assert mutls(*base, "--p12-cipher", "aes256", "-p12", "new.p12", "s3kr3t") == 0
    facts = describe_p12_algorithms((article / "new.p12").read_bytes())
    assert facts[0].startswith("certificates: AES-256") and "MAC: SHA-256" in facts[-1]
    assert pki.describe_key(p12(article / "new.p12").key) == "EC P-256"
    fails(
        capsys, *base, "--legacy", "--p12-cipher", "aes256", "-p12", "x.p12", "s3kr3t",
        match="--legacy and --p12-cipher aes256 contradict",
    )  # fmt: skip
    assert not (article / "x.p12").exists()


def test_existing_subject_key_is_reused(article: Path) -> None:
    before = (article / "root.key").read_bytes()
    assert mutls("-r", "-n", "CN=Again", "-sv", "root.key", "again.pem") == 0
    assert (article / "root.key").read_bytes() == before
    again = pki.load_certificate(article / "again.pem")
    assert again.public_key() == pki.load_certificate(article / "root.cer").public_key()


def test_reused_key_of_another_type_is_refused(
    article: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fails(
        capsys,
        "-r",
        "-n",
        "CN=x",
        "--key-type",
        "rsa",
        "-sv",
        "root.key",
        "x.pem",
        match=r"root\.key already holds an EC P-256 key",
    )
    assert not (article / "x.pem").exists()


def test_roles_and_path_length(article: Path) -> None:
    base = ["-iv", "root.key", "-ic", "root.cer"]
    assert mutls(*base, "--ca", "-h", "0", "-n", "CN=Inter", "-sv", "i.key", "i.pem") == 0
    inter = pki.load_certificate(article / "i.pem")
    constraints = ext(inter, x509.BasicConstraints).value
    assert constraints.ca and constraints.path_length == 0  # type: ignore[attr-defined]
    assert (
        mutls("-iv", "i.key", "-ic", "i.pem", "--client", "-n", "CN=c", "-p12", "c.p12", "pw") == 0
    )
    assert p12(article / "c.p12", "pw").chain == (inter,)
    assert mutls("-r", "-cy", "end", "-n", "CN=selfie", "-sv", "s.key", "s.pem") == 0
    assert not pki.is_ca_certificate(pki.load_certificate(article / "s.pem"))
    assert mutls(*base, "-cy", "authority", "-n", "CN=I2", "-sv", "i2.key", "i2.pem") == 0
    assert pki.is_ca_certificate(pki.load_certificate(article / "i2.pem"))


def test_dates_serial_hash_and_sans(article: Path) -> None:
    (article / "alt.txt").write_text("www.example.org\n\n# comment\nIP:10.0.0.1\n")
    base = ["-iv", "root.key", "-ic", "root.cer", "-eku", "serverAuth"]
    assert (
        mutls(
            *base,
            "-n",
            "CN=web",
            "-b",
            "01/15/2026",
            "-e",
            "12/31/2030",
            "-#",
            "4242",
            "-a",
            "sha384",
            "-alt",
            "alt.txt",
            "--san",
            "DNS:web.local",
            "--san",
            "email:a@b.org",
            "-sv",
            "w.key",
            "w.pem",
        )
        == 0
    )
    cert = pki.load_certificate(article / "w.pem")
    assert cert.not_valid_before_utc == dt.datetime(2026, 1, 15, tzinfo=dt.UTC)
    assert cert.not_valid_after_utc == dt.datetime(2030, 12, 31, 23, 59, 59, tzinfo=dt.UTC)
    assert cert.serial_number == 4242
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA384)
    assert san(cert) == ["web", "web.local", "a@b.org", "www.example.org", "10.0.0.1"]
    assert mutls(*base, "-n", "CN=m", "-b", "01/31/2026", "-m", "1", "-sv", "m.key", "m.pem") == 0
    months = pki.load_certificate(article / "m.pem")
    assert months.not_valid_after_utc.date() == dt.date(2026, 2, 28)
    assert mutls(*base, "-n", "CN=d", "--days", "30", "-sv", "d.key", "d.pem") == 0
    days = pki.load_certificate(article / "d.pem")
    assert days.not_valid_after_utc - days.not_valid_before_utc == dt.timedelta(days=30)


def test_issuer_key_and_name_without_certificate(article: Path) -> None:
    assert (
        mutls("-iv", "root.key", "-in", "CN=My Own Test CA", "-n", "CN=z", "-sv", "z.key", "z.pem")
        == 0
    )
    cert = pki.load_certificate(article / "z.pem")
    cert.verify_directly_issued_by(pki.load_certificate(article / "root.cer"))


def test_mono_pvk_and_der_issue_with_a_clear_warning(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["-iv", FIXTURES / "root.key", "-ic", FIXTURES / "root.cer", "-eku", "clientAuth"]
    assert mutls(*args, "-n", "CN=carried", "-p12", "carried.p12", "s3kr3t") == 0
    err = capsys.readouterr().err
    assert "warning: issuer" in err and "RSA 1024" in err and "no basicConstraints" in err
    assert "re-issue a root" in err
    identity = p12(work / "carried.p12")
    mono_root = pki.load_certificate(FIXTURES / "root.cer")
    identity.certificate.verify_directly_issued_by(mono_root)
    assert identity.chain == (mono_root,)
    assert pki.describe_key(identity.key) == "EC P-256"  # the new key is modern all the same


def test_mono_pvk_as_subject_key_is_reused_with_a_warning(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert mutls("-r", "-n", "CN=Mono again", "-sv", FIXTURES / "root.key", "again.cer") == 0
    assert "CN=Mono again: RSA 1024 key" in capsys.readouterr().err
    cert = pki.load_certificate(work / "again.cer")
    assert cert.public_key() == pki.load_certificate(FIXTURES / "root.cer").public_key()


# -- passwords -------------------------------------------------------------------------------


def test_p12_password_off_argv(
    article: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["-iv", "root.key", "-ic", "root.cer", "-n", "CN=p"]
    (article / "pw.txt").write_text("from-file\n")
    assert mutls(*base, "-p12", "a.p12", "--pass-file", "pw.txt") == 0
    assert p12(article / "a.p12", "from-file").subject == "CN=p"
    monkeypatch.setenv("P12PASS", "from-env")
    assert mutls(*base, "-p12", "b.p12", "--pass-env", "P12PASS") == 0
    assert p12(article / "b.p12", "from-env").subject == "CN=p"
    assert mutls(*base, "-p12", "c.p12", "env:P12PASS") == 0  # Mono's slot, OpenSSL's spelling
    assert p12(article / "c.p12", "from-env").subject == "CN=p"
    assert mutls("--pass-file", "pw.txt", *base, "-p12", "d.p12", "d.pem") == 0
    assert (article / "d.pem").exists() and p12(article / "d.p12", "from-file")


# -- bad input: one line, exit 2, nothing written ----------------------------------------------


@pytest.mark.parametrize("algorithm", ["sha1", "md5"])
def test_weak_hash_refused(work: Path, capsys: pytest.CaptureFixture[str], algorithm: str) -> None:
    fails(
        capsys,
        "-r",
        "-n",
        "CN=x",
        "-a",
        algorithm,
        "-sv",
        "x.key",
        "x.cer",
        match=rf"-a {algorithm}: {algorithm.upper()} signatures are broken",
    )
    assert list(work.iterdir()) == []


def test_existing_output_refused_then_forced(
    article: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = (article / "root.cer").read_bytes()
    fails(
        capsys,
        "-r",
        "-n",
        "CN=Other",
        "-sv",
        "other.key",
        "root.cer",
        match=r"root\.cer: already exists .*--force",
    )
    assert (article / "root.cer").read_bytes() == before
    assert not (article / "other.key").exists()  # no half-made set
    assert mutls("-r", "-n", "CN=Other", "-sv", "other.key", "--force", "root.cer") == 0
    assert pki.load_certificate(article / "root.cer").subject.rfc4514_string() == "CN=Other"


def test_mismatched_issuer_pair_names_both_files(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fails(
        capsys,
        "-iv",
        FIXTURES / "root.key",
        "-ic",
        FIXTURES / "evil.cer",
        "-n",
        "CN=x",
        "-p12",
        "x.p12",
        "pw",
        match=r"root\.key is not the private key of .*evil\.cer",
    )
    assert not (work / "x.p12").exists()


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (
            ["-iv", "missing.key", "-ic", "root.cer", "-n", "CN=x", "-p12", "x.p12", "pw"],
            r"missing\.key: no such private key",
        ),
        (["-ic", "root.cer", "-n", "CN=x", "-p12", "x.p12", "pw"], r"missing the issuer's key"),
        (["-n", "CN=x", "-p12", "x.p12", "pw"], r"no issuer: give -r"),
        (["-r", "-n", "CN=x", "x.cer"], r"private key would be lost.*-sv"),
        (
            [
                "-iv",
                "root.key",
                "-ic",
                "root.cer",
                "-in",
                "CN=Other",
                "-n",
                "CN=x",
                "-p12",
                "x.p12",
                "pw",
            ],
            r"-in CN=Other is not the subject of root\.cer",
        ),
        (["-r", "-sv", "x.key", "x.cer"], r"missing -n"),
        (["-r", "-n", "CN=x", "-sv", "x.key"], r"nothing to write"),
        (["-r", "-iv", "root.key", "-n", "CN=x", "-sv", "x.key", "x.cer"], r"-r .* cannot"),
        (["-r", "-n", "CN=x", "--bogus", "-sv", "x.key", "x.cer"], r"unrecognized .*--bogus"),
        (
            ["-r", "-n", "CN=x", "--key-type", "rsa1024", "-sv", "x.key", "x.cer"],
            r"RSA-1024 refused",
        ),
        (
            ["-r", "-cy", "end", "-h", "1", "-n", "CN=x", "-sv", "x.key", "x.cer"],
            r"-h .* only to a CA",
        ),
        (["-r", "-n", "CN=x", "-e", "13/45/2030", "-sv", "x.key", "x.cer"], r"-e 13/45/2030"),
        (["-r", "-n", "CN=x", "-m", "3", "--days", "9", "-sv", "x.key", "x.cer"], r"-m and --days"),
        (
            ["-iv", "root.key", "-ic", "root.key", "-n", "CN=x", "-p12", "x.p12", "pw"],
            r"root\.key: holds no certificate",
        ),
        (
            [
                "-iv",
                "root.key",
                "-ic",
                "root.cer",
                "-eku",
                "bogus",
                "-n",
                "CN=x",
                "-p12",
                "x.p12",
                "pw",
            ],
            r"unknown EKU 'bogus'",
        ),
    ],
)
def test_bad_command_lines(
    article: Path, capsys: pytest.CaptureFixture[str], args: list[str], match: str
) -> None:
    before = sorted(p.name for p in article.iterdir())
    fails(capsys, *args, match=match)
    assert sorted(p.name for p in article.iterdir()) == before


def test_no_terminal_for_the_password_is_one_line(article: Path) -> None:
    done = run_mutls(
        "makecert", "-iv", "root.key", "-ic", "root.cer", "-n", "CN=x", "-p12", "x.p12", cwd=article
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "--pass-file" in done.stderr, done.stderr
    assert not (article / "x.p12").exists()


def test_article_commands_end_to_end(tmp_path: Path) -> None:
    root = run_mutls("makecert", *ARTICLE_MAKECERT[0], cwd=tmp_path)
    assert root.returncode == 0, root.stderr
    assert "Success" in root.stdout
    leaf = run_mutls("makecert", *ARTICLE_MAKECERT[1], cwd=tmp_path)
    assert leaf.returncode == 0, leaf.stderr
    assert leaf.stderr == ""  # nothing weak about what the article makes
    assert p12(tmp_path / "pollux.p12").subject == "CN=pollux"


def test_a_server_name_that_cannot_be_a_host_is_flagged(
    article: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        mutls(
            "-iv",
            "root.key",
            "-ic",
            "root.cer",
            "--server",
            "-n",
            "CN=My Web Server",
            "-sv",
            "w.key",
            "w.pem",
        )
        == 0
    )
    assert "serverAuth certificate without subjectAltName" in capsys.readouterr().err
