"""``--install-root`` / ``--uninstall-root`` / ``--install-p12`` with the real tools, sandboxed.

update-ca-certificates takes ``--certsconf``, ``--certsdir``, ``--localcertsdir``,
``--etccertsdir`` and ``--hooksdir`` (read from /usr/sbin/update-ca-certificates and its man
page), so the real script runs against directories under tmp_path and never touches /etc.
NSS databases and the Java keystore live under tmp_path (or the sandboxed HOME) too.
"""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from mutls import pki
from mutls.store.tools import entry_name

from helpers import PASSWORD, PKIFiles, run_mutls
from tools import need

pytestmark = pytest.mark.interop


@pytest.fixture
def system_store(tmp_path: Path, test_pki: PKIFiles) -> dict[str, Path]:
    """A sandboxed Debian CA setup holding one 'distribution' CA, and the env that points at it."""
    need("update-ca-certificates")
    dirs = {name: tmp_path / "sys" / name for name in ("share", "local", "etc", "hooks")}
    for directory in dirs.values():
        directory.mkdir(parents=True)
    # A CA shipped "by the distribution", so the bundle is rebuilt (not left alone) on removal.
    distro = test_pki.other_ca.certificate.public_bytes(serialization.Encoding.PEM)
    (dirs["share"] / "distro.crt").write_bytes(distro)
    conf = tmp_path / "sys" / "ca-certificates.conf"
    conf.write_text("distro.crt\n")
    dirs["conf"] = conf
    return dirs


def system_env(dirs: dict[str, Path]) -> dict[str, str]:
    command = (
        f"update-ca-certificates --certsconf {dirs['conf']} --certsdir {dirs['share']} "
        f"--localcertsdir {dirs['local']} --etccertsdir {dirs['etc']} --hooksdir {dirs['hooks']}"
    )
    return {"MUTLS_SYSTEM_CA_DIR": str(dirs["local"]), "MUTLS_UPDATE_CA_CERTIFICATES": command}


def nss_has(db: Path, nickname: str) -> bool:
    result = subprocess.run(
        ["certutil", "-L", "-d", f"sql:{db}", "-n", nickname],
        capture_output=True,
        timeout=60,
        check=False,
    )
    return result.returncode == 0


def keystore_has(keystore: Path, alias: str) -> bool:
    result = subprocess.run(
        ["keytool", "-list", "-keystore", str(keystore), "-storepass", "changeit", "-alias", alias],
        capture_output=True,
        timeout=60,
        check=False,
    )
    return result.returncode == 0


def test_system_store_install_and_uninstall(
    sandbox_home: Path, test_pki: PKIFiles, system_store: dict[str, Path]
) -> None:
    root = test_pki.ca.certificate
    name = entry_name(root)
    env = system_env(system_store)
    bundle = system_store["etc"] / "ca-certificates.crt"
    root_pem = root.public_bytes(serialization.Encoding.PEM)

    result = run_mutls("certmgr", "--install-root", test_pki.ca_cert, "--system", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"system {system_store['local'] / (name + '.crt')}: installed"
    assert (system_store["local"] / f"{name}.crt").read_bytes() == root_pem
    assert (system_store["etc"] / f"{name}.pem").resolve() == system_store["local"] / f"{name}.crt"
    assert root_pem in bundle.read_bytes()

    again = run_mutls("certmgr", "--install-root", test_pki.ca_cert, "--system", env=env)
    assert again.returncode == 0 and "already installed" in again.stdout

    result = run_mutls("certmgr", "--uninstall-root", test_pki.ca_cert, "--system", env=env)
    assert result.returncode == 0, result.stderr
    assert "removed" in result.stdout
    assert not (system_store["local"] / f"{name}.crt").exists()
    assert not (system_store["etc"] / f"{name}.pem").is_symlink()
    assert root_pem not in bundle.read_bytes()
    # exactly undone: the distribution's CA is still there
    assert test_pki.other_ca.certificate.public_bytes(serialization.Encoding.PEM) in (
        bundle.read_bytes()
    )


def test_nss_and_java_install_and_uninstall(
    sandbox_home: Path, test_pki: PKIFiles, tmp_path: Path
) -> None:
    need("certutil")
    need("keytool")
    # A Firefox profile as Firefox leaves it (cert9.db), found by discovery under HOME.
    profile = sandbox_home / ".mozilla" / "firefox" / "abcd1234.default-release"
    profile.mkdir(parents=True)
    subprocess.run(
        ["certutil", "-N", "-d", f"sql:{profile}", "--empty-password"], check=True, timeout=60
    )
    keystore = tmp_path / "truststore.p12"
    chromium = sandbox_home / ".pki" / "nssdb"
    name = entry_name(test_pki.ca.certificate)
    args = ["--nss", "--java", "--java-keystore", keystore]

    result = run_mutls("certmgr", "--install-root", test_pki.ca_cert, *args)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines == [
        f"nss sql:{chromium}: installed (as {name!r})",
        f"nss sql:{profile}: installed (as {name!r})",
        f"java {keystore}: installed (alias {name!r})",
    ]
    assert nss_has(chromium, name) and nss_has(profile, name)  # Chromium's db was created
    assert keystore_has(keystore, name)

    result = run_mutls("certmgr", "--uninstall-root", test_pki.ca_cert, *args)
    assert result.returncode == 0, result.stderr
    assert [line.split(": ")[1].split(" ")[0] for line in result.stdout.splitlines()] == [
        "removed"
    ] * 3
    assert not nss_has(chromium, name) and not nss_has(profile, name)
    assert not keystore_has(keystore, name)

    result = run_mutls("certmgr", "--uninstall-root", test_pki.ca_cert, *args)
    assert result.returncode == 0 and result.stdout.count("not installed") == 3


def test_directories_made_for_installs_ignore_the_umask(
    sandbox_home: Path, test_pki: PKIFiles, tmp_path: Path, system_store: dict[str, Path]
) -> None:
    need("certutil")
    # Chromium's ~/.pki/nssdb is the user's: 0700; the local CA directory is read by the
    # system's tools: 0755, never writable by others. Both made under umask 000.
    local = tmp_path / "new" / "local-ca"
    env = {**system_env({**system_store, "local": local}), "MUTLS_SYSTEM_CA_DIR": str(local)}
    result = run_mutls(
        "certmgr", "--install-root", test_pki.ca_cert, "--nss", "--system", env=env, umask=0
    )
    assert result.returncode == 0, result.stderr
    made = {
        sandbox_home / ".pki": 0o700,
        sandbox_home / ".pki" / "nssdb": 0o700,
        local.parent: 0o755,
        local: 0o755,
    }
    assert {p: stat.S_IMODE(p.stat().st_mode) for p in made} == made


def test_a_missing_tool_names_its_package(
    sandbox_home: Path, test_pki: PKIFiles, tmp_path: Path
) -> None:
    empty = tmp_path / "empty-path"
    empty.mkdir()
    result = run_mutls(
        "certmgr",
        "--install-root",
        test_pki.ca_cert,
        "--nss",
        "--java",
        env={"PATH": str(empty)},
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "certutil not found (install it: apt-get install libnss3-tools)" in result.stderr
    assert "keytool not found (install it: apt-get install default-jre-headless)" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 2  # one line per target


def test_missing_tools_are_skipped_when_no_target_was_named(
    sandbox_home: Path, test_pki: PKIFiles, tmp_path: Path, system_store: dict[str, Path]
) -> None:
    # Only update-ca-certificates (and what it runs) is reachable: NSS and Java are skipped.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("update-ca-certificates", "sh", "sed", "find", "openssl", "basename", "ln",
                 "readlink", "mktemp", "rm", "wc", "chmod", "mv", "cat", "run-parts"):  # fmt: skip
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    env = {**system_env(system_store), "PATH": str(bin_dir)}
    result = run_mutls("certmgr", "--install-root", test_pki.ca_cert, env=env)
    assert result.returncode == 0, result.stderr
    assert "system " in result.stdout and ": installed" in result.stdout
    assert "skipped (certutil not found" in result.stdout
    assert "skipped (keytool not found" in result.stdout


def test_p12_into_nss(sandbox_home: Path, test_pki: PKIFiles, tmp_path: Path) -> None:
    need("pk12util")
    db = tmp_path / "nssdb"
    result = run_mutls(
        "certmgr", "--install-p12", test_pki.p12("poupou"), "-p", PASSWORD, "--nssdb", db
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"nss sql:{db}: imported (poupou.p12)"
    keys = subprocess.run(
        ["certutil", "-K", "-d", f"sql:{db}"], capture_output=True, text=True, timeout=60
    )
    assert "poupou" in keys.stdout  # the key is there, so a browser can present it
    exported = subprocess.run(
        ["certutil", "-L", "-d", f"sql:{db}", "-n", "poupou", "-a"],
        capture_output=True,
        timeout=60,
        check=True,
    )
    nss_cert = pki.parse_certificates(exported.stdout, "certutil -L -a")[0]
    assert nss_cert == pki.load_certificate(test_pki.cert("poupou"))


def test_p12_into_nss_with_a_wrong_password_touches_nothing(
    sandbox_home: Path, test_pki: PKIFiles, tmp_path: Path
) -> None:
    db = tmp_path / "nssdb"
    result = run_mutls(
        "certmgr", "--install-p12", test_pki.p12("poupou"), "-p", "wrong", "--nssdb", db
    )
    assert result.returncode == 2
    assert result.stderr.strip().endswith("poupou.p12: wrong password")
    assert not db.exists()
