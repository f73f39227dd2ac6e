"""``mutls doctor`` never contradicts itself: every server kind × every certificate problem.

Servers: mutls in every mode × policy, nginx (``on``, ``optional``, ``optional_no_ca``, its page
echoing ``$ssl_client_verify``) and ``openssl s_server -Verify``. Cases: a valid certificate,
an untrusted issuer, expired, revoked by a CRL, in Disallowed (only mutls has that store),
serverAuth only, none at all, and a URL host the server certificate does not name. For each:
the exit status follows from every step (a [FAIL] is never followed by exit 0), the diagnosis
gives the reason the server gave (or the one the doctor sees), and a fix about the server's
trust names the kind of server it applies to.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mutls import pki
from mutls.client.connection import ClientConfig
from mutls.client.doctor import DoctorReport, Verdict, run_doctor
from mutls.client.server_trust import ServerTrust
from mutls.pki.trust import TrustMaterial
from mutls.server import ServerConfig
from mutls.tls import ClientCertMode, VerifyPolicy

from helpers import LazyServers, OpenSSLServer, PKIFiles, free_port, run_nginx
from tools import need

#: certificate case -> the identity offered (None: none) and the URL host.
CASES = {
    "valid": ("poupou", "localhost"),
    "untrusted": ("untrusted", "localhost"),
    "expired": ("expired", "localhost"),
    "revoked": ("revoked", "localhost"),
    "disallowed": ("disallowed", "localhost"),
    "wrong-eku": ("server-only", "localhost"),
    "no-certificate": (None, "localhost"),
    "wrong-host": ("poupou", "127.0.0.1"),
}
MUTLS = [f"mutls-{m}-{p}" for m in ("none", "optional", "require") for p in ("strict", "report")]
NGINX = ["nginx-on", "nginx-optional", "nginx-optional_no_ca"]
SERVERS = [*MUTLS, *NGINX, "s_server"]

#: what the diagnosis says for each refusal, whoever refused.
REFUSED = {
    "untrusted": "your certificate is issued by `CN=Untrusted Test CA`",
    "expired": "`CN=expired` is outside its validity: expired on",
    "revoked": "`CN=revoked` is revoked",
    "wrong-eku": "`CN=serveronly` may not be used for client authentication",
    "disallowed": "the server's Disallowed store lists `CN=banned`",
}
#: the part of a trust fix that belongs to each kind of server.
TRUST_FIX = {"mutls": "mutls certmgr -add -c Trust", "nginx": "ssl_client_certificate"}


@dataclass(frozen=True)
class Expected:
    problem: bool
    diagnosis: str


def expected(server: str, case: str) -> Expected:
    """What the doctor must conclude, from what each server does with each case."""
    asks = server not in ("mutls-none-strict", "mutls-none-report")
    requires = server.startswith(("mutls-require", "s_server")) or server == "nginx-on"
    if case == "wrong-host":
        return Expected(True, "the server's certificate is for localhost, not for 127.0.0.1")
    if not asks:
        return Expected(False, "the server did not ask for a client certificate (HTTP 200)")
    if case == "valid":
        return Expected(False, "the server accepted `CN=poupou` (HTTP 200)")
    if case == "no-certificate":
        if requires:
            return Expected(True, "the server requires a client certificate and none was offered")
        return Expected(False, "accepted the request without one (HTTP 200)")
    if case == "disallowed" and not server.startswith("mutls"):
        return Expected(False, "the server accepted `CN=banned` (HTTP 200)")  # no such store
    if case == "revoked" and server in ("nginx-on", "nginx-optional", "nginx-optional_no_ca"):
        # nginx's 400 page does not say why (its error log does), and nothing local shows it
        return Expected(True, "the server refused `CN=revoked` (HTTP 400) without saying why")
    return Expected(True, REFUSED[case])


@dataclass
class PKI:
    directory: Path
    files: PKIFiles
    server: pki.Identity


@pytest.fixture(scope="module")
def matrix_pki(test_pki: PKIFiles, tmp_path_factory: pytest.TempPathFactory) -> PKI:
    """The test PKI with a server certificate for localhost alone (so 127.0.0.1 is wrong)."""
    directory = tmp_path_factory.mktemp("matrix")
    server = test_pki.ca.issue_server("localhost")
    server.write_pem(directory / "server.pem", directory / "server.key")
    shutil.copy(test_pki.ca_cert, directory / "root.pem")
    shutil.copy(test_pki.crl_path, directory / "root.crl.pem")
    return PKI(directory, test_pki, server)


@pytest.fixture(scope="module")
def mutls_servers(matrix_pki: PKI) -> Iterator[LazyServers]:
    p = matrix_pki.files
    trust = TrustMaterial(
        anchors=(p.ca.certificate,),
        disallowed=(p.identities["disallowed"].certificate,),
        crls=tuple(pki.load_crls(p.crl_path)),
    )

    def make(key: str) -> ServerConfig:
        _, mode, policy = key.split("-")
        return ServerConfig(
            port=0,
            identity=matrix_pki.server,
            client_cert=ClientCertMode(mode),
            verify=VerifyPolicy(policy),
            trust=trust,
        )

    servers = LazyServers(make)
    yield servers
    servers.close()


NGINX_SERVER = """
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_verify_client {mode};
        location / {{ return 200 "SSL_CLIENT_VERIFY: $ssl_client_verify\\n"; }}
    }}
"""


@pytest.fixture(scope="module")
def nginx_ports(
    matrix_pki: PKI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, int]]:
    need("nginx")
    ports = {name: free_port() for name in NGINX}
    http = f"    ssl_crl {matrix_pki.directory}/root.crl.pem;\n" + "".join(
        NGINX_SERVER.format(port=port, mode=name.split("-", 1)[1]) for name, port in ports.items()
    )
    with run_nginx(tmp_path_factory.mktemp("nginx"), matrix_pki.directory, http, ports.values()):
        yield ports


def port_of(server: str, request: pytest.FixtureRequest) -> tuple[int, OpenSSLServer | None]:
    if server.startswith("mutls"):
        servers: LazyServers = request.getfixturevalue("mutls_servers")
        return servers(server).ports[0], None
    if server.startswith("nginx"):
        return request.getfixturevalue("nginx_ports")[server], None
    d = request.getfixturevalue("matrix_pki").directory
    s_server = OpenSSLServer(
        "-cert", d / "server.pem", "-key", d / "server.key", "-CAfile", d / "root.pem",
        "-CRL", d / "root.crl.pem", "-crl_check", "-Verify", "1", "-verify_return_error",
        "-www", cwd=d,
    )  # fmt: skip
    return s_server.port, s_server


def doctor(matrix_pki: PKI, port: int, case: str) -> DoctorReport:
    name, host = CASES[case]
    identity = matrix_pki.files.identities[name] if name else None
    config = ClientConfig(
        identity=identity, trust=ServerTrust.from_cafile(matrix_pki.directory / "root.pem")
    )
    return run_doctor(f"https://{host}:{port}/", config)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("server", SERVERS)
def test_the_doctor_never_contradicts_itself(
    server: str, case: str, matrix_pki: PKI, request: pytest.FixtureRequest
) -> None:
    port, s_server = port_of(server, request)
    if s_server is None:
        report = doctor(matrix_pki, port, case)
    else:
        with s_server:
            report = doctor(matrix_pki, port, case)
    want = expected(server, case)
    text = report.render()
    failed = [s.name for s in report.steps if s.verdict is Verdict.FAIL]
    assert report.problem == want.problem, text
    assert want.diagnosis in report.diagnosis, text
    # one verdict: a failed step means a problem, and a problem is never called accepted
    assert report.problem or not failed, text
    assert not (report.problem and "the server accepted" in report.diagnosis), text
    if report.problem:
        assert report.fix, text
    if case == "untrusted" and report.problem:
        kind = server.split("-")[0]
        fix = report.fix or ""
        if kind in TRUST_FIX:  # it answered in HTTP: the fix is for that server alone
            assert TRUST_FIX[kind] in fix, text
            assert all(f not in fix for k, f in TRUST_FIX.items() if k != kind), text
        else:  # a handshake alert says nothing of the server: the fix names each kind
            assert "-CAfile" in fix and all(f in fix for f in TRUST_FIX.values()), text
