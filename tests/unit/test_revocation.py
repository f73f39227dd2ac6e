"""The CA's side of revocation: ``mutls revoke`` records, ``mutls makecrl`` publishes full and
delta CRLs that OpenSSL applies, and ``makecert --crl-url`` says where they are."""

from __future__ import annotations

import json
import stat
import subprocess
import threading
from pathlib import Path

import pytest
from cryptography import x509

from mutls import cli, pki
from mutls.pki.crl import crl_number, delta_base
from mutls.pki.revocation import RevocationDatabase, record_path

from helpers import PKIFiles


def mutls(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    """Run ``mutls ARGS`` in-process: (exit code, stdout, stderr)."""
    code = cli.main([*map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def ca_files(test_pki: PKIFiles, tmp_path: Path) -> tuple[Path, Path]:
    """The test CA's certificate and key, copied where its record may be written."""
    cert, key = tmp_path / "root.cer", tmp_path / "root.key"
    test_pki.ca.write(cert, key)
    return cert, key


def ca_args(ca_files: tuple[Path, Path]) -> list[str]:
    return ["-iv", str(ca_files[1]), "-ic", str(ca_files[0])]


def test_revoke_records_beside_the_key_and_makecrl_publishes(
    capsys: pytest.CaptureFixture[str], test_pki: PKIFiles, ca_files: tuple[Path, Path]
) -> None:
    poupou = test_pki.cert("poupou")
    code, out, _ = mutls(capsys, "revoke", *ca_args(ca_files), poupou, "--reason", "keycompromise")
    assert code == 0
    serial = test_pki.identities["poupou"].certificate.serial_number
    assert out.startswith(f"revoked CN=poupou (serial {serial:X}) on ")
    assert ": keyCompromise" in out
    record = record_path(ca_files[1])
    assert record == ca_files[1].with_name("root.revoked.json") and record.is_file()
    assert json.loads(record.read_text())["revoked"][0]["reason"] == "keyCompromise"
    # again: nothing changes
    code, out, _ = mutls(capsys, "revoke", *ca_args(ca_files), poupou)
    assert code == 0 and out.startswith("already revoked: CN=poupou") and "nothing changed" in out
    crl_path = ca_files[0].with_name("root.crl")
    code, out, _ = mutls(capsys, "makecrl", *ca_args(ca_files), "-out", crl_path, "--days", "3")
    assert code == 0
    assert out.startswith(f"wrote {crl_path}: full CRL #1 of CN=My Own Test CA, 1 revoked")
    (crl,) = pki.load_crls(crl_path)
    assert crl_number(crl) == 1 and delta_base(crl) is None
    entry = crl.get_revoked_certificate_by_serial_number(serial)
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason is (
        x509.ReasonFlags.key_compromise
    )
    assert crl.is_signature_valid(test_pki.ca.certificate.public_key())  # type: ignore[arg-type]
    assert (crl.next_update_utc - crl.last_update_utc).days == 3  # type: ignore[operator]
    # the next one has the next number
    mutls(capsys, "makecrl", *ca_args(ca_files), "-out", crl_path)
    assert crl_number(pki.load_crls(crl_path)[0]) == 2


def test_by_serial_and_list(
    capsys: pytest.CaptureFixture[str], ca_files: tuple[Path, Path]
) -> None:
    code, out, _ = mutls(capsys, "revoke", *ca_args(ca_files), "--serial", "0x1A:2B")
    assert code == 0 and out.startswith("revoked 1A2B on ") and ": unspecified" in out
    code, out, _ = mutls(capsys, "revoke", *ca_args(ca_files), "--list")
    assert code == 0 and out.startswith("1A2B ") and "unspecified" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--reason", "removeFromCRL", "--serial", "1"], "--reason removeFromCRL: unknown reason"),
        (["--serial", "xyz"], "--serial xyz: not a hexadecimal number"),
        ([], "give the certificate to revoke, or --serial HEX"),
        (["CERT", "--serial", "1"], "give the certificate to revoke, or --serial HEX"),
        (["OTHER"], "was not issued by"),
    ],
)
def test_revoke_refuses_bad_input_with_one_line(
    capsys: pytest.CaptureFixture[str],
    test_pki: PKIFiles,
    ca_files: tuple[Path, Path],
    argv: list[str],
    message: str,
) -> None:
    files = {"CERT": str(test_pki.cert("poupou")), "OTHER": str(test_pki.cert("untrusted"))}
    code, out, err = mutls(capsys, "revoke", *ca_args(ca_files), *[files.get(a, a) for a in argv])
    assert code == 2 and out == ""
    assert message in err and err.count("\n") == 1
    assert not record_path(ca_files[1]).exists()


def test_a_corrupt_record_is_one_line_and_left_alone(
    capsys: pytest.CaptureFixture[str], ca_files: tuple[Path, Path]
) -> None:
    record = record_path(ca_files[1])
    record.write_text("{not json")
    code, _, err = mutls(capsys, "revoke", *ca_args(ca_files), "--serial", "1")
    assert code == 2 and "corrupt revocation record" in err and err.count("\n") == 1
    assert record.read_text() == "{not json"


def test_the_record_of_another_ca_is_refused(
    capsys: pytest.CaptureFixture[str], test_pki: PKIFiles, ca_files: tuple[Path, Path]
) -> None:
    mutls(capsys, "revoke", *ca_args(ca_files), "--serial", "1")
    other = ca_files[0].with_name("other.pem")
    pki.write_certificate(other, test_pki.other_ca.certificate)
    code, _, err = mutls(capsys, "revoke", "-iv", ca_files[1], "-ic", other, "--serial", "2")
    assert code == 2 and "the record of another CA (CN=My Own Test CA)" in err


def test_concurrent_revocations_are_all_kept(ca_files: tuple[Path, Path]) -> None:
    """The record is read and written under a lock: no revocation is lost to a race."""
    database = RevocationDatabase(pki.load_certificate(ca_files[0]), ca_files[1])
    workers = [
        threading.Thread(
            target=lambda n=n: database.revoke(n, x509.ReasonFlags.superseded)  # type: ignore[misc]
        )
        for n in range(1, 21)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)
    assert sorted(r.serial for r in database.read().revoked) == list(range(1, 21))
    assert stat.S_IMODE(record_path(ca_files[1]).stat().st_mode) == 0o644


def test_deltas_need_a_base_with_a_freshest_crl(
    capsys: pytest.CaptureFixture[str], ca_files: tuple[Path, Path], tmp_path: Path
) -> None:
    delta = tmp_path / "delta.crl"
    code, _, err = mutls(capsys, "makecrl", *ca_args(ca_files), "-out", delta, "--delta")
    assert code == 2 and "no full CRL yet" in err
    mutls(capsys, "makecrl", *ca_args(ca_files), "-out", tmp_path / "root.crl")
    code, _, err = mutls(capsys, "makecrl", *ca_args(ca_files), "-out", delta, "--delta")
    assert code == 2 and "deltas need --freshest URL" in err and not delta.exists()


def test_delta_crls_are_applied_by_openssl(
    capsys: pytest.CaptureFixture[str], test_pki: PKIFiles, ca_files: tuple[Path, Path]
) -> None:
    """A full CRL with a Freshest CRL, then a delta listing what was revoked since: `openssl
    verify -use_deltas` refuses the certificate the delta revokes, and only that one."""
    directory = ca_files[0].parent
    full, delta = directory / "root.crl.pem", directory / "delta.crl.pem"
    mutls(capsys, "revoke", *ca_args(ca_files), test_pki.cert("revoked"))
    code, out, _ = mutls(
        capsys, "makecrl", *ca_args(ca_files), "-out", full,
        "--freshest", "http://ca.example/delta.crl",
    )  # fmt: skip
    assert code == 0, out
    mutls(capsys, "revoke", *ca_args(ca_files), test_pki.cert("poupou"), "--reason", "superseded")
    code, out, _ = mutls(capsys, "makecrl", *ca_args(ca_files), "-out", delta, "--delta")
    assert code == 0
    assert "delta CRL #2 (base #1) of CN=My Own Test CA, 1 revoked since #1" in out
    (base,) = pki.load_crls(full)
    (made,) = pki.load_crls(delta)
    assert base.extensions.get_extension_for_class(x509.FreshestCRL)
    assert (crl_number(made), delta_base(made)) == (2, 1)
    assert [r.serial_number for r in made] == [
        test_pki.identities["poupou"].certificate.serial_number
    ]

    def verify(name: str, *crls: Path) -> str:
        args = ["openssl", "verify", "-CAfile", str(test_pki.ca_cert), "-crl_check"]
        args += ["-use_deltas", *(a for c in crls for a in ("-CRLfile", str(c)))]
        done = subprocess.run(
            [*args, str(test_pki.cert(name))], capture_output=True, text=True, timeout=30
        )
        return done.stdout + done.stderr

    assert ": OK" in verify("poupou", full)
    assert "certificate revoked" in verify("poupou", full, delta)
    assert "certificate revoked" in verify("revoked", full, delta)


def test_makecert_puts_a_crl_distribution_point(
    capsys: pytest.CaptureFixture[str], ca_files: tuple[Path, Path], tmp_path: Path
) -> None:
    out_cert = tmp_path / "castor.pem"
    code, _, _ = mutls(
        capsys, "makecert", *ca_args(ca_files), "--client", "-n", "CN=castor",
        "--crl-url", "http://ca.example/root.crl", "-sv", tmp_path / "castor.key", out_cert,
    )  # fmt: skip
    assert code == 0
    points = (
        pki.load_certificate(out_cert)
        .extensions.get_extension_for_class(x509.CRLDistributionPoints)
        .value
    )
    assert [p.full_name for p in points] == [
        [x509.UniformResourceIdentifier("http://ca.example/root.crl")]
    ]
    code, _, err = mutls(
        capsys, "makecert", *ca_args(ca_files), "-n", "CN=x", "--crl-url", "root.crl",
        "-sv", tmp_path / "x.key", tmp_path / "x.pem",
    )  # fmt: skip
    assert code == 2 and "--crl-url root.crl: expected a URL" in err
