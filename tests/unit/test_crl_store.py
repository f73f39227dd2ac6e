"""``certmgr -add -crl`` keeps, per issuer, the newest full CRL and the newest delta on it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from mutls import cli, pki, store
from mutls.pki.crl import crl_number

from helpers import PKIFiles

URL = ("http://ca.example/delta.crl",)


def add(capsys: pytest.CaptureFixture[str], path: Path) -> tuple[int, str, str]:
    code = cli.main(["certmgr", "-add", "-crl", "Trust", str(path)])
    out, err = capsys.readouterr()
    return code, out, err


def numbers() -> list[tuple[int | None, bool]]:
    """(CRL number, is a delta) of the Trust store's CRLs, sorted."""
    return sorted(
        (crl_number(e.crl), "delta" in e.describe()) for e in store.open_store("Trust").crls()
    )


def write(tmp_path: Path, name: str, crl: object) -> Path:
    path = tmp_path / f"{name}.pem"
    pki.write_crl(path, crl, overwrite=True)  # type: ignore[arg-type]
    return path


def test_a_newer_full_crl_replaces_the_older_and_its_deltas(
    capsys: pytest.CaptureFixture[str], sandbox_home: Path, test_pki: PKIFiles, tmp_path: Path
) -> None:
    ca = test_pki.ca
    full3 = write(tmp_path, "full3", pki.build_crl(ca.certificate, ca.key, number=3, freshest=URL))
    delta4 = write(tmp_path, "delta4", pki.build_crl(ca.certificate, ca.key, number=4, delta_of=3))
    delta5 = write(tmp_path, "delta5", pki.build_crl(ca.certificate, ca.key, number=5, delta_of=3))
    full6 = write(tmp_path, "full6", pki.build_crl(ca.certificate, ca.key, number=6, freshest=URL))
    other = write(tmp_path, "other", pki.build_crl(test_pki.other_ca.certificate,
                                                   test_pki.other_ca.key, number=1))  # fmt: skip
    assert add(capsys, full3)[0] == 0
    assert add(capsys, other)[0] == 0  # another issuer: kept beside
    assert add(capsys, delta4)[0] == 0
    code, out, _ = add(capsys, delta5)
    assert code == 0 and "replaced: " in out and "delta CRL #4 (base #3)" in out
    assert numbers() == [(1, False), (3, False), (5, True)]
    code, out, _ = add(capsys, full6)
    assert code == 0
    assert out.count("replaced: ") == 2 and "full CRL #3" in out and "delta CRL #5" in out
    assert numbers() == [(1, False), (6, False)]


@pytest.mark.parametrize(
    ("held", "new", "message"),
    [
        ([("full", 5)], ("full", 3), "full CRL #3 of CN=My Own Test CA is not newer than the "
         "full CRL #5 already in Trust (by CRL number, then thisUpdate): nothing changed"),
        ([], ("delta", 4), "delta CRL #4 (base #3) of CN=My Own Test CA: no full CRL of that "
         "issuer in Trust to apply it to; add the full CRL #3 or a newer one first"),
        ([("full", 5)], ("delta", 4), "is older than the full CRL #5 already in Trust"),
        ([("full", 1)], ("delta", 4), "does not apply to the full CRL #1 in Trust: add the full "
         "CRL #3 or a newer one first"),
        ([("full", 3), ("delta", 6)], ("delta", 5), "delta CRL #5 (base #3) of CN=My Own Test CA "
         "is not newer than the delta CRL #6 (base #3) already in Trust"),
    ],
)  # fmt: skip
def test_an_older_crl_is_refused_with_one_line(
    capsys: pytest.CaptureFixture[str],
    sandbox_home: Path,
    test_pki: PKIFiles,
    tmp_path: Path,
    held: list[tuple[str, int]],
    new: tuple[str, int],
    message: str,
) -> None:
    ca = test_pki.ca

    def made(kind: str, number: int) -> Path:
        delta_of = 3 if kind == "delta" else None
        crl = pki.build_crl(ca.certificate, ca.key, number=number, delta_of=delta_of)
        return write(tmp_path, f"{kind}{number}", crl)

    for kind, number in held:
        assert add(capsys, made(kind, number))[0] == 0
    before = numbers()
    code, out, err = add(capsys, made(*new))
    assert code == 2 and out == ""
    assert message in err and err.count("\n") == 1
    assert numbers() == before


def test_same_number_later_this_update_wins(
    capsys: pytest.CaptureFixture[str], sandbox_home: Path, test_pki: PKIFiles, tmp_path: Path
) -> None:
    ca, now = test_pki.ca, dt.datetime.now(dt.UTC).replace(microsecond=0)
    first = pki.build_crl(ca.certificate, ca.key, number=7, this_update=now - dt.timedelta(hours=2))
    later = pki.build_crl(ca.certificate, ca.key, number=7, this_update=now - dt.timedelta(hours=1))
    assert add(capsys, write(tmp_path, "later", later))[0] == 0
    assert add(capsys, write(tmp_path, "first", first))[0] == 2
    assert add(capsys, write(tmp_path, "later", later))[1].startswith("already in Trust")
    assert [e.crl for e in store.open_store("Trust").crls()] == [later]
