"""``mutls certmgr``: Mono's verbs as the article writes them, and one clear line for bad input."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from mutls import cli, pki, store

from helpers import FIXTURES, PASSWORD, PKIFiles, run_mutls


def certmgr(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    """Run ``mutls certmgr ARGS`` in-process: (exit code, stdout, stderr)."""
    code = cli.main(["certmgr", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def store_files(name: str, **where: bool) -> list[str]:
    directory = store.open_store(name, **where).directory
    return sorted(p.name for p in directory.rglob("*")) if directory.exists() else []


@pytest.fixture
def root_cer(test_pki: PKIFiles, tmp_path: Path) -> Path:
    """The test CA as a DER ``.cer``, as the article's makecert writes it."""
    path = tmp_path / "root.cer"
    pki.write_certificate(path, test_pki.ca.certificate)
    return path


def test_the_article_command_verbatim(sandbox_home: Path, root_cer: Path) -> None:
    result = run_mutls("certmgr", "--add", "-c", "Trust", root_cer)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("added to Trust: ")
    assert store.server_trust_anchors() == [pki.load_certificate(root_cer)]


def test_duplicate_add_says_so_and_changes_nothing(
    capsys: pytest.CaptureFixture[str], sandbox_home: Path, root_cer: Path
) -> None:
    assert certmgr(capsys, "-add", "-c", "Trust", root_cer)[0] == 0
    before = store_files("Trust")
    code, out, _ = certmgr(capsys, "-add", "-c", "trust", root_cer)
    assert code == 0
    assert "already in Trust" in out and "nothing changed" in out
    assert store_files("Trust") == before


@pytest.mark.parametrize(
    "argv",
    [
        ["-list", "-c", "Trust", "-v"],  # Mono silently drops this -v
        ["-v", "-list", "-c", "Trust"],
        ["Trust", "-list", "-v"],
        ["--list", "--verbose", "--store", "trust"],
    ],
)
def test_options_in_any_order(
    capsys: pytest.CaptureFixture[str],
    sandbox_home: Path,
    root_cer: Path,
    argv: list[str],
) -> None:
    certmgr(capsys, "-add", "-c", "Trust", root_cer)
    code, out, _ = certmgr(capsys, *argv)
    assert code == 0
    assert out.splitlines()[0].endswith("CN=My Own Test CA")
    assert "SHA-256:" in out and "CA:          yes" in out


def test_file_before_store_still_works(
    capsys: pytest.CaptureFixture[str], sandbox_home: Path, root_cer: Path
) -> None:
    assert certmgr(capsys, "-add", root_cer, "-c", "Trust")[0] == 0
    assert len(store.open_store("Trust").certificates()) == 1


def test_put_der_and_pem_round_trip(
    capsys: pytest.CaptureFixture[str], sandbox_home: Path, root_cer: Path, tmp_path: Path
) -> None:
    certmgr(capsys, "-add", "-c", "Trust", root_cer)
    der, pem = tmp_path / "out.cer", tmp_path / "out.pem"
    assert certmgr(capsys, "-put", "-c", "Trust", "My Own Test CA", der)[0] == 0
    assert der.read_bytes() == root_cer.read_bytes()
    assert certmgr(capsys, "-put", "-c", "-pem", "Trust", "my own test ca", pem)[0] == 0
    assert pem.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    for exported, name in ((der, "CA"), (pem, "AddressBook")):
        assert certmgr(capsys, "-add", "-c", name, exported)[0] == 0
        (entry,) = store.open_store(name).certificates()
        assert entry.certificate == pki.load_certificate(root_cer)
    code, _, err = certmgr(capsys, "-put", "-c", "Trust", "My Own Test CA", der)
    assert code == 2 and "already exists" in err
    assert certmgr(capsys, "-put", "-c", "Trust", "My Own Test CA", der, "--force")[0] == 0


def test_del_by_prefix_and_ambiguity_lists_candidates(
    capsys: pytest.CaptureFixture[str], sandbox_home: Path, test_pki: PKIFiles
) -> None:
    certmgr(capsys, "-add", "-c", "AddressBook", test_pki.cert("poupou"), test_pki.cert("revoked"))
    twin = test_pki.ca.issue_client("CN=poupou").certificate
    store.open_store("AddressBook").add(twin)
    code, _, err = certmgr(capsys, "-del", "-c", "AddressBook", "poupou")
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert "matches 2 certificates" in err and pki.fingerprint(twin)[:16] in err
    code, out, _ = certmgr(capsys, "-del", "-c", "AddressBook", pki.fingerprint(twin)[:10])
    assert code == 0 and out.startswith("removed from AddressBook: ")
    assert twin not in store.open_store("AddressBook")
    # each .pem holds the leaf and its root (a bundle): both are added, the root once
    names = {e.names for e in store.open_store("AddressBook").certificates()}
    assert names == {("poupou",), ("revoked",), ("My Own Test CA",)}


@pytest.mark.parametrize("how", ["argv", "pass-file", "pass-env"])
def test_p12_goes_into_my_with_its_key_0600(
    capsys: pytest.CaptureFixture[str],
    sandbox_home: Path,
    test_pki: PKIFiles,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    how: str,
) -> None:
    secret = tmp_path / "pass.txt"
    secret.write_text(PASSWORD + "\n")
    monkeypatch.setenv("P12_PASS", PASSWORD)
    password = {
        "argv": ["-p", PASSWORD],
        "pass-file": ["--pass-file", str(secret)],
        "pass-env": ["--pass-env", "P12_PASS"],
    }[how]
    code, out, _ = certmgr(capsys, "-add", "-c", "My", test_pki.p12("via-intermediate"), *password)
    assert code == 0, out
    entry = store.open_store("My").find("castor")
    assert entry.key_path is not None and stat.S_IMODE(entry.key_path.stat().st_mode) == 0o600
    identity = test_pki.identities["via-intermediate"]
    assert pki.key_matches_certificate(pki.load_private_key(entry.key_path), identity.certificate)
    # the P12's intermediate helps build chains; its root is never trusted silently
    assert store.open_store("CA").certificates()[0].certificate == test_pki.intermediate.certificate
    assert store.open_store("Trust").certificates() == []
    assert "was not trusted" in out


def test_crl_add_and_list(
    capsys: pytest.CaptureFixture[str], sandbox_home: Path, test_pki: PKIFiles
) -> None:
    assert certmgr(capsys, "-add", "-crl", "Trust", test_pki.crl_path)[0] == 0
    code, out, _ = certmgr(capsys, "-list", "-crl", "Trust", "-v")
    assert code == 0 and "CRL #" in out and "of CN=My Own Test CA" in out
    revoked = test_pki.identities["revoked"].certificate.serial_number
    assert f"{revoked:X}" in out
    assert len(store.client_trust().crls) == 1


def test_machine_and_mono_stores(
    capsys: pytest.CaptureFixture[str], sandbox_home: Path, root_cer: Path
) -> None:
    assert certmgr(capsys, "-add", "-c", "-m", "Trust", root_cer)[0] == 0
    assert store.open_store("Trust").certificates() == []
    assert len(store.open_store("Trust", machine=True).certificates()) == 1
    assert certmgr(capsys, "-add", "-c", "Trust", root_cer, "--mono")[0] == 0
    cert = pki.load_certificate(root_cer)
    assert store_files("Trust", mono=True) == [store.mono_file_name(cert)]
    code, out, _ = certmgr(capsys, "-list", "-c", "Trust", "--mono", "-v")
    # an ECDSA root: Mono has no hash for it, and the line says what that means
    assert store.mono_hash(cert) is None
    assert code == 0 and "Mono hash:   none (Mono hashes only RSA and DSA signatures" in out


def test_lists_a_mono_store_made_by_mono(
    capsys: pytest.CaptureFixture[str], sandbox_home: Path
) -> None:
    mono_root = pki.load_certificate(FIXTURES / "root.cer")
    trust = sandbox_home / ".config/.mono/certs/Trust"
    trust.mkdir(parents=True)
    (trust / store.mono_file_name(mono_root)).write_bytes((FIXTURES / "root.cer").read_bytes())
    code, out, _ = certmgr(capsys, "-list", "-c", "--mono", "Trust")
    assert code == 0 and out.strip().endswith("CN=My Own Test CA")
    # `-del` takes the hash Mono's own certmgr -list printed ("Unique Hash")
    code, _, _ = certmgr(capsys, "-del", "-c", "--mono", "Trust", store.mono_hash(mono_root))
    assert code == 0 and not any(trust.iterdir())


def test_non_ca_into_trust_warns(
    capsys: pytest.CaptureFixture[str], sandbox_home: Path, test_pki: PKIFiles
) -> None:
    code, _, err = certmgr(capsys, "-add", "-c", "Trust", test_pki.cert("poupou"))
    assert code == 0 and "warning: CN=poupou is not a CA certificate" in err
    code, _, err = certmgr(capsys, "-add", "-c", "Trust", FIXTURES / "root.cer")
    assert code == 0 and "has no basicConstraints" in err


# -- directory modes: the umask decides nothing -------------------------------------------------


def modes(base: Path, *paths: str) -> dict[str, str]:
    """``{path: mode in octal}``, so a failure shows every mode at once."""
    return {p: oct(stat.S_IMODE((base / p).stat().st_mode)) for p in paths}


def test_user_stores_are_0700_under_umask_000(
    sandbox_home: Path, test_pki: PKIFiles, root_cer: Path
) -> None:
    # $XDG_CONFIG_HOME does not exist yet: it is made too. A subprocess, as umask is per process.
    for argv in (
        ["-add", "-c", "Trust", root_cer],
        ["-add", "-crl", "Trust", test_pki.crl_path],
        ["-add", "-c", "My", test_pki.p12("via-intermediate"), "-p", PASSWORD],  # My and CA
        ["-add", "-c", "Trust", root_cer, "--mono"],
    ):
        result = run_mutls("certmgr", *argv, umask=0)
        assert result.returncode == 0, result.stderr
    made = [".config", ".config/mutls", ".config/mutls/certs", ".config/.mono"]
    made += [f".config/mutls/certs/{s}" for s in ("Trust", "Trust/crl", "My", "CA")]
    made += [".config/.mono/certs", ".config/.mono/certs/Trust"]
    assert modes(sandbox_home, *made) == dict.fromkeys(made, "0o700")
    # files keep their modes: certificates 0644, keys 0600
    my = store.open_store("My").certificates()[0]
    assert my.key_path is not None
    assert modes(my.path.parent, my.path.name, my.key_path.name) == {
        my.path.name: "0o644",
        my.key_path.name: "0o600",
    }


def test_machine_stores_are_never_writable_by_others_under_umask_000(
    sandbox_home: Path, test_pki: PKIFiles, root_cer: Path
) -> None:
    # every user's server reads the machine's Trust, so 0755; its My holds keys, so 0700
    machine = store.store_root(machine=True)
    for argv in (
        ["-add", "-c", "-m", "Trust", root_cer],
        ["-add", "-c", "-m", "My", test_pki.p12("poupou"), "-p", PASSWORD],
    ):
        result = run_mutls("certmgr", *argv, umask=0)
        assert result.returncode == 0, result.stderr
    assert modes(machine.parent, machine.name, f"{machine.name}/Trust", f"{machine.name}/My") == {
        machine.name: "0o755",
        f"{machine.name}/Trust": "0o755",
        f"{machine.name}/My": "0o700",
    }


# -- bad input: one line, non-zero, store unchanged ----------------------------------------------


def _one_line_failure(code: int, out: str, err: str) -> str:
    assert code != 0
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    return err


def test_unknown_store(
    capsys: pytest.CaptureFixture[str], sandbox_home: Path, root_cer: Path
) -> None:
    err = _one_line_failure(*certmgr(capsys, "-add", "-c", "Trusted", root_cer))
    assert "unknown store 'Trusted'" in err
    assert not (sandbox_home / ".config/mutls").exists()


def test_corrupt_file(
    capsys: pytest.CaptureFixture[str], sandbox_home: Path, root_cer: Path, tmp_path: Path
) -> None:
    corrupt = tmp_path / "corrupt.cer"
    corrupt.write_bytes(root_cer.read_bytes()[:-40])
    # the good file is read first, yet nothing is written: all input is read before any write
    err = _one_line_failure(*certmgr(capsys, "-add", "-c", "Trust", root_cer, corrupt))
    assert f"{corrupt}: not a certificate, or corrupt" in err
    assert store_files("Trust") == []


def test_wrong_p12_password(
    capsys: pytest.CaptureFixture[str], sandbox_home: Path, test_pki: PKIFiles
) -> None:
    p12 = test_pki.p12("poupou")
    err = _one_line_failure(*certmgr(capsys, "-add", "-c", "My", p12, "-p", "wrong"))
    assert f"{p12}: wrong password" in err
    assert store_files("My") == []


def test_read_only_store_directory(
    capsys: pytest.CaptureFixture[str], sandbox_home: Path, root_cer: Path
) -> None:
    # Tests run as root, so chmod would not stop a write: make the store path a regular file.
    trust = store.open_store("Trust").directory
    trust.parent.mkdir(parents=True)
    trust.write_text("I am a file")
    err = _one_line_failure(*certmgr(capsys, "-add", "-c", "Trust", root_cer))
    assert f"{trust}: is not a directory" in err
    assert trust.read_text() == "I am a file"


def test_machine_store_where_nothing_can_be_written(
    capsys: pytest.CaptureFixture[str],
    sandbox_home: Path,
    root_cer: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # /proc refuses new directories even to root.
    monkeypatch.setenv("MUTLS_MACHINE_STORE", "/proc/mutls-certs")
    err = _one_line_failure(*certmgr(capsys, "-add", "-c", "-m", "Trust", root_cer))
    assert "/proc/mutls-certs/Trust: cannot create the Trust store" in err
    assert not Path("/proc/mutls-certs").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "give an action"),
        (["-list"], "which store?"),
        (["-add", "-c", "Trust"], "-add: which file?"),
        (["-del", "-c", "Trust"], "expected -del -c STORE SELECTOR"),
        (["-add", "-ctl", "Trust", "x.ctl"], "certificate trust lists are not supported"),
        (["-add", "-list", "Trust"], "not allowed with argument"),
        (["-lst", "-c", "Trust", "--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_usage_errors(
    capsys: pytest.CaptureFixture[str], sandbox_home: Path, argv: list[str], message: str
) -> None:
    err = _one_line_failure(*certmgr(capsys, *argv))
    assert message in err


def test_missing_selector_lists_what_the_store_holds(
    capsys: pytest.CaptureFixture[str], sandbox_home: Path, root_cer: Path
) -> None:
    certmgr(capsys, "-add", "-c", "Trust", root_cer)
    err = _one_line_failure(*certmgr(capsys, "-del", "-c", "Trust", "nobody"))
    assert "matches 'nobody' (it holds: " in err and "CN=My Own Test CA" in err
    assert len(store.open_store("Trust").certificates()) == 1


def test_help_shows_the_article_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        cli.main(["certmgr", "--help"])
    assert done.value.code == 0
    assert "-add -c Trust root.cer" in capsys.readouterr().out


def test_an_unreadable_input_is_a_usage_level_error(
    capsys: pytest.CaptureFixture[str], sandbox_home: Path, tmp_path: Path
) -> None:
    err = _one_line_failure(*certmgr(capsys, "-add", "-c", "CA", tmp_path / "absent.cer"))
    assert "absent.cer: no such certificate" in err


def test_import_mono_brings_the_article_trust_along(
    capsys: pytest.CaptureFixture[str], sandbox_home: Path, test_pki: PKIFiles
) -> None:
    mono_root = pki.load_certificate(FIXTURES / "root.cer")
    mono_certs = sandbox_home / ".config/.mono/certs"
    for name, cert in (("Trust", mono_root), ("CA", test_pki.intermediate.certificate)):
        (mono_certs / name).mkdir(parents=True)
        (mono_certs / name / store.mono_file_name(cert)).write_bytes(
            cert.public_bytes(serialization.Encoding.DER)
        )
    code, out, err = certmgr(capsys, "--import-mono")
    assert code == 0
    assert "has no basicConstraints" in err  # Mono's root, said once, plainly
    assert store.server_trust_anchors() == [mono_root]
    assert store.client_trust().intermediates == (test_pki.intermediate.certificate,)
    code, out, _ = certmgr(capsys, "--import-mono", "Trust")
    assert code == 0 and out.startswith("already in Trust")
