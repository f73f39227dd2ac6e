"""A misbehaving client (tlslite-ng, which signs with any key it is given) proves the engine
answers a bad CertificateVerify with decrypt_error. Bytes only: a socketpair carries them to a
client thread, and this thread feeds them to ``TLSConnection``."""

from __future__ import annotations

import socket
import threading

import pytest

from mutls.tls import TLSConnection, TLSError

from helpers import PKIFiles
from tls_driver import server_context

tlslite = pytest.importorskip("tlslite.api")


def tlslite_client(
    sock: socket.socket, test_pki: PKIFiles, cert: str, key: str, outcome: dict[str, object]
) -> None:
    from tlslite.errors import TLSRemoteAlert

    leaf_pem = test_pki.cert(cert).read_text().split("-----END CERTIFICATE-----")[0]
    chain = tlslite.X509CertChain([tlslite.X509().parse(leaf_pem + "-----END CERTIFICATE-----\n")])
    private = tlslite.parsePEMKey(test_pki.key(key).read_text(), private=True)
    settings = tlslite.HandshakeSettings()
    settings.minVersion = settings.maxVersion = (3, 3)  # TLS 1.2: see docs/tls.md on 1.3
    connection = tlslite.TLSConnection(sock)
    try:
        connection.handshakeClientCert(chain, private, settings=settings)
        outcome["handshake"] = "done"
    except TLSRemoteAlert as alert:
        outcome["alert"] = alert.description
    except Exception as exc:  # reported by the assertion below
        outcome["error"] = repr(exc)
    finally:
        sock.close()


def run(test_pki: PKIFiles, cert: str, key: str) -> tuple[TLSConnection, dict[str, object]]:
    ours, theirs = socket.socketpair()
    outcome: dict[str, object] = {}
    thread = threading.Thread(target=tlslite_client, args=(theirs, test_pki, cert, key, outcome))
    thread.start()
    server = TLSConnection(server_context(test_pki))
    ours.settimeout(10)
    try:
        while not server.handshake_complete:
            data = ours.recv(65536)
            if not data:
                break
            try:
                server.receive_data(data)
            finally:
                ours.sendall(server.data_to_send())
    except TLSError as error:
        outcome["server"] = error
    finally:
        ours.close()
        thread.join(10)
    assert not thread.is_alive()
    return server, outcome


def test_a_bad_certificate_verify_is_decrypt_error(test_pki: PKIFiles) -> None:
    # poupou's certificate, signed with another client's key.
    _, outcome = run(test_pki, "poupou", "expired")
    error = outcome.get("server")
    assert isinstance(error, TLSError), outcome
    assert error.alert == "decrypt_error"
    assert outcome.get("alert") == 51  # the client read decrypt_error


def test_the_same_client_with_its_own_key_is_accepted(test_pki: PKIFiles) -> None:
    server, outcome = run(test_pki, "poupou", "poupou")
    assert outcome.get("handshake") == "done", outcome
    assert server.info is not None and server.info.client_certificate.valid
