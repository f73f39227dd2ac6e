"""tlslite-ng as the misbehaving client: it signs with any key it is given, and its messages can
be rewritten on the way out (``pytest``'s ``monkeypatch`` on ``tlslite.messages`` classes).

TLS 1.3 note: tlslite-ng 0.8.2 reads the ``compress_certificate`` extension from its *own*
ClientHello instead of the server's CertificateRequest (``_clientTLS13Handshake`` passes
``clientHello`` to ``_create_cert_msg``), so by default it answers every CertificateRequest with
an RFC 8879 CompressedCertificate the server never offered, and OpenSSL rightly refuses it with
unexpected_message. ``compress=False`` (``certificate_compression_send = []``) turns that off;
with it, tlslite-ng finishes TLS 1.3 handshakes with client certificates against OpenSSL 4.0.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import tlslite.api as tlslite
from tlslite.constants import AlertDescription, SignatureScheme
from tlslite.errors import TLSAbruptCloseError, TLSLocalAlert, TLSRemoteAlert
from tlslite.messages import CertificateVerify

TLS12, TLS13 = (3, 3), (3, 4)


@dataclass
class Outcome:
    """What the client saw: a finished handshake and the response, or the server's alert."""

    handshake: bool = False
    alert: str | None = None  # the alert the server sent, by RFC name
    error: str | None = None  # anything else (the client's own failure)
    response: bytes = b""
    ems: bool | None = None  # TLS 1.2: whether extended master secret was negotiated
    signature_schemes: list[str] = field(default_factory=list)  # what CertificateVerify used


def load_chain(cert: Path) -> tlslite.X509CertChain:
    """The certificates of a PEM file, leaf first, as tlslite-ng objects."""
    chain = tlslite.X509CertChain()
    chain.parsePemList(cert.read_text())
    return chain


def load_key(key: Path) -> object:
    """A private key PEM as a tlslite-ng key (RSA, ECDSA or EdDSA)."""
    return tlslite.parsePEMKey(key.read_text(), private=True)


def settings_for(version: tuple[int, int], *, compress: bool = False) -> tlslite.HandshakeSettings:
    """Settings fixed to one TLS version (see the module docs on ``compress``)."""
    settings = tlslite.HandshakeSettings()
    settings.minVersion = settings.maxVersion = version
    if not compress:
        settings.certificate_compression_send = []
    return settings


def scheme_name(algorithm: tuple[int, int] | None) -> str:
    """``rsa_pss_rsae_sha256``, ``ecdsa_secp256r1_sha256``, ``ed25519``, ``rsa_pkcs1_sha256``..."""
    if algorithm is None:
        return "none"
    name = SignatureScheme.toRepr(tuple(algorithm))  # type: ignore[arg-type]
    return str(name) if name else f"{algorithm[0]:#04x}{algorithm[1]:02x}"


def connect(
    port: int,
    settings: tlslite.HandshakeSettings,
    cert: Path | None = None,
    key: Path | None = None,
    *,
    request: bytes = b"GET /whoami HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    timeout: float = 10,
) -> Outcome:
    """Handshake with ``cert``/``key`` (which may not match: tlslite signs anyway), then send
    ``request`` and read the response until the server closes."""
    outcome = Outcome()
    sent = _spy_certificate_verify(outcome)
    sock = FlightSocket(socket.create_connection(("127.0.0.1", port), timeout=timeout))
    connection = tlslite.TLSConnection(sock)
    try:
        chain = load_chain(cert) if cert is not None else None
        private = load_key(key) if key is not None else None
        connection.handshakeClientCert(chain, private, settings=settings)
        outcome.handshake = True
        outcome.ems = bool(connection.extendedMasterSecret)
        connection.write(request)
        while data := connection.read():
            outcome.response += bytes(data)
    except TLSRemoteAlert as alert:
        outcome.alert = str(AlertDescription.toStr(alert.description))
    except (TLSAbruptCloseError, TLSLocalAlert, OSError) as exc:
        outcome.error = repr(exc)
    finally:
        sent.undo()
        connection.sock.close()
    return outcome


class FlightSocket:
    """A socket that holds what is sent until the next read: a flight leaves in one write.

    tlslite-ng writes Certificate, CertificateVerify and Finished one by one; a server that
    fails on the first one closes before the others are written, and the client would see a
    broken pipe instead of the alert that is waiting for it.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.pending = b""

    def send(self, data: bytes) -> int:
        self.pending += bytes(data)
        return len(data)

    def sendall(self, data: bytes) -> None:
        self.pending += bytes(data)

    def flush(self) -> None:
        pending, self.pending = self.pending, b""
        if pending:
            try:
                self.sock.sendall(pending)
            except OSError:
                pass  # the server closed already: what it sent is still there to read

    def recv(self, size: int) -> bytes:
        self.flush()
        return self.sock.recv(size)

    def close(self) -> None:
        self.flush()
        self.sock.close()

    def __getattr__(self, name: str) -> object:
        return getattr(self.sock, name)


class _Spy:
    """Undoes a class patch."""

    def __init__(self, undo: Callable[[], None]) -> None:
        self.undo = undo


def _spy_certificate_verify(outcome: Outcome) -> _Spy:
    """Note the signature scheme of every CertificateVerify the client creates."""
    cls = CertificateVerify
    original = cls.create

    def create(self: object, signature: bytes, signatureAlgorithm: object = None) -> object:
        outcome.signature_schemes.append(scheme_name(signatureAlgorithm))  # type: ignore[arg-type]
        return original(self, signature, signatureAlgorithm)

    cls.create = create

    def undo() -> None:
        cls.create = original

    return _Spy(undo)
