"""``mutls demo`` (what ``make demo`` runs): the article end to end, right or exit 1."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from helpers import run_mutls


@pytest.mark.needs("curl", "wget")
def test_demo_plays_the_article(tmp_path: Path, sandbox_home: Path) -> None:
    result = run_mutls("demo", "--dir", tmp_path / "demo", timeout=90)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for line in (
        "$ mutls makecert -r -n 'CN=My Own Test CA' -sv root.key root.cer",
        "$ mutls certmgr --add -c Trust root.cer",
        "$ mutls makecert -iv root.key -ic root.cer -eku -n CN=poupou -p12 poupou.p12 s3kr3t",
        "$ mutls pkcs12 -in poupou.p12 -out poupou.pem -nodes -passin pass:s3kr3t",
        "$ mutls xsp --https-client-require --port ",
        "ok   plain HTTP: Hello from an insecure session.",
        "ok   --https-client-accept, no certificate: Hello from an secure session. "
        "But who are you ?",
        "ok   --https-client-require, poupou.p12 (as hwr2.exe): "
        "Hello CN=poupou, your certificate is valid",
        "ok   --https-client-require, poupou.pem with wget: Hello CN=poupou, your certificate is",
        "ok   --https-client-require, mallory (another CA): Hello CN=mallory, your certificate "
        "is NOT valid (unable to get local issuer certificate)",
        "ok   --https-client-require, oldtimer (expired): Hello CN=oldtimer, your certificate "
        "is NOT valid (certificate has expired)",
        "ok   --https-client-require, no certificate: client certificate required",
        "# the article's four outcomes: insecure ok, anonymous ok, NOT valid ok, valid ok",
    ):
        assert line in out, line
    assert "FAIL" not in out
    demo = tmp_path / "demo"
    # the files the printed commands use are kept with --dir, keys private
    for name in ("root.cer", "root.key", "pollux.p12", "poupou.pem", "root.pem"):
        assert (demo / name).exists()
    assert os.stat(demo / "root.key").st_mode & 0o077 == 0
    # certmgr wrote into the demo's own store, not the user's
    assert list((demo / ".config" / "mutls" / "certs").rglob("*.pem"))
    assert not (sandbox_home / ".config" / "mutls").exists()


def test_demo_without_curl_or_wget_names_them_and_passes(
    tmp_path: Path, sandbox_home: Path
) -> None:
    # A bare machine: the fetches that need curl or wget are named, not called WRONG.
    empty = tmp_path / "bin"
    empty.mkdir()
    result = run_mutls("demo", "--dir", tmp_path / "demo", env={"PATH": str(empty)}, timeout=90)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "skip plain HTTP: curl is not installed" in out
    assert "skip --https-client-require, poupou.pem with wget: wget is not installed" in out
    assert (
        "# the article's four outcomes: insecure not run, anonymous ok, NOT valid ok, valid ok"
        in out
    )
    assert "# not run: curl, wget not installed (Debian: apt-get install curl wget)" in out
    assert "# every outcome run is the article's" in out
    assert "WRONG" not in out and "MISSING" not in out and "FAIL" not in out


def test_demo_refuses_a_directory_with_files(tmp_path: Path) -> None:
    (tmp_path / "root.key").write_text("someone's key")
    result = run_mutls("demo", "--dir", tmp_path)
    assert result.returncode == 2 and "not empty" in result.stderr
    assert (tmp_path / "root.key").read_text() == "someone's key"


def test_demo_directories_are_0700_under_umask_000(tmp_path: Path, sandbox_home: Path) -> None:
    demo = tmp_path / "new" / "demo"
    result = run_mutls("demo", "--dir", demo, timeout=90, umask=0)
    assert "WRONG" not in result.stdout, result.stdout + result.stderr
    made = [tmp_path / "new", demo, demo / ".config", demo / ".config/mutls/certs/Trust"]
    assert {p: oct(stat.S_IMODE(p.stat().st_mode)) for p in made} == dict.fromkeys(made, "0o700")
    assert stat.S_IMODE((demo / "root.key").stat().st_mode) == 0o600
