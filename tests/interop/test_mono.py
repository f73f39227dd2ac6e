"""The article's own platform: its C# client (``hwr2.cs``) on Mono 6.8, and Mono's certmgr.

``mcs`` and ``mono`` come from Debian's ``mono-mcs`` (24 MiB, in ``.ci/packages``); Mono's
``certmgr`` from ``mono-devel`` (about 200 MiB, deliberately not in the list: its tests skip
unless it is installed by hand). They show why ``makecert`` writes 3DES P12s by default.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from helpers import ARTICLE_MAKECERT, FIXTURES, PASSWORD, MutlsServer, run_mutls

pytestmark = pytest.mark.interop
SOURCE = Path(__file__).resolve().parent / "mono" / "hwr2.cs"


def mono_env(tmp_path: Path) -> dict[str, str]:
    """Mono's stores and caches inside the test's directory."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}


def run(*args: str | Path, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.fixture(scope="module")
def article(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The article's PKI by its own commands, plus poupou with --p12-cipher aes256."""
    work = tmp_path_factory.mktemp("article")
    for command in ARTICLE_MAKECERT:
        assert run_mutls("makecert", *command, cwd=work).returncode == 0
    aes = ["-iv", "root.key", "-ic", "root.cer", "-eku", "-n", "CN=poupou", "--p12-cipher"]
    made = run_mutls("makecert", *aes, "aes256", "-p12", "poupou-aes.p12", PASSWORD, cwd=work)
    assert made.returncode == 0, made.stderr
    return work


@pytest.mark.needs("mcs", "mono")
def test_the_articles_csharp_client_reads_makecerts_p12(article: Path, tmp_path: Path) -> None:
    env = mono_env(tmp_path)
    built = run("mcs", f"-out:{tmp_path / 'hwr2.exe'}", SOURCE, cwd=tmp_path, env=env)
    assert built.returncode == 0, built.stdout + built.stderr
    with MutlsServer(
        "xsp", "--https-client-require", "--p12file", "pollux.p12", "--pkpwd", PASSWORD,
        "--client-ca", "root.cer", cwd=article,
    ) as server:  # fmt: skip
        url = f"https://localhost:{server.port}/cctest.aspx"
        hwr2 = [tmp_path / "hwr2.exe", url]
        # `mono hwr2.exe https://localhost:4433/cctest.aspx poupou.p12 s3kr3t`, as the article
        done = run("mono", *hwr2, "poupou.p12", PASSWORD, cwd=article, env=env)
        aes = run("mono", *hwr2, "poupou-aes.p12", PASSWORD, cwd=article, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Hello CN=poupou, your certificate is valid" in done.stdout
    # the AES-256/PBKDF2 form, OpenSSL 3's default: Mono 6.8 cannot open it
    assert aes.returncode != 0 and "Unable to decode certificate" in aes.stderr + aes.stdout


@pytest.mark.needs("certmgr")
def test_monos_certmgr_reads_the_3des_form_and_removes_by_the_hash_we_print(
    article: Path, tmp_path: Path
) -> None:
    env = mono_env(tmp_path)
    legacy = ["-iv", "root.key", "-ic", "root.cer", "-eku", "--legacy", "-n", "CN=castor"]
    assert (
        run_mutls("makecert", *legacy, "-p12", "castor.p12", PASSWORD, cwd=article).returncode == 0
    )

    def certmgr(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return run("certmgr", *args, cwd=article, env=env)

    # the 3DES form with an RSA key (--legacy) is what Mono's certmgr imports; with an EC key
    # (makecert's default) it cannot ("Unknown private key format"), nor AES-256 at all
    assert "added to store My" in certmgr("-add", "-c", "-p", PASSWORD, "My", "castor.p12").stdout
    ec = certmgr("-add", "-c", "-p", PASSWORD, "My", "poupou.p12")
    assert "Unknown private key format" in ec.stdout + ec.stderr
    aes = certmgr("-add", "-c", "-p", PASSWORD, "My", "poupou-aes.p12")
    assert "unsupported HMAC" in aes.stdout + aes.stderr
    # Mono's own RSA root: `mutls certmgr -list --mono -v` prints the hash Mono's -del takes
    assert certmgr("-add", "-c", "Trust", FIXTURES / "root.cer").returncode == 0
    listed = run_mutls("certmgr", "-list", "-c", "Trust", "--mono", "-v", env=env)
    line = next(x for x in listed.stdout.splitlines() if "Mono hash:" in x)
    trust = tmp_path / "home" / ".config" / ".mono" / "certs" / "Trust"
    assert len(list(trust.glob("*.cer"))) == 1
    assert (
        "Certificate removed from store." in certmgr("-del", "-c", "Trust", line.split()[-1]).stdout
    )
    assert list(trust.glob("*.cer")) == []
