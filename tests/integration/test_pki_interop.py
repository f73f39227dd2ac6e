"""What ``mutls makecert`` and ``mutls pkcs12`` make is accepted by the real tools.

The article's three commands run verbatim as subprocesses; then OpenSSL verifies the chains for
the purposes a TLS server and client check, and OpenSSL, Java's keytool and NSS's pk12util open
the PKCS#12 files, modern and legacy, without being told which.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from helpers import ARTICLE_MAKECERT, FIXTURES, PASSWORD, run_mutls
from tools import need


def tool(*args: str | Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def mutls_ok(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    done = run_mutls(*args, cwd=cwd)
    assert done.returncode == 0, done.stderr
    return done


@pytest.fixture(scope="module")
def article(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The article's PKI, made by the CLI, plus a --legacy and an AES-256 bundle and PEM copies
    for openssl."""
    need("openssl")
    work = tmp_path_factory.mktemp("article")
    for command in ARTICLE_MAKECERT:
        mutls_ok("makecert", *command, cwd=work)
    mutls_ok(
        "makecert",
        "-iv",
        "root.key",
        "-ic",
        "root.cer",
        "--client",
        "--legacy",
        "-n",
        "CN=oldie",
        "-p12",
        "legacy.p12",
        PASSWORD,
        cwd=work,
    )
    mutls_ok(
        "makecert", "-iv", "root.key", "-ic", "root.cer", "--client", "--p12-cipher", "aes256",
        "-n", "CN=modern", "-p12", "modern.p12", PASSWORD, cwd=work,
    )  # fmt: skip
    for name in ("pollux", "poupou", "legacy"):
        mutls_ok(
            "pkcs12",
            "-in",
            f"{name}.p12",
            "-out",
            f"{name}.pem",
            "-nodes",
            "-passin",
            f"pass:{PASSWORD}",
            cwd=work,
        )
    converted = tool(
        "openssl", "x509", "-inform", "DER", "-in", work / "root.cer", "-out", work / "root.pem"
    )
    assert converted.returncode == 0, converted.stderr
    return work


def openssl_verify(ca: Path, cert: Path, purpose: str, *untrusted: Path) -> str:
    extra = [a for u in untrusted for a in ("-untrusted", str(u))]
    done = tool(
        "openssl", "verify", "-x509_strict", "-CAfile", ca, "-purpose", purpose, *extra, cert
    )
    return done.stdout + done.stderr


@pytest.mark.parametrize("name", ["pollux", "poupou"])
@pytest.mark.parametrize("purpose", ["sslserver", "sslclient"])
def test_openssl_verifies_the_articles_certificates(article: Path, name: str, purpose: str) -> None:
    # the bare -eku of the article means both purposes, as its text says of each certificate
    result = openssl_verify(article / "root.pem", article / f"{name}.pem", purpose)
    assert f"{name}.pem: OK" in result, result


def test_openssl_checks_the_host_name_from_the_san(article: Path) -> None:
    done = tool(
        "openssl",
        "verify",
        "-CAfile",
        article / "root.pem",
        "-verify_hostname",
        "pollux",
        article / "pollux.pem",
    )
    assert "pollux.pem: OK" in done.stdout, done.stdout + done.stderr
    done = tool(
        "openssl",
        "verify",
        "-CAfile",
        article / "root.pem",
        "-verify_hostname",
        "castor",
        article / "pollux.pem",
    )
    assert "hostname mismatch" in (done.stdout + done.stderr).lower()


def test_openssl_refuses_a_client_only_cert_as_a_server(article: Path) -> None:
    result = openssl_verify(article / "root.pem", article / "legacy.pem", "sslserver")
    assert "unsuitable certificate purpose" in result, result
    assert "legacy.pem: OK" in openssl_verify(
        article / "root.pem", article / "legacy.pem", "sslclient"
    )


def test_intermediate_ca_chain(article: Path) -> None:
    mutls_ok(
        "makecert",
        "-iv",
        "root.key",
        "-ic",
        "root.cer",
        "--ca",
        "-h",
        "0",
        "-n",
        "CN=Intermediate",
        "-sv",
        "inter.key",
        "inter.pem",
        "--force",
        cwd=article,
    )
    mutls_ok(
        "makecert",
        "-iv",
        "inter.key",
        "-ic",
        "inter.pem",
        "--server",
        "-n",
        "CN=deep",
        "-sv",
        "deep.key",
        "deep.pem",
        "--force",
        cwd=article,
    )
    result = openssl_verify(
        article / "root.pem", article / "deep.pem", "sslserver", article / "inter.pem"
    )
    assert "deep.pem: OK" in result, result


#: how each bundle of the fixture is encrypted: makecert's default is 3DES, as Mono reads it.
P12_CIPHERS = {
    "pollux": "pbeWithSHA1And3-KeyTripleDES-CBC",
    "legacy": "pbeWithSHA1And3-KeyTripleDES-CBC",
    "modern": "AES-256-CBC",
}


@pytest.mark.parametrize("name", P12_CIPHERS)
def test_openssl_pkcs12_reads_ours_without_legacy_flag(article: Path, name: str) -> None:
    done = tool(
        "openssl",
        "pkcs12",
        "-info",
        "-noout",
        "-in",
        article / f"{name}.p12",
        "-passin",
        f"pass:{PASSWORD}",
    )
    assert done.returncode == 0, done.stderr
    assert "Shrouded Keybag" in done.stderr  # MAC checked and every bag walked
    assert P12_CIPHERS[name] in done.stdout + done.stderr


@pytest.mark.parametrize("name", P12_CIPHERS)
def test_java_keytool_reads_ours(article: Path, name: str) -> None:
    need("keytool")
    done = tool(
        "keytool",
        "-list",
        "-storetype",
        "PKCS12",
        "-keystore",
        article / f"{name}.p12",
        "-storepass",
        PASSWORD,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PrivateKeyEntry" in done.stdout


@pytest.mark.parametrize("name", P12_CIPHERS)
def test_nss_pk12util_reads_ours(article: Path, name: str, tmp_path: Path) -> None:
    need("pk12util")
    need("certutil")
    made = tool("certutil", "-N", "-d", f"sql:{tmp_path}", "--empty-password")
    assert made.returncode == 0, made.stderr
    done = tool("pk12util", "-l", article / f"{name}.p12", "-W", PASSWORD, "-d", f"sql:{tmp_path}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Certificate(has private key)" in done.stdout


def test_export_is_read_by_openssl(article: Path) -> None:
    mutls_ok(
        "pkcs12",
        "-export",
        "-in",
        "poupou.pem",
        "-out",
        "poupou-again.p12",
        "-legacy",
        "-passout",
        "pass:again",
        "--force",
        cwd=article,
    )
    done = tool(
        "openssl",
        "pkcs12",
        "-info",
        "-noout",
        "-in",
        article / "poupou-again.p12",
        "-passin",
        "pass:again",
    )
    assert done.returncode == 0 and "pbeWithSHA1And3-KeyTripleDES-CBC" in done.stderr


def test_we_read_openssls_rc2_legacy_bundle(article: Path) -> None:
    made = tool(
        "openssl",
        "pkcs12",
        "-export",
        "-legacy",
        "-in",
        article / "poupou.pem",
        "-out",
        article / "rc2.p12",
        "-passout",
        f"pass:{PASSWORD}",
    )
    if made.returncode != 0:
        pytest.skip(f"this openssl cannot write RC2 (no legacy provider): {made.stderr.strip()}")
    done = mutls_ok(
        "pkcs12", "-in", "rc2.p12", "-info", "-nokeys", "-passin", f"pass:{PASSWORD}", cwd=article
    )
    assert "RC2-40" in done.stderr and "subject=CN=poupou" in done.stdout


def test_monos_pki_carries_over_and_the_warning_is_true(tmp_path: Path) -> None:
    done = mutls_ok(
        "makecert",
        "-iv",
        FIXTURES / "root.key",
        "-ic",
        FIXTURES / "root.cer",
        "-eku",
        "-n",
        "CN=carried",
        "-sv",
        "carried.key",
        "carried.pem",
        cwd=tmp_path,
    )
    assert "verifiers will reject chains" in done.stderr
    mono_root = tmp_path / "mono-root.pem"
    tool("openssl", "x509", "-inform", "DER", "-in", FIXTURES / "root.cer", "-out", mono_root)
    # the signature is sound, the Mono root is not: what the warning said OpenSSL would do
    result = openssl_verify(mono_root, tmp_path / "carried.pem", "sslclient")
    assert "OK" not in result.split(":")[-1]
    assert "invalid CA certificate" in result or "too small" in result, result
    # and the way out the warning names works: a fresh root, then a fresh client certificate
    mutls_ok(
        "makecert", "-r", "-n", "CN=New Root", "-sv", "new-root.key", "new-root.pem", cwd=tmp_path
    )
    mutls_ok(
        "makecert",
        "-iv",
        "new-root.key",
        "-ic",
        "new-root.pem",
        "--client",
        "-n",
        "CN=carried",
        "-sv",
        "c2.key",
        "c2.pem",
        cwd=tmp_path,
    )
    assert "c2.pem: OK" in openssl_verify(
        tmp_path / "new-root.pem", tmp_path / "c2.pem", "sslclient"
    )


@pytest.mark.parametrize("cipher", ["3des", "aes256"])
def test_nss_pk12util_refuses_an_ed25519_key(article: Path, tmp_path: Path, cipher: str) -> None:
    # docs/pki.md's one exception: NSS lists such a P12 but cannot import its key.
    need("pk12util")
    need("certutil")
    args = ["-iv", "root.key", "-ic", "root.cer", "--client", "--key-type", "ed25519"]
    name = f"ed-{cipher}.p12"
    mutls_ok("makecert", *args, "--p12-cipher", cipher, "-n", "CN=ed", "-p12", name, PASSWORD,
             cwd=article)  # fmt: skip
    assert tool("certutil", "-N", "-d", f"sql:{tmp_path}", "--empty-password").returncode == 0
    done = tool("pk12util", "-i", article / name, "-W", PASSWORD, "-d", f"sql:{tmp_path}")
    assert done.returncode != 0
    assert "SEC_ERROR_PKCS12_UNABLE_TO_IMPORT_KEY" in done.stdout + done.stderr
