"""``mutls pkcs12``: the article's P12 -> PEM conversion, the reverse, and one-line errors."""

from __future__ import annotations

import os
import pty
import re
import select
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import pkcs12

from mutls import cli, pki
from mutls.errors import PKIError
from mutls.pki.pkcs12 import describe_p12_algorithms

from helpers import FIXTURES, PASSWORD, PKIFiles, run_mutls


def mutls(*args: object) -> int:
    return cli.main(["pkcs12", *map(str, args)])


def fails(capsys: pytest.CaptureFixture[str], *args: object, match: str) -> None:
    assert mutls(*args) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert re.search(match, err), err


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, test_pki: PKIFiles) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in ("poupou", "via-intermediate"):
        shutil.copy(test_pki.p12(name), tmp_path / f"{name}.p12")
        shutil.copy(test_pki.cert(name), tmp_path / f"{name}.pem")
        shutil.copy(test_pki.key(name), tmp_path / f"{name}.key")
    return tmp_path


def test_article_conversion(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert mutls("-in", "poupou.p12", "-out", "out.pem", "-nodes", "-passin", "pass:s3kr3t") == 0
    assert "MAC verified OK" in capsys.readouterr().err
    text = (work / "out.pem").read_text()
    assert text.count("BEGIN CERTIFICATE") == 2 and "BEGIN PRIVATE KEY" in text
    assert "subject=CN=poupou" in text
    assert stat.S_IMODE(os.stat(work / "out.pem").st_mode) == 0o600
    back = pki.Identity.from_pem(work / "out.pem")
    assert back.certificate == pki.Identity.from_p12(work / "poupou.p12", PASSWORD).certificate
    assert len(back.chain) == 1


def test_password_sources(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (work / "pw").write_text(PASSWORD + "\n")
    assert mutls("-in", "poupou.p12", "-out", "a.pem", "-nodes", "-passin", "file:pw") == 0
    monkeypatch.setenv("P12PW", PASSWORD)
    assert mutls("-in", "poupou.p12", "-out", "b.pem", "-nodes", "-passin", "env:P12PW") == 0
    assert (work / "a.pem").read_bytes() == (work / "b.pem").read_bytes()


def test_key_encrypted_without_nodes(work: Path) -> None:
    assert (
        mutls(
            "-in",
            "poupou.p12",
            "-out",
            "e.pem",
            "-passin",
            "pass:s3kr3t",
            "-passout",
            "pass:pem-pw",
        )
        == 0
    )
    text = (work / "e.pem").read_bytes()
    assert b"BEGIN ENCRYPTED PRIVATE KEY" in text
    with pytest.raises(PKIError):
        pki.Identity.from_pem(work / "e.pem")
    assert pki.Identity.from_pem(work / "e.pem", password="pem-pw").subject == "CN=poupou"


@pytest.mark.parametrize(
    ("flag", "certs", "key"),
    [("-nokeys", 2, False), ("-nocerts", 0, True), ("-clcerts", 1, True), ("-cacerts", 1, True)],
)
def test_selection(work: Path, flag: str, certs: int, key: bool) -> None:
    assert (
        mutls("-in", "poupou.p12", "-out", "s.pem", "-nodes", "-passin", "pass:s3kr3t", flag) == 0
    )
    text = (work / "s.pem").read_text()
    assert text.count("BEGIN CERTIFICATE") == certs
    assert ("PRIVATE KEY" in text) is key
    assert stat.S_IMODE(os.stat(work / "s.pem").st_mode) == (0o600 if key else 0o644)
    if flag == "-cacerts":
        assert "subject=CN=My Own Test CA" in text and "subject=CN=poupou" not in text


def test_standard_output_and_info(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert mutls("-in", "poupou.p12", "-nokeys", "-info", "-passin", "pass:s3kr3t") == 0
    out, err = capsys.readouterr()
    assert out.count("BEGIN CERTIFICATE") == 2
    assert "certificates: AES-256-CBC" in err and "MAC: SHA-256" in err


@pytest.mark.parametrize("name", ["poupou", "localhost", "expired", "mallory"])
def test_mono_p12s_convert(work: Path, name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        mutls(
            "-in",
            FIXTURES / f"{name}.p12",
            "-out",
            "m.pem",
            "-nodes",
            "-info",
            "-passin",
            "pass:s3kr3t",
        )
        == 0
    )
    assert "certificates: 3DES" in capsys.readouterr().err
    identity = pki.Identity.from_pem(work / "m.pem")
    assert identity.common_name == name
    assert pki.describe_key(identity.key) == "RSA 1024"


@pytest.mark.parametrize("legacy", [False, True])
def test_export_round_trip(work: Path, test_pki: PKIFiles, legacy: bool) -> None:
    shutil.copy(test_pki.ca_cert, work / "root.pem")
    leaf_only = work / "leaf.pem"
    leaf_only.write_bytes(test_pki.identities["via-intermediate"].cert_pem())
    inter = work / "inter.pem"
    inter.write_bytes(
        pki.Identity(test_pki.intermediate.certificate, test_pki.intermediate.key).cert_pem()
    )
    chain = work / "chain.pem"
    chain.write_bytes(inter.read_bytes() + (work / "root.pem").read_bytes())
    args = [
        "-export",
        "-in",
        leaf_only,
        "-inkey",
        "via-intermediate.key",
        "-certfile",
        chain,
        "-out",
        "x.p12",
        "-passout",
        "pass:pw",
        "-name",
        "castor's cert",
    ]
    assert mutls(*args, *(["-legacy"] if legacy else [])) == 0
    data = (work / "x.p12").read_bytes()
    assert describe_p12_algorithms(data)[0].startswith(
        "certificates: 3DES" if legacy else "certificates: AES-256"
    )
    assert stat.S_IMODE(os.stat(work / "x.p12").st_mode) == 0o600
    back = pki.Identity.from_p12(work / "x.p12", "pw")
    assert back.certificate == test_pki.identities["via-intermediate"].certificate
    assert back.chain == (test_pki.intermediate.certificate, test_pki.ca.certificate)
    loaded = pkcs12.load_pkcs12(data, b"pw")
    assert loaded.cert is not None and loaded.cert.friendly_name == b"castor's cert"


def test_export_from_one_pem_with_key_and_chain(work: Path) -> None:
    assert mutls("-in", "poupou.p12", "-out", "all.pem", "-nodes", "-passin", "pass:s3kr3t") == 0
    assert mutls("-export", "-in", "all.pem", "-out", "again.p12", "-passout", "pass:pw") == 0
    again = pki.Identity.from_p12(work / "again.p12", "pw")
    assert again.subject == "CN=poupou" and len(again.chain) == 1


# -- bad input ----------------------------------------------------------------------------------


def test_wrong_password(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fails(
        capsys,
        "-in",
        "poupou.p12",
        "-out",
        "o.pem",
        "-nodes",
        "-passin",
        "pass:nope",
        match=r"poupou\.p12: wrong password \(check -passin\)",
    )
    assert not (work / "o.pem").exists()


def test_corrupt_file(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (work / "broken.p12").write_bytes((work / "poupou.p12").read_bytes()[:300])
    fails(
        capsys,
        "-in",
        "broken.p12",
        "-out",
        "o.pem",
        "-nodes",
        "-passin",
        "pass:s3kr3t",
        match=r"broken\.p12: not a PKCS#12 file, or corrupt",
    )
    assert not (work / "o.pem").exists()


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["-in", "poupou.pem", "-passin", "pass:x"], r"poupou\.pem: is PEM, not PKCS#12.*-export"),
        (["-in", "missing.p12", "-passin", "pass:x"], r"missing\.p12: no such"),
        (["-out", "o.pem"], r"missing -in"),
        (["-in", "poupou.p12", "-bogus"], r"unrecognized arguments: -bogus"),
        (["-in", "poupou.p12", "-passin", "nope"], r"expected pass:PASSWORD"),
        (
            ["-in", "poupou.p12", "-passin", "pass:s3kr3t", "-out", "poupou.key", "-nodes"],
            r"poupou\.key: already exists .*--force",
        ),
        (
            ["-export", "-in", "poupou.pem", "-out", "x.p12", "-passout", "pass:x"],
            r"poupou\.pem holds no private key: give it with -inkey",
        ),
        (
            [
                "-export",
                "-in",
                "poupou.pem",
                "-inkey",
                "via-intermediate.key",
                "-out",
                "x.p12",
                "-passout",
                "pass:x",
            ],
            r"via-intermediate\.key: this private key does not belong",
        ),
        (
            ["-export", "-in", "poupou.pem", "-inkey", "poupou.key", "-passout", "pass:x"],
            r"-export needs -out",
        ),
        (
            [
                "-export",
                "-in",
                "poupou.pem",
                "-inkey",
                "poupou.key",
                "-out",
                "x.p12",
                "-passout",
                "pass:",
            ],
            r"needs a password",
        ),
    ],
)
def test_bad_command_lines(
    work: Path, capsys: pytest.CaptureFixture[str], args: list[str], match: str
) -> None:
    before = {p.name: p.read_bytes() for p in work.iterdir()}
    fails(capsys, *args, match=match)
    assert {p.name: p.read_bytes() for p in work.iterdir()} == before


def test_missing_password_without_a_terminal(work: Path) -> None:
    done = run_mutls("pkcs12", "-in", "poupou.p12", "-out", "o.pem", "-nodes", cwd=work)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "-passin" in done.stderr
    assert not (work / "o.pem").exists()


def test_article_conversion_end_to_end(work: Path) -> None:
    done = run_mutls(
        "pkcs12",
        "-in",
        "poupou.p12",
        "-out",
        "poupou.out.pem",
        "-nodes",
        "-passin",
        "pass:s3kr3t",
        cwd=work,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == "MAC verified OK\n"
    assert pki.Identity.from_pem(work / "poupou.out.pem").subject == "CN=poupou"


def converse(args: list[str], answers: list[str], cwd: Path) -> tuple[int, str]:
    """Run mutls on a pseudo-terminal, typing each answer after its prompt appears."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mutls", *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=cwd,
        start_new_session=True,
    )
    os.close(slave)
    seen, mark = b"", 0
    try:
        for answer in answers:
            deadline = time.monotonic() + 30
            while not seen[mark:].rstrip().endswith(b":"):
                assert time.monotonic() < deadline, seen
                if select.select([master], [], [], 1)[0]:
                    seen += os.read(master, 1024)
            os.write(master, answer.encode() + b"\n")
            mark = len(seen)
        code = proc.wait(timeout=30)
        while select.select([master], [], [], 0.2)[0]:
            try:
                chunk = os.read(master, 1024)
            except OSError:  # the other end closed
                break
            if not chunk:
                break
            seen += chunk
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        os.close(master)
    return code, seen.decode(errors="replace")


def test_prompts_on_a_terminal(work: Path) -> None:
    code, text = converse(
        ["pkcs12", "-in", "poupou.p12", "-out", "t.pem"], [PASSWORD, "pem-pw", "pem-pw"], work
    )
    assert code == 0, text
    assert "Enter Import Password:" in text and "Verifying - Enter PEM pass phrase:" in text
    assert PASSWORD not in text  # not echoed
    assert pki.Identity.from_pem(work / "t.pem", password="pem-pw").subject == "CN=poupou"
