"""``mutls demo`` (what ``make demo`` runs): the article end to end, right or exit 1."""

from __future__ import annotations

from pathlib import Path

from helpers import run_mutls


def test_demo_plays_the_article(tmp_path: Path) -> None:
    result = run_mutls("demo", "--dir", tmp_path / "demo", timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for line in (
        "ok   plain HTTP: Hello from an insecure session.",
        "ok   HTTPS, no client certificate: Hello from an secure session. But who are you ?",
        "ok   HTTPS, poupou (valid): Hello CN=poupou, your certificate is valid",
        "ok   HTTPS, mallory (another CA): Hello CN=mallory, your certificate is NOT valid",
        "ok   HTTPS, oldtimer (expired): Hello CN=oldtimer, your certificate is NOT valid",
    ):
        assert line in out
    assert "FAIL" not in out
    assert "$ curl -sS --max-time 10 --cacert root.pem --cert poupou.pem https://localhost:" in out
    assert "$ mutls xsp --https-client-accept --port " in out
    # the files the printed commands use are kept with --dir
    for name in ("root.cer", "root.key", "pollux.p12", "poupou.pem", "mallory.pem"):
        assert (tmp_path / "demo" / name).exists()


def test_demo_refuses_a_directory_with_files(tmp_path: Path) -> None:
    (tmp_path / "root.key").write_text("someone's key")
    result = run_mutls("demo", "--dir", tmp_path)
    assert result.returncode == 2 and "not empty" in result.stderr
    assert (tmp_path / "root.key").read_text() == "someone's key"
