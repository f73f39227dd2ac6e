"""The article's hwr2.cs, in today's Java: ``java.net.http.HttpClient`` with a client
certificate from a PKCS#12 file, against ``mutls xsp`` and ``mutls serve``.

The program (tests/interop/java/FetchPage.java) is compiled with ``javac`` into tmp at test
time. Its client P12s are made by the article's own command, ``mutls makecert -iv root.key -ic
root.cer -eku -n "CN=poupou" -p12 poupou.p12 s3kr3t`` (ECDSA, AES-256 PKCS#12) and the same with
``--legacy`` (RSA, 3DES PKCS#12); its truststore is made by ``mutls certmgr --install-root
root.cer --java --java-keystore FILE``. TLS 1.3 and TLS 1.2 are chosen with the JDK's own
``-Djdk.tls.client.protocols``.

Java's default key manager (SunX509) honours the server's CA-name list, as browsers do: a
certificate from another issuer is not sent unless the server gives ``--no-ca-names``. Unlike
browsers it does send an expired certificate, so Java shows the article's "NOT valid" for it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers import PASSWORD, MutlsServer, PKIFiles, run_mutls

JAVA = shutil.which("java")
JAVAC = shutil.which("javac")
SOURCE = Path(__file__).resolve().parent / "java" / "FetchPage.java"

pytestmark = [
    pytest.mark.interop,
    pytest.mark.needs("java", "javac", "keytool"),
]

Arg = str | os.PathLike[str]


@dataclass(frozen=True)
class Case:
    """One fetch: which P12, which server, and what comes back."""

    p12: str | None  # a key of the ``client_p12s`` fixture
    server: str
    status: int
    says: str  # the greeting (200) or the whole plain-text body (403)
    detail: str | None = None
    protocols: tuple[str, ...] = ("TLSv1.3", "TLSv1.2")


VALID = "Hello CN=poupou, your certificate is valid"
CASES = {
    "valid": Case("poupou", "report", 200, VALID),
    "valid-legacy-p12": Case("poupou-legacy", "report", 200, VALID),
    "valid-strict": Case("poupou", "strict", 200, VALID, protocols=("TLSv1.3",)),
    "no-certificate": Case(
        None, "report", 403, "client certificate required", protocols=("TLSv1.3",)
    ),
    "expired-report": Case(
        "expired",
        "report",
        200,
        "Hello CN=expired, your certificate is NOT valid",
        "certificate has expired",
    ),
    "expired-strict": Case(
        "expired",
        "strict",
        403,
        "client certificate not valid: certificate has expired",
        protocols=("TLSv1.2",),
    ),
    # SunX509 finds no certificate issued by a CA the server names: it sends none.
    "ca-names-hide-foreign": Case("untrusted", "report", 403, "client certificate required"),
    "foreign-report": Case(
        "untrusted",
        "report-any-ca",
        200,
        "Hello CN=mallory, your certificate is NOT valid",
        "unable to get local issuer certificate",
        protocols=("TLSv1.3",),
    ),
    "foreign-strict": Case(
        "untrusted",
        "strict-any-ca",
        403,
        "client certificate not valid: unable to get local issuer certificate",
    ),
}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("java")


@pytest.fixture(scope="module")
def classes(workdir: Path) -> Path:
    """FetchPage.java compiled into tmp."""
    out = workdir / "classes"
    assert JAVAC is not None
    result = subprocess.run(
        [JAVAC, "-d", str(out), str(SOURCE)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def client_p12s(test_pki: PKIFiles, workdir: Path) -> dict[str, Path]:
    """poupou as the article makes it (modern and --legacy), plus the shared PKI's others."""
    test_pki.ca.write(workdir / "root.cer", workdir / "root.key")
    made = {}
    for name, extra in (("poupou", []), ("poupou-legacy", ["--legacy"])):
        result = run_mutls(
            "makecert", "-iv", "root.key", "-ic", "root.cer", "-eku", "-n", "CN=poupou",
            *extra, "-p12", f"{name}.p12", PASSWORD, cwd=workdir,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        made[name] = workdir / f"{name}.p12"
    return {**made, "expired": test_pki.p12("expired"), "untrusted": test_pki.p12("untrusted")}


@pytest.fixture(scope="module")
def truststore(test_pki: PKIFiles, workdir: Path) -> Path:
    """A keystore holding the root, made by ``certmgr --install-root --java``."""
    store = workdir / "truststore.p12"
    result = run_mutls(
        "certmgr", "--install-root", test_pki.ca_cert, "--java", "--java-keystore", store
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"java {store}: installed"), result.stdout
    return store


@pytest.fixture(scope="module")
def servers(test_pki: PKIFiles) -> Iterator[dict[str, str]]:
    """``--https-client-require`` servers, report and strict, naming their CA or not."""
    p = test_pki
    tls: list[Arg] = ["--p12file", p.p12("server"), "--pkpwd", PASSWORD, "--client-ca", p.ca_cert]
    report: list[Arg] = ["xsp", "--https-client-require", *tls]
    strict: list[Arg] = ["serve", "--client-cert", "require", "--verify", "strict", *tls]
    specs = {
        "report": report,
        "strict": strict,
        "report-any-ca": [*report, "--no-ca-names"],
        "strict-any-ca": [*strict, "--no-ca-names"],
    }
    with ExitStack() as stack:
        urls = {}
        for name, args in specs.items():
            server = stack.enter_context(MutlsServer(*args, cwd=p.directory))
            urls[name] = f"https://localhost:{server.port}/cctest.aspx"
        yield urls


def fetch(
    classes: Path, url: str, truststore: Path, p12: Path | None, protocol: str
) -> tuple[int, str, str]:
    """Run FetchPage: (HTTP status, negotiated TLS version, body)."""
    assert JAVA is not None
    argv = [JAVA, f"-Djdk.tls.client.protocols={protocol}", "-cp", str(classes), "FetchPage"]
    argv += [url, str(truststore), *([str(p12)] if p12 else [])]
    result = subprocess.run(
        argv,
        env={**os.environ, "P12_PASSWORD": PASSWORD},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    status, version, body = result.stdout.split("\n", 2)
    return int(status.removeprefix("status ")), version.removeprefix("protocol "), body


#: every case over the TLS versions it names (both for the main outcomes; one JVM a run).
RUNS = [
    pytest.param(case, protocol, id=f"{name}-{protocol}")
    for name, case in CASES.items()
    for protocol in case.protocols
]


@pytest.mark.parametrize(("case", "protocol"), RUNS)
def test_java_httpclient(
    case: Case,
    protocol: str,
    classes: Path,
    client_p12s: dict[str, Path],
    truststore: Path,
    servers: dict[str, str],
) -> None:
    p12 = client_p12s[case.p12] if case.p12 else None
    status, version, body = fetch(classes, servers[case.server], truststore, p12, protocol)
    assert (status, version) == (case.status, protocol), body
    if status == 200:
        greeting = re.search(r"<p>(.*?)</p>", body)
        assert greeting is not None and greeting.group(1) == case.says, body
        assert f"<th>TLS version</th><td>{protocol}</td>" in body  # the server saw it too
    else:
        assert body.strip() == case.says
    if case.detail is not None:
        assert case.detail in body
