"""The server's TLS configuration, built once into one ``OpenSSL.SSL.Context``.

Every pyOpenSSL ``Context`` setter refuses to run once a ``Connection`` exists, so everything is
configured here, before the first connection; a new configuration means a new
:class:`ServerContext` (the server rebuilds it on reload). Forked workers inherit the built
context, and with it the session-ticket keys, so a ticket resumes on any worker.
"""

from __future__ import annotations

import hashlib
import os
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from OpenSSL import SSL, crypto
from OpenSSL._util import ffi as _ffi
from OpenSSL._util import lib as _lib

from mutls.errors import PKIError, UsageError
from mutls.pki.certs import fingerprint
from mutls.pki.identity import Identity
from mutls.pki.keys import describe_key
from mutls.pki.trust import TrustMaterial
from mutls.tls.ciphers import DEFAULT_TLS12_CIPHERS
from mutls.tls.options import ClientCertMode, VerifyPolicy
from mutls.tls.verify import ClientVerifier, VerifyFailure

if TYPE_CHECKING:
    from mutls.tls.connection import TLSConnection

ALPN_HTTP11 = b"http/1.1"
#: leaf fingerprint -> the chain its client sent, for re-verifying ticket resumptions.
CHAIN_HINTS_MAX = 4096


@dataclass(frozen=True)
class ServerTLSConfig:
    """Everything the TLS engine needs; immutable, validated by :class:`ServerContext`.

    ``trust`` verifies client certificates (anchors, intermediates, Disallowed, CRLs);
    ``send_ca_names`` lists the anchors' subjects in the CertificateRequest (clients then offer
    only certificates from those CAs); ``ciphers`` is an OpenSSL cipher string for TLS 1.2
    (default: Mozilla intermediate, ECDHE with AES-GCM or ChaCha20), ``tls13_ciphers`` the
    TLS 1.3 suites (default: OpenSSL's). ``reject_at_handshake`` makes ``require`` mode fail
    the handshake when no certificate is sent (``certificate_required`` in TLS 1.3) instead of
    the HTTP 403. ``keylog_path`` writes NSS key-log lines (file mode 0600), for Wireshark.
    """

    identity: Identity
    client_cert_mode: ClientCertMode = ClientCertMode.NONE
    trust: TrustMaterial = field(default_factory=TrustMaterial)
    send_ca_names: bool = True
    ciphers: str | None = None
    tls13_ciphers: str | None = None
    reject_at_handshake: bool = False
    keylog_path: str | None = None


class ServerContext:
    """A built server context: the ``OpenSSL.SSL.Context`` and how to judge client certificates.

    Raises :class:`mutls.errors.UsageError` or :class:`mutls.errors.PKIError` (one line naming
    the flag) for a configuration OpenSSL refuses. ``warnings`` are startup lines for the log.
    The verdict policy belongs to the HTTP layer; the server calls :meth:`validate` with it.
    """

    def __init__(self, config: ServerTLSConfig) -> None:
        self.config = config
        self.warnings: list[str] = []
        self.verifier = ClientVerifier(config.trust)
        # True while the handshake's own store holds the current trust (see update_trust).
        self.handshake_store_current = True
        self.server_cert_pem = config.identity.certificate.public_bytes(
            serialization.Encoding.PEM
        ).decode("ascii")
        self._chain_hints: OrderedDict[str, tuple[crypto.X509, ...]] = OrderedDict()
        self._keylog_fd: int | None = None
        self.ssl_context = self._build()
        self._collect_warnings()

    # -- building ----------------------------------------------------------------------------

    def _build(self) -> SSL.Context:
        config = self.config
        context = SSL.Context(SSL.TLS_SERVER_METHOD)
        context.set_min_proto_version(SSL.TLS1_2_VERSION)
        context.set_max_proto_version(SSL.TLS1_3_VERSION)
        # No client-initiated renegotiation (a DoS lever, and it would re-run verification
        # outside our control); no compression (CRIME).
        context.set_options(SSL.OP_NO_RENEGOTIATION | SSL.OP_NO_COMPRESSION)
        context.set_mode(SSL.MODE_RELEASE_BUFFERS)  # idle connections drop their 34 KB buffers
        self._set_identity(context, config.identity)
        self._set_ciphers(context)
        # Tickets and session IDs both need a session id context, or OpenSSL fails every
        # resumption attempt ("session id context uninitialized", alert 80).
        context.set_session_id(self._session_id_context())
        context.set_session_cache_mode(SSL.SESS_CACHE_SERVER)
        context.set_alpn_select_callback(_select_alpn)
        self._set_client_verification(context)
        if config.keylog_path is not None:
            self._set_keylog(context, config.keylog_path)
        # A raw cffi callback, not pyOpenSSL's wrapper: it runs ~20 times per handshake and
        # only alerts matter, so the common case must cost no more than a bit test.
        _lib.SSL_CTX_set_info_callback(context._context, _INFO_CALLBACK)
        return context

    @staticmethod
    def _set_identity(context: SSL.Context, identity: Identity) -> None:
        try:
            context.use_certificate(identity.certificate)
            context.use_privatekey(identity.key)
            context.check_privatekey()
        except SSL.Error:
            raise PKIError(
                f"server certificate {identity.subject}: the private key does not match it"
            ) from None
        for cert in identity.chain:
            if cert.subject != cert.issuer:  # clients have the root already; don't send it
                context.add_extra_chain_cert(cert)

    def _set_ciphers(self, context: SSL.Context) -> None:
        ciphers = self.config.ciphers or DEFAULT_TLS12_CIPHERS
        try:
            context.set_cipher_list(ciphers.encode("ascii"))
        except (SSL.Error, UnicodeEncodeError):
            raise UsageError(
                f"--ciphers {ciphers!r}: OpenSSL knows no cipher in this string "
                "(e.g. 'ECDHE+AESGCM' or 'DEFAULT'; see `openssl ciphers -v`)"
            ) from None
        if self.config.tls13_ciphers is not None:
            try:
                context.set_tls13_ciphersuites(self.config.tls13_ciphers.encode("ascii"))
            except (SSL.Error, UnicodeEncodeError):
                raise UsageError(
                    f"--tls13-ciphers {self.config.tls13_ciphers!r}: not a list of TLS 1.3 "
                    "suites (e.g. 'TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256')"
                ) from None

    def _session_id_context(self) -> bytes:
        """Distinct per configuration, so a session never resumes under another mode."""
        digest = hashlib.sha256(b"mutls")
        digest.update(self.config.client_cert_mode.value.encode())
        digest.update(fingerprint(self.config.identity.certificate).encode())
        return digest.digest()[:32]

    def _set_client_verification(self, context: SSL.Context) -> None:
        config = self.config
        store = context.get_cert_store()
        if store is None:  # pyOpenSSL's typing allows it; a new context always has a store
            raise RuntimeError("OpenSSL context without a certificate store")
        self.verifier.populate(store)
        if config.client_cert_mode is ClientCertMode.NONE:
            context.set_verify(SSL.VERIFY_NONE)
            return
        mode = SSL.VERIFY_PEER
        if config.client_cert_mode is ClientCertMode.REQUIRE and config.reject_at_handshake:
            mode |= SSL.VERIFY_FAIL_IF_NO_PEER_CERT
        # A raw cffi callback, not pyOpenSSL's wrapper (which builds an X509 object for every
        # certificate of every handshake): the common case is one integer test per certificate.
        _lib.SSL_CTX_set_verify(context._context, mode, _VERIFY_CALLBACK)
        if config.send_ca_names:
            for anchor in config.trust.anchors:
                context.add_client_ca(anchor)

    def _set_keylog(self, context: SSL.Context, path: str) -> None:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            os.fchmod(fd, 0o600)
        except OSError as exc:
            raise UsageError(f"{path}: cannot open the key log (--keylog): {exc.strerror}") from exc
        self._keylog_fd = fd
        weakref.finalize(self, os.close, fd)

        def write_line(_connection: SSL.Connection, line: bytes) -> None:
            os.write(fd, line + b"\n")

        context.set_keylog_callback(write_line)

    def _collect_warnings(self) -> None:
        config = self.config
        if not self._tls12_usable():
            self.warnings.append(
                f"--ciphers {config.ciphers!r}: no TLS 1.2 cipher in it suits the server's "
                f"{describe_key(config.identity.key)} key; "
                "TLS 1.2 clients will fail with handshake_failure"
            )
        if config.client_cert_mode is not ClientCertMode.NONE and not self.verifier.has_anchors:
            self.warnings.append(
                "no trust anchor for client certificates (--client-ca FILE or the Trust store): "
                "every certificate will be reported not valid "
                "(unable to get local issuer certificate)"
            )
        if config.client_cert_mode is ClientCertMode.NONE and config.reject_at_handshake:
            self.warnings.append(
                "--reject-at-handshake has no effect without --client-cert require"
            )
        if config.keylog_path is not None:
            self.warnings.append(
                f"TLS secrets are written to {config.keylog_path} (--keylog): "
                "anyone who reads it can decrypt this server's traffic"
            )

    def _tls12_usable(self) -> bool:
        """Whether some enabled TLS 1.2 cipher can sign with the server's key type."""
        # A throwaway Connection lists the effective ciphers; no setter runs after this.
        names = SSL.Connection(self.ssl_context, None).get_cipher_list()
        tls12 = [n for n in names if not n.startswith("TLS_")]
        if isinstance(self.config.identity.key, rsa.RSAPrivateKey):
            return any("ECDSA" not in n for n in tls12)
        return any("ECDSA" in n for n in tls12)  # EC, Ed25519 and Ed448 use the ECDSA suites

    # -- use ---------------------------------------------------------------------------------

    def validate(self, policy: VerifyPolicy) -> list[str]:
        """Check the configuration against the HTTP layer's policy; call once at startup.

        Raises :class:`UsageError` for a server that could never accept a client (``require``
        + ``strict`` with no trust anchor at all); returns further warnings for the log.
        """
        mode = self.config.client_cert_mode
        anchors = self.verifier.has_anchors
        if mode is ClientCertMode.REQUIRE and policy is VerifyPolicy.STRICT and not anchors:
            raise UsageError(
                "--client-cert require with --verify strict and no trust anchor would refuse "
                "every client: give --client-ca FILE, or add the CA to the Trust store "
                "(mutls certmgr -add -c Trust root.cer)"
            )
        notes: list[str] = []
        if mode is not ClientCertMode.NONE and policy is VerifyPolicy.REPORT:
            notes.append(
                "--verify report: the app runs for invalid client certificates too and must "
                "check mutls.client_certificate(...).valid itself"
            )
        return notes

    def update_trust(self, trust: TrustMaterial) -> None:
        """Judge client certificates by new trust from now on, without a new SSL context.

        Sessions made before keep resuming (same ticket keys) and are judged by the new trust,
        as are full handshakes (the CertificateRequest's CA names stay those of the start).
        """
        self.verifier = ClientVerifier(trust)
        self.handshake_store_current = False

    def remember_chain(self, leaf_fingerprint: str, chain: tuple[crypto.X509, ...]) -> None:
        """Keep the intermediates a client sent: a ticket carries the leaf alone.

        They only help build the chain again (anchors still decide), so a missing hint can
        only make a resumed certificate look invalid, never valid.
        """
        hints = self._chain_hints
        hints[leaf_fingerprint] = chain
        hints.move_to_end(leaf_fingerprint)
        if len(hints) > CHAIN_HINTS_MAX:
            hints.popitem(last=False)

    def chain_hint(self, leaf_fingerprint: str) -> tuple[crypto.X509, ...]:
        """The intermediates remembered for a leaf (empty when none)."""
        return self._chain_hints.get(leaf_fingerprint, ())


def _select_alpn(
    _connection: SSL.Connection, offered: list[bytes]
) -> bytes | SSL._NoOverlappingProtocols:
    """HTTP/1.1 when offered; otherwise carry on without ALPN (clients fall back)."""
    if ALPN_HTTP11 in offered:
        return ALPN_HTTP11
    return SSL.NO_OVERLAPPING_PROTOCOLS


def _owner(connection: SSL.Connection) -> TLSConnection | None:
    ref = connection.get_app_data()
    return ref() if ref is not None else None


_STORE_CTX_SSL_INDEX = int(_lib.SSL_get_ex_data_X509_STORE_CTX_idx())


def _on_verify(_ok: int, store_ctx: Any) -> int:
    """Record the first error that counts, and let the handshake continue.

    OpenSSL calls this for every certificate of the chain (and again for every error); the
    store's error is cleared here, so what is not kept here is lost. Fails the handshake (0)
    when the error cannot be recorded: a verdict is never lost silently.
    """
    code = int(_lib.X509_STORE_CTX_get_error(store_ctx))
    if ClientVerifier.counts(code):
        ssl = _lib.X509_STORE_CTX_get_ex_data(store_ctx, _STORE_CTX_SSL_INDEX)
        connection = SSL.Connection._reverse_mapping.get(ssl)
        owner = _owner(connection) if connection is not None else None
        if owner is None:
            return 0
        if owner._verify_failure is None:
            x509 = _lib.X509_STORE_CTX_get_current_cert(store_ctx)
            _lib.X509_up_ref(x509)
            cert = crypto.X509._from_raw_x509_ptr(x509)
            depth = int(_lib.X509_STORE_CTX_get_error_depth(store_ctx))
            owner._verify_failure = VerifyFailure(code, depth, cert.to_cryptography())
    _lib.X509_STORE_CTX_set_error(store_ctx, _lib.X509_V_OK)
    return 1


_VERIFY_CALLBACK = _ffi.callback("int (*)(int, X509_STORE_CTX *)", _on_verify, error=0)


_SSL_CB_ALERT = int(_lib.SSL_CB_ALERT)
_SSL_CB_READ_ALERT = int(_lib.SSL_CB_READ_ALERT)
_SSL_CB_WRITE_ALERT = int(_lib.SSL_CB_WRITE_ALERT)


def _on_info(ssl: Any, where: int, value: int) -> None:
    """Note the alerts sent and received: the exact reason of a failed handshake."""
    if where & _SSL_CB_ALERT:
        connection = SSL.Connection._reverse_mapping.get(ssl)
        owner = _owner(connection) if connection is not None else None
        if owner is None:
            return
        if where & _SSL_CB_WRITE_ALERT == _SSL_CB_WRITE_ALERT:
            owner._sent_alert = value & 0xFF
        elif where & _SSL_CB_READ_ALERT == _SSL_CB_READ_ALERT:
            owner._received_alert = value & 0xFF


_INFO_CALLBACK = _ffi.callback("void (*)(const SSL *, int, int)", _on_info)
