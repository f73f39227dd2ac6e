"""The TLS engine against real clients (``openssl s_client``, ``curl``) over a real socket.

A tiny pump, private to these tests, carries bytes between a socket on 127.0.0.1 and
``TLSConnection`` and answers each request with the verdict it saw; the real server lives in
``mutls.server``.
"""

from __future__ import annotations

import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mutls import pki
from mutls.pki.trust import TrustMaterial
from mutls.tls import (
    ClientCertMode,
    ServerContext,
    ServerTLSConfig,
    TLSConnection,
    TLSError,
    TLSInfo,
)

from helpers import CLIENT_CASES, PKIFiles, free_port

TIMEOUT = 20


@dataclass
class Pump:
    """Accepts connections one after another and serves each through ``TLSConnection``."""

    context: ServerContext
    listener: socket.socket
    infos: list[TLSInfo] = field(default_factory=list)
    errors: list[TLSError] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.listener.getsockname()[1])

    def run(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:  # the listener was closed: the test is over
                return
            with sock:
                sock.settimeout(TIMEOUT)
                self.serve(sock)

    def serve(self, sock: socket.socket) -> None:
        tls = TLSConnection(self.context)
        request = b""
        try:
            while not tls.peer_closed:
                data = sock.recv(65536)
                try:
                    request += tls.receive_data(data)
                except TLSError as error:
                    self.errors.append(error)
                    sock.sendall(tls.data_to_send())  # the alert, before the close
                    return
                if b"\r\n\r\n" in request and tls.info is not None:
                    self.infos.append(tls.info)  # before the client can see the answer
                    tls.send(self.answer(tls.info))
                    tls.close()
                    sock.sendall(tls.data_to_send())
                    return
                sock.sendall(tls.data_to_send())
        except OSError:
            pass

    @staticmethod
    def answer(info: TLSInfo) -> bytes:
        cert = info.client_certificate
        body = (
            f"verify={cert.verify_status}\nresumed={info.resumed}\nversion={info.version}\n"
        ).encode()
        head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        return head.encode() + body


@pytest.fixture
def pump_factory(test_pki: PKIFiles) -> Iterator[object]:
    pumps: list[tuple[Pump, threading.Thread]] = []

    def start(mode: ClientCertMode = ClientCertMode.OPTIONAL, **options: object) -> Pump:
        trust = options.pop("trust", None) or TrustMaterial(
            anchors=(test_pki.ca.certificate,),
            disallowed=(test_pki.identities["disallowed"].certificate,),
            crls=tuple(pki.load_crls(test_pki.crl_path)),
        )
        config = ServerTLSConfig(
            identity=options.pop("identity", None) or test_pki.identities["server"],
            client_cert_mode=mode,
            trust=trust,
            **options,  # type: ignore[arg-type]
        )
        listener = socket.socket()
        listener.bind(("127.0.0.1", free_port()))
        listener.listen(8)
        pump = Pump(ServerContext(config), listener)
        thread = threading.Thread(target=pump.run, daemon=True)
        thread.start()
        pumps.append((pump, thread))
        return pump

    yield start
    for pump, thread in pumps:
        pump.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() (close alone does not)
        pump.listener.close()
        thread.join(TIMEOUT)
        assert not thread.is_alive()


def s_client(
    pump: Pump, *args: str | Path, request: bool = True
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "openssl",
            "s_client",
            "-connect",
            f"127.0.0.1:{pump.port}",
            "-servername",
            "localhost",
            "-ign_eof",
            *map(str, args),
        ],
        input="GET / HTTP/1.1\r\nHost: localhost\r\n\r\n" if request else "",
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def cert_args(test_pki: PKIFiles, name: str) -> list[str | Path]:
    args: list[str | Path] = ["-cert", test_pki.cert(name), "-key", test_pki.key(name)]
    if name == "via-intermediate":  # s_client sends only -cert's first certificate otherwise
        args += ["-cert_chain", test_pki.cert(name)]
    return args


def expected_status(name: str) -> str:
    error = CLIENT_CASES[name]
    return "verify=SUCCESS" if error is None else f"verify=FAILED:{error}"


# -- openssl s_client ------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
@pytest.mark.parametrize("name", list(CLIENT_CASES))
def test_s_client_certificates(
    test_pki: PKIFiles, pump_factory: object, name: str, version: str
) -> None:
    pump = pump_factory()  # type: ignore[operator]
    out = s_client(pump, version, "-CAfile", test_pki.ca_cert, *cert_args(test_pki, name))
    assert expected_status(name) in out.stdout, out.stdout + out.stderr
    assert "Verify return code: 0 (ok)" in out.stdout  # the client trusts the server


@pytest.mark.parametrize(
    ("kind", "args"),
    [
        ("tls1.2-ticket", ["-tls1_2"]),
        ("tls1.2-session-id", ["-tls1_2", "-no_ticket"]),
        ("tls1.3", ["-tls1_3"]),
    ],
)
@pytest.mark.parametrize("name", ["poupou", "untrusted", "expired", "server-only", "revoked"])
def test_s_client_resumption_keeps_the_verdict(
    test_pki: PKIFiles, pump_factory: object, tmp_path: Path, name: str, kind: str, args: list[str]
) -> None:
    pump = pump_factory()  # type: ignore[operator]
    session = tmp_path / "session.pem"
    common = [*args, "-CAfile", test_pki.ca_cert, *cert_args(test_pki, name)]
    first = s_client(pump, *common, "-sess_out", session)
    assert expected_status(name) in first.stdout and "resumed=False" in first.stdout
    second = s_client(pump, *common, "-sess_in", session)
    assert "Reused," in second.stdout, second.stdout
    assert "resumed=True" in second.stdout
    assert expected_status(name) in second.stdout, second.stdout


@pytest.mark.parametrize(
    "args", [["-tls1_2"], ["-tls1_2", "-no_ticket"], ["-tls1_3"]], ids=["ticket", "id", "1.3"]
)
def test_s_client_resumption_never_launders_a_sent_disallowed_intermediate(
    test_pki: PKIFiles, pump_factory: object, tmp_path: Path, args: list[str]
) -> None:
    # The intermediate is withdrawn (Disallowed, not in the CA store) and the client sends it:
    # refused in the full handshake, and on resumption too (it once came back valid).
    trust = TrustMaterial(
        anchors=(test_pki.ca.certificate,), disallowed=(test_pki.intermediate.certificate,)
    )
    pump = pump_factory(trust=trust)  # type: ignore[operator]
    session = tmp_path / "session.pem"
    common = [*args, "-CAfile", test_pki.ca_cert, *cert_args(test_pki, "via-intermediate")]
    first = s_client(pump, *common, "-sess_out", session)
    assert "verify=FAILED:certificate is in the Disallowed store" in first.stdout, first.stdout
    second = s_client(pump, *common, "-sess_in", session)
    assert "Reused," in second.stdout and "resumed=True" in second.stdout, second.stdout
    assert "verify=FAILED:certificate is in the Disallowed store" in second.stdout


def test_s_client_without_certificate(test_pki: PKIFiles, pump_factory: object) -> None:
    pump = pump_factory(ClientCertMode.REQUIRE)  # type: ignore[operator]
    out = s_client(pump, "-CAfile", test_pki.ca_cert)
    assert "verify=NONE" in out.stdout
    names = out.stdout.split("Acceptable client certificate CA names")[1].split("---")[0]
    assert "CN = My Own Test CA" in names, names


def test_s_client_reads_certificate_required(test_pki: PKIFiles, pump_factory: object) -> None:
    pump = pump_factory(ClientCertMode.REQUIRE, reject_at_handshake=True)  # type: ignore[operator]
    out = s_client(pump, "-tls1_3", "-CAfile", test_pki.ca_cert)
    assert "certificate required" in out.stderr, out.stderr
    assert [e.alert for e in pump.errors] == ["certificate_required"]


def test_s_client_tls1_reads_protocol_version(test_pki: PKIFiles, pump_factory: object) -> None:
    pump = pump_factory()  # type: ignore[operator]
    out = s_client(pump, "-tls1", "-cipher", "DEFAULT@SECLEVEL=0", request=False)
    assert "alert protocol version" in out.stderr, out.stderr
    assert [e.alert for e in pump.errors] == ["protocol_version"]


def test_s_client_no_shared_cipher(test_pki: PKIFiles, pump_factory: object) -> None:
    pump = pump_factory()  # type: ignore[operator]
    out = s_client(pump, "-tls1_2", "-cipher", "AES128-SHA", request=False)
    assert "alert handshake failure" in out.stderr, out.stderr
    assert [e.alert for e in pump.errors] == ["handshake_failure"]


def test_dhe_suites_listed_by_default_can_be_chosen(
    test_pki: PKIFiles, pump_factory: object
) -> None:
    # --ciphers DEFAULT lists DHE suites; without DH parameters a client offering only DHE got
    # handshake_failure. With OpenSSL's automatic groups (RFC 7919, sized to the key) it works.
    rsa = test_pki.ca.issue_server("localhost", key=pki.KeySpec.parse("rsa"))
    pump = pump_factory(identity=rsa, ciphers="DEFAULT")  # type: ignore[operator]
    dhe = "DHE-RSA-AES128-GCM-SHA256"
    out = s_client(pump, "-tls1_2", "-cipher", dhe, *cert_args(test_pki, "poupou"))
    assert f"Cipher is {dhe}" in out.stdout, out.stdout + out.stderr
    assert "Server Temp Key: DH, 2048 bits" in out.stdout, out.stdout
    assert "verify=SUCCESS" in out.stdout
    assert [i.cipher for i in pump.infos] == [dhe]


# -- curl --------------------------------------------------------------------------------------


def curl(pump: Pump, test_pki: PKIFiles, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "curl",
            "--silent",
            "--show-error",
            "--max-time",
            str(TIMEOUT),
            "--cacert",
            str(test_pki.ca_cert),
            *map(str, args),
            f"https://localhost:{pump.port}/",
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT + 5,
    )


@pytest.mark.parametrize("version", ["--tlsv1.2 --tls-max 1.2", "--tlsv1.3"])
@pytest.mark.parametrize("name", ["poupou", "via-intermediate", "untrusted", "expired"])
def test_curl_certificates(
    test_pki: PKIFiles, pump_factory: object, name: str, version: str
) -> None:
    pump = pump_factory()  # type: ignore[operator]
    out = curl(
        pump, test_pki, *version.split(), "--cert", test_pki.cert(name), "--key", test_pki.key(name)
    )
    assert out.returncode == 0, out.stderr
    assert expected_status(name) in out.stdout
    assert pump.infos[-1].alpn == "http/1.1"


def test_curl_without_certificate(test_pki: PKIFiles, pump_factory: object) -> None:
    pump = pump_factory()  # type: ignore[operator]
    out = curl(pump, test_pki)
    assert out.returncode == 0, out.stderr
    assert "verify=NONE" in out.stdout


def test_curl_plain_http_to_the_tls_port(test_pki: PKIFiles, pump_factory: object) -> None:
    # The pump has no 400 page (the server does); the engine must recognise the request.
    pump = pump_factory()  # type: ignore[operator]
    subprocess.run(
        ["curl", "--silent", "--max-time", "5", f"http://127.0.0.1:{pump.port}/"],
        capture_output=True,
        timeout=10,
    )
    assert [type(e).__name__ for e in pump.errors] == ["PlainHTTPError"]
