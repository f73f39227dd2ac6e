"""One TLS client connection on pyOpenSSL that records what happened in its handshake.

pyOpenSSL rather than ``ssl``: the key goes into OpenSSL from memory (a PKCS#12 is never
written out), the verify callback sees every certificate of the server chain, the info callback
tells whether the server sent a CertificateRequest and whether a certificate went back, and
alerts arrive with their number. ``mutls get`` and ``mutls doctor`` share this one mechanism.
"""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from cryptography import x509
from OpenSSL import SSL, crypto

from mutls.client.errors import ConnectError
from mutls.client.hostname import host_matches, is_ip_address
from mutls.client.keylog import KeyLog
from mutls.client.server_trust import ServerTrust
from mutls.errors import PKIError
from mutls.pki.identity import Identity
from mutls.pki.keys import describe_key
from mutls.tls.alerts import alert_name
from mutls.tls.verify import verify_error_text

_CERT_REQUEST_READ = b"SSLv3/TLS read server certificate request"
# OpenSSL sends CertificateVerify only after a non-empty Certificate: it proves one was sent.
_CERT_VERIFY_WRITTEN = b"SSLv3/TLS write certificate verify"
HOST_MISMATCH = "host name mismatch"
_T = TypeVar("_T")


@dataclass(frozen=True)
class ClientConfig:
    """How to connect: the client identity, the server trust, key logging, the time-out."""

    identity: Identity | None = None
    trust: ServerTrust = field(default_factory=ServerTrust.default)
    insecure: bool = False
    keylog: Path | None = None
    timeout: float = 30.0
    alpn: tuple[bytes, ...] = (b"http/1.1",)


@dataclass(frozen=True)
class ServerCertificateFailure:
    """One reason the server's certificate failed: a problem OpenSSL found in its chain, or the
    host name check (a value recorded for ``-v`` and the doctor, not an exception)."""

    depth: int
    code: int
    message: str
    subject: str


@dataclass
class HandshakeRecord:
    """What one connection learned, filled in as the handshake goes."""

    host: str
    port: int
    address: str | None = None
    version: str | None = None
    cipher: str | None = None
    alpn: str | None = None
    server_chain: list[x509.Certificate] = field(default_factory=list)
    verify_failures: list[ServerCertificateFailure] = field(default_factory=list)
    host_matches: bool | None = None
    certificate_requested: bool = False
    ca_names: list[x509.Name] = field(default_factory=list)
    certificate_sent: bool = False
    handshake_done: bool = False
    alerts_received: list[str] = field(default_factory=list)
    alert_after_handshake: bool = False
    alerts_sent: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def server_verified(self) -> bool:
        """True when the server chain verified and names the host."""
        return not self.verify_failures and self.host_matches is not False

    @property
    def alert(self) -> str | None:
        """The first fatal alert the server sent, by name."""
        return self.alerts_received[0] if self.alerts_received else None


class TLSBroken(Exception):
    """The TLS layer failed; ``record`` says how (alerts, verify errors, OpenSSL's reason)."""

    def __init__(self, record: HandshakeRecord, during_handshake: bool) -> None:
        super().__init__(record.error or "TLS failure")
        self.record = record
        self.during_handshake = during_handshake


class TLSClientConnection:
    """A TCP connection to ``host:port`` with a TLS client on it; use as a context manager.

    ``strict`` aborts the handshake when the server is not trusted (``mutls get``); without it
    every problem is only recorded (``mutls doctor`` wants to see how far it gets).
    """

    def __init__(self, host: str, port: int, config: ClientConfig, *, strict: bool = True):
        self.config = config
        self.record = HandshakeRecord(host=host, port=port)
        self._strict = strict and not config.insecure
        self._keylog = KeyLog(config.keylog) if config.keylog is not None else None
        self._sock: socket.socket | None = None
        self._conn: SSL.Connection | None = None

    # -- setup -------------------------------------------------------------------------------

    def _context(self) -> SSL.Context:
        ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
        ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
        self.config.trust.apply_to_openssl(ctx)
        ctx.set_verify(SSL.VERIFY_PEER, self._on_verify)
        ctx.set_info_callback(self._on_info)
        if self.config.alpn:
            ctx.set_alpn_protos(list(self.config.alpn))
        if self._keylog is not None:
            keylog = self._keylog
            ctx.set_keylog_callback(lambda _conn, line: keylog.write(line))
        identity = self.config.identity
        if identity is not None:
            try:
                # From memory: the key never touches the disk, whatever file it came from.
                ctx.use_certificate(identity.certificate)
                ctx.use_privatekey(identity.key)
                for issuer in identity.chain:
                    if issuer.subject != issuer.issuer:  # a root in the chain helps nobody
                        ctx.add_extra_chain_cert(issuer)
            except SSL.Error as exc:
                raise refused_identity(identity, _openssl_reason(exc)) from None
        return ctx

    def _on_verify(
        self, _conn: SSL.Connection, cert: crypto.X509, code: int, depth: int, ok: int
    ) -> bool:
        leaf = cert.to_cryptography()
        subject = leaf.subject.rfc4514_string()
        if not ok:
            self.record.verify_failures.append(
                ServerCertificateFailure(depth, code, verify_error_text(code), subject)
            )
        if depth == 0 and self.record.host_matches is None:
            self.record.host_matches = host_matches(leaf, self.record.host)
            if not self.record.host_matches:
                self.record.verify_failures.append(
                    ServerCertificateFailure(0, 62, HOST_MISMATCH, subject)
                )
        if not self._strict:
            return True
        return not self.record.verify_failures

    def _on_info(self, conn: SSL.Connection, where: int, ret: int) -> None:
        if where & SSL.SSL_CB_ALERT:
            name = alert_name(ret & 0xFF)
            if name == "close_notify":
                return
            if where & SSL.SSL_CB_READ:
                self.record.alerts_received.append(name)
                self.record.alert_after_handshake = self.record.handshake_done
            else:
                self.record.alerts_sent.append(name)
        elif where & SSL.SSL_CB_LOOP:
            state = conn.get_state_string()
            if state == _CERT_REQUEST_READ:
                self.record.certificate_requested = True
            elif state == _CERT_VERIFY_WRITTEN:
                self.record.certificate_sent = True

    # -- I/O ---------------------------------------------------------------------------------

    def connect(self) -> HandshakeRecord:
        """Open TCP, run the handshake, return the record (raises ``TLSBroken``)."""
        host, port = self.record.host, self.record.port
        try:
            sock = socket.create_connection((host, port), timeout=self.config.timeout)
        except socket.gaierror as exc:
            raise ConnectError(f"{host}: cannot resolve host name ({exc.strerror})") from None
        except TimeoutError:
            raise ConnectError(f"{host}:{port}: connection timed out") from None
        except OSError as exc:
            raise ConnectError(f"{host}:{port}: cannot connect: {exc.strerror}") from None
        self._sock = sock
        self.record.address = str(sock.getpeername()[0])
        sock.setblocking(False)
        conn = SSL.Connection(self._context(), sock)
        if not is_ip_address(host):
            conn.set_tlsext_host_name(host.encode("idna"))
        conn.set_connect_state()
        self._conn = conn
        try:
            self._call(conn.do_handshake)
        except SSL.Error as exc:
            self._broken(exc)
            self._learn(conn)
            raise TLSBroken(self.record, during_handshake=True) from None
        self.record.handshake_done = True
        self._learn(conn)
        return self.record

    def _learn(self, conn: SSL.Connection) -> None:
        rec = self.record
        rec.version = conn.get_protocol_version_name() if rec.handshake_done else None
        rec.cipher = conn.get_cipher_name() if rec.handshake_done else None
        proto = conn.get_alpn_proto_negotiated()
        rec.alpn = proto.decode("ascii", "replace") if proto else None
        rec.server_chain = list(conn.get_peer_cert_chain(as_cryptography=True) or [])
        rec.ca_names = list(conn.get_client_ca_list(as_cryptography=True))

    def _broken(self, exc: Exception) -> None:
        if self.record.error is None:
            self.record.error = _openssl_reason(exc)

    def _call(self, fn: Callable[..., _T], *args: object) -> _T:
        deadline = time.monotonic() + self.config.timeout
        while True:
            try:
                return fn(*args)
            except SSL.WantReadError:
                self._wait(deadline, read=True)
            except SSL.WantWriteError:
                self._wait(deadline, read=False)

    def _wait(self, deadline: float, *, read: bool) -> None:
        assert self._sock is not None
        left = deadline - time.monotonic()
        if left > 0:
            waits = ([self._sock], []) if read else ([], [self._sock])
            readable, writable, _ = select.select(*waits, [], left)
            if readable or writable:
                return
        rec = self.record
        raise ConnectError(
            f"{rec.host}:{rec.port}: no answer within {self.config.timeout:g} s (--timeout)"
        )

    def sendall(self, data: bytes) -> None:
        """Send all of ``data`` (raises ``TLSBroken`` on a TLS error or alert)."""
        assert self._conn is not None
        view = memoryview(data)
        while view:
            try:
                sent = self._call(self._conn.send, view)
            except SSL.Error as exc:
                self._broken(exc)
                raise TLSBroken(self.record, during_handshake=False) from None
            view = view[sent:]

    def recv(self, size: int = 65536) -> bytes:
        """Up to ``size`` bytes; ``b""`` at the end (close_notify or a plain TCP close)."""
        assert self._conn is not None
        try:
            return self._call(self._conn.recv, size)
        except SSL.ZeroReturnError:
            return b""
        except SSL.SysCallError as exc:
            if exc.args and exc.args[0] in (-1, 0):  # EOF without close_notify
                return b""
            self._broken(exc)
            raise TLSBroken(self.record, during_handshake=False) from None
        except SSL.Error as exc:
            self._broken(exc)
            raise TLSBroken(self.record, during_handshake=False) from None

    def close(self) -> None:
        """Close the TLS connection and the socket (no close_notify wait)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._keylog is not None:
            self._keylog.close()

    def __enter__(self) -> TLSClientConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def refused_identity(identity: Identity, reason: str) -> PKIError:
    """OpenSSL will not use this certificate (a 1024-bit RSA key, a SHA-1 signature, …)."""
    key = describe_key(identity.key)
    hint = "re-issue it with a modern key (mutls makecert defaults to ECDSA P-256)"
    return PKIError(
        f"client certificate {identity.subject} ({key}): OpenSSL refuses it ({reason}); {hint}"
    )


def _openssl_reason(exc: Exception) -> str:
    """The last OpenSSL reason string of an ``SSL.Error`` (``tlsv1 alert unknown ca``)."""
    args = exc.args[0] if exc.args else None
    if isinstance(args, list) and args and isinstance(args[-1], tuple):
        return str(args[-1][-1])
    if isinstance(exc, SSL.SysCallError) and len(exc.args) > 1:
        return str(exc.args[1])
    return str(exc) or type(exc).__name__
