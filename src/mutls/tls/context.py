"""The server's TLS configuration, built once into one OpenSSL ``SSL_CTX``.

Everything is configured here, before the first connection; a new configuration means a new
:class:`ServerContext` (the server rebuilds it on reload), a trust change only a new
certificate store (:meth:`ServerContext.update_trust`). Forked workers inherit the built
context, and with it the session-ticket keys, so a ticket resumes on any worker that can judge
it (see :class:`ChainHints`). OpenSSL is reached through :mod:`mutls.tls._openssl` alone.
"""

from __future__ import annotations

import hashlib
import os
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mutls.errors import PKIError, UsageError
from mutls.pki.certs import fingerprint
from mutls.pki.crl import ignored_deltas
from mutls.pki.identity import Identity
from mutls.pki.keys import describe_key
from mutls.pki.trust import TrustMaterial
from mutls.tls import _openssl, tickets
from mutls.tls._openssl import ffi, lib
from mutls.tls.bounded import BoundedCache
from mutls.tls.ciphers import DEFAULT_TLS12_CIPHERS
from mutls.tls.options import (
    ClientCertMode,
    HTTPVersions,
    TLSOptions,
    VerifyPolicy,
)
from mutls.tls.tickets import TicketKeys
from mutls.tls.verdicts import key_of
from mutls.tls.verify import SECURITY_LEVEL, ClientVerifier, nested

if TYPE_CHECKING:
    from mutls.tls.connection import TLSConnection

ALPN_HTTP11 = b"http/1.1"
#: the client chains (DER) the session-ID cache may hold: each cached session keeps its
#: client's chain, parsed (about 3x its DER), so the cache holds this divided by
#: ``max_client_chain`` sessions (128 at the default 32 KiB); OpenSSL's default, 20,480
#: sessions, let a flood of distinct 28 KB chains grow the server by 130 KB per handshake.
SESSION_CACHE_BYTES = 4 * 1024 * 1024
MIN_SESSION_CACHE = 64
#: bytes of client-sent intermediates kept so that tickets can be judged exactly (see
#: :class:`ChainHints`).
CHAIN_HINTS_MAX_BYTES = 8 * 1024 * 1024
#: the key of "the client sent no certificate besides its leaf": nothing to remember.
EMPTY_CHAIN = key_of(())


class ChainHints:
    """The intermediates clients sent in full handshakes, by a digest of the exact list.

    A ticket carries the client's leaf but not what it sent with it, so the digest rides in the
    ticket (``SSL_SESSION_set1_ticket_appdata``) and the list stays here; a ticket whose list is
    not here (another worker made it, or it was evicted) is declined and the client does a
    full handshake: a resumed verdict is always the one a full handshake with the same chain
    would get now. Bounded in bytes, oldest first out.
    """

    def __init__(self, max_bytes: int = CHAIN_HINTS_MAX_BYTES) -> None:
        self._lists: BoundedCache[bytes, tuple[bytes, ...]] = BoundedCache(
            max_bytes, max_item_bytes=max_bytes // 4
        )
        #: tickets declined because their list was not known here (for the log and bench).
        self.declined = 0

    @property
    def size(self) -> tuple[int, int]:
        """(lists, bytes)."""
        return self._lists.size

    def remember(self, sent: Sequence[bytes]) -> bytes:
        """Keep ``sent`` and return its key (a list too large to keep: its tickets are
        declined)."""
        if not sent:
            return EMPTY_CHAIN
        key = key_of(tuple(sent))
        if key in self._lists:
            self._lists.touch(key)
        else:
            self._lists.put(key, tuple(sent), sum(map(len, sent)))
        return key

    def clear(self) -> None:
        """Forget every list (their tickets will be declined)."""
        self._lists.clear()

    def get(self, key: bytes) -> tuple[bytes, ...] | None:
        """The list for ``key`` (``None`` when not known here)."""
        if key == EMPTY_CHAIN:
            return ()
        return self._lists.get(key)


@dataclass(frozen=True)
class ServerTLSConfig(TLSOptions):
    """Everything the TLS engine needs; immutable, validated by :class:`ServerContext`.

    ``trust`` verifies client certificates (anchors, intermediates, Disallowed, CRLs); the
    handshake's tuning (``send_ca_names``, ``ciphers``, ``tls13_ciphers``,
    ``reject_at_handshake``, ``keylog_path``, ``max_client_chain``: keyword-only) is
    :class:`~mutls.tls.options.TLSOptions`'s, given one by one or as a whole with
    :meth:`with_options`.
    """

    identity: Identity
    client_cert_mode: ClientCertMode = ClientCertMode.NONE
    trust: TrustMaterial = field(default_factory=TrustMaterial)
    #: session-ticket keys shared with other contexts (workers, generations, machines); ``None``:
    #: OpenSSL's own, random for this context alone (see :mod:`mutls.tls.tickets`).
    ticket_keys: TicketKeys | None = None
    #: ``--http``: the ALPN names offered (see :class:`~mutls.tls.options.HTTPVersions`).
    http: HTTPVersions = HTTPVersions.HTTP11

    @classmethod
    def with_options(cls, options: TLSOptions, **engine: Any) -> ServerTLSConfig:
        """A config with ``options``' tuning and the rest (``identity``, ``trust``...) given."""
        tuning = {item.name: getattr(options, item.name) for item in fields(TLSOptions)}
        return cls(**engine, **tuning)


class ServerContext:
    """A built server context: the ``SSL_CTX`` and how to judge client certificates.

    Raises :class:`mutls.errors.UsageError` or :class:`mutls.errors.PKIError` (one line naming
    the flag) for a configuration OpenSSL refuses. ``warnings`` are startup lines for the log.
    The verdict policy belongs to the HTTP layer; the server calls :meth:`validate` with it.
    """

    def __init__(self, config: ServerTLSConfig) -> None:
        self.config = config
        self.warnings: list[str] = []
        self.server_cert_pem = config.identity.certificate.public_bytes(
            serialization.Encoding.PEM
        ).decode("ascii")
        self.chain_hints = ChainHints()
        self._keylog_fd: int | None = None
        self.ctx = self._build()
        # The handshake's security level (a cipher string may change it) judges every path.
        self.verifier = ClientVerifier(
            config.trust, security_level=int(lib.SSL_CTX_get_security_level(self.ctx))
        )
        lib.SSL_CTX_set1_cert_store(self.ctx, self.verifier.store)
        self._collect_warnings()

    # -- building ----------------------------------------------------------------------------

    def _build(self) -> Any:
        config = self.config
        ctx = ffi.gc(lib.SSL_CTX_new(lib.TLS_server_method()), lib.SSL_CTX_free)
        if ctx == ffi.NULL:
            raise MemoryError("SSL_CTX_new failed")
        lib.SSL_CTX_ctrl(
            ctx, _openssl.SSL_CTRL_SET_MIN_PROTO_VERSION, _openssl.TLS1_2_VERSION, ffi.NULL
        )
        lib.SSL_CTX_ctrl(
            ctx, _openssl.SSL_CTRL_SET_MAX_PROTO_VERSION, _openssl.TLS1_3_VERSION, ffi.NULL
        )
        # No client-initiated renegotiation (a DoS lever, and it would re-run verification
        # outside our control); no compression (CRIME).
        lib.SSL_CTX_set_options(
            ctx, _openssl.SSL_OP_NO_RENEGOTIATION | _openssl.SSL_OP_NO_COMPRESSION
        )
        # Idle connections drop their 34 KB record buffers.
        lib.SSL_CTX_ctrl(ctx, _openssl.SSL_CTRL_MODE, _openssl.SSL_MODE_RELEASE_BUFFERS, ffi.NULL)
        # Explicit, whatever the system's openssl.cnf says; a cipher string may change it.
        lib.SSL_CTX_set_security_level(ctx, SECURITY_LEVEL)
        self._set_identity(ctx, config.identity)
        self._set_ciphers(ctx)
        # DHE suites (--ciphers DEFAULT lists them) need a group: the RFC 7919 one sized to the key.
        lib.SSL_CTX_ctrl(ctx, _openssl.SSL_CTRL_SET_DH_AUTO, 1, ffi.NULL)
        # Tickets and session IDs both need a session id context, or OpenSSL fails every
        # resumption attempt ("session id context uninitialized", alert 80).
        sid = self._session_id_context()
        lib.SSL_CTX_set_session_id_context(ctx, sid, len(sid))
        lib.SSL_CTX_ctrl(
            ctx, _openssl.SSL_CTRL_SET_SESS_CACHE_MODE, _openssl.SSL_SESS_CACHE_SERVER, ffi.NULL
        )
        sessions = max(MIN_SESSION_CACHE, SESSION_CACHE_BYTES // config.max_client_chain)
        lib.SSL_CTX_ctrl(ctx, _openssl.SSL_CTRL_SET_SESS_CACHE_SIZE, sessions, ffi.NULL)
        # One TLS 1.3 ticket per handshake, not OpenSSL's two: a client resumes with one.
        lib.SSL_CTX_set_num_tickets(ctx, 1)
        lib.SSL_CTX_set_session_ticket_cb(ctx, _TICKET_GENERATE, _TICKET_DECRYPT, ffi.NULL)
        if config.ticket_keys is not None:
            tickets.install(ctx, config.ticket_keys, self)
        lib.SSL_CTX_ctrl(
            ctx, _openssl.SSL_CTRL_SET_MAX_CERT_LIST, config.max_client_chain, ffi.NULL
        )
        lib.SSL_CTX_set_alpn_select_cb(ctx, _ALPN_CALLBACK, ffi.NULL)
        self._set_client_verification(ctx)
        if config.keylog_path is not None:
            self._set_keylog(ctx, config.keylog_path)
        # It runs ~20 times per handshake and only alerts matter: one bit test in the common case.
        lib.SSL_CTX_set_info_callback(ctx, _INFO_CALLBACK)
        return ctx

    @staticmethod
    def _set_identity(ctx: Any, identity: Identity) -> None:
        der = serialization.Encoding.DER
        key = _openssl.private_key_from_der(
            identity.key.private_bytes(
                der, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        cert = _openssl.x509_from_der(identity.certificate.public_bytes(der))
        if not (
            lib.SSL_CTX_use_certificate(ctx, cert)
            and lib.SSL_CTX_use_PrivateKey(ctx, key)
            and lib.SSL_CTX_check_private_key(ctx)
        ):
            reasons = _openssl.errors()
            # "ee key too small" (Mono's RSA-1024 localhost.p12) is not a mismatch: say which.
            if any("key too small" in r for r in reasons):
                raise PKIError(
                    f"server certificate {identity.subject}: OpenSSL refuses its "
                    f"{describe_key(identity.key)} key ({reasons[-1]}: security level "
                    f"{SECURITY_LEVEL} needs RSA 2048 or EC 224 bits); re-issue it with mutls "
                    "makecert"
                )
            raise PKIError(
                f"server certificate {identity.subject}: the private key does not match it"
            )
        for issuer in identity.chain:
            if issuer.subject != issuer.issuer:  # clients have the root already; don't send it
                extra = _openssl.x509_from_der(issuer.public_bytes(der))
                lib.X509_up_ref(extra)  # the context takes this reference
                lib.SSL_CTX_ctrl(ctx, _openssl.SSL_CTRL_EXTRA_CHAIN_CERT, 0, extra)

    def _set_ciphers(self, ctx: Any) -> None:
        ciphers = self.config.ciphers or DEFAULT_TLS12_CIPHERS
        if not _ascii_call(lib.SSL_CTX_set_cipher_list, ctx, ciphers):
            raise UsageError(
                f"--ciphers {ciphers!r}: OpenSSL knows no cipher in this string "
                "(e.g. 'ECDHE+AESGCM' or 'DEFAULT'; see `openssl ciphers -v`)"
            )
        suites = self.config.tls13_ciphers
        if suites is not None and not _ascii_call(lib.SSL_CTX_set_ciphersuites, ctx, suites):
            raise UsageError(
                f"--tls13-ciphers {suites!r}: not a list of TLS 1.3 "
                "suites (e.g. 'TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256')"
            )

    def _session_id_context(self) -> bytes:
        """Distinct per configuration, so a session never resumes under another mode."""
        digest = hashlib.sha256(b"mutls")
        digest.update(self.config.client_cert_mode.value.encode())
        digest.update(fingerprint(self.config.identity.certificate).encode())
        return digest.digest()[:32]

    def _set_client_verification(self, ctx: Any) -> None:
        config = self.config
        if config.client_cert_mode is ClientCertMode.NONE:
            lib.SSL_CTX_set_verify(ctx, _openssl.SSL_VERIFY_NONE, ffi.NULL)
            return
        mode = _openssl.SSL_VERIFY_PEER
        if config.client_cert_mode is ClientCertMode.REQUIRE and config.reject_at_handshake:
            mode |= _openssl.SSL_VERIFY_FAIL_IF_NO_PEER_CERT
        lib.SSL_CTX_set_verify(ctx, mode, _VERIFY_CALLBACK)
        lib.SSL_CTX_set_cert_verify_callback(ctx, _CERT_VERIFY_CALLBACK, ffi.NULL)
        if config.send_ca_names:
            der = serialization.Encoding.DER
            for anchor in config.trust.anchors:
                lib.SSL_CTX_add_client_CA(ctx, _openssl.x509_from_der(anchor.public_bytes(der)))

    def _set_keylog(self, ctx: Any, path: str) -> None:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            os.fchmod(fd, 0o600)
        except OSError as exc:
            raise UsageError(f"{path}: cannot open the key log (--keylog): {exc.strerror}") from exc
        self._keylog_fd = fd
        weakref.finalize(self, os.close, fd)
        lib.SSL_CTX_set_keylog_callback(ctx, _KEYLOG_CALLBACK)

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
        self.warnings += [
            f"delta CRL of {crl.issuer.rfc4514_string()}: no base CRL of that issuer names a "
            "Freshest CRL, so OpenSSL applies it only to certificates that name one"
            for crl in ignored_deltas(config.trust.crls)
        ]
        if config.keylog_path is not None:
            self.warnings.append(
                f"TLS secrets are written to {config.keylog_path} (--keylog): "
                "anyone who reads it can decrypt this server's traffic"
            )

    def cipher_names(self) -> list[str]:
        """The enabled cipher names, TLS 1.3 suites first (OpenSSL's order)."""
        ssl = ffi.gc(lib.SSL_new(self.ctx), lib.SSL_free)
        return _openssl.names_of(lib.SSL_get_ciphers(ssl), lib.SSL_CIPHER_get_name)

    def _tls12_usable(self) -> bool:
        """Whether some enabled TLS 1.2 cipher can sign with the server's key type."""
        tls12 = [n for n in self.cipher_names() if not n.startswith("TLS_")]
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
        """Judge client certificates by new trust from now on, in this same context.

        The handshake's store is replaced, so full handshakes verify against the new trust;
        resumed sessions are verified again against it too (same ticket keys). The
        CertificateRequest's CA names stay those of the start.
        """
        self.verifier = ClientVerifier(trust, security_level=self.verifier.security_level)
        lib.SSL_CTX_set1_cert_store(self.ctx, self.verifier.store)


def _ascii_call(function: Any, ctx: Any, value: str) -> bool:
    try:
        encoded = value.encode("ascii")
    except UnicodeEncodeError:
        return False
    ok = bool(function(ctx, encoded))
    _openssl.errors()
    return ok


# -- the callbacks: OpenSSL calls them with an SSL *; owner_of finds its TLSConnection --------

_OWNERS: dict[int, weakref.ref[TLSConnection]] = {}


def own(ssl: Any, connection: TLSConnection) -> int:
    """Let the callbacks find ``connection`` from its ``SSL *``; the key for :func:`disown`."""
    address = int(ffi.cast("uintptr_t", ssl))
    _OWNERS[address] = weakref.ref(connection)
    return address


def disown(address: int) -> None:
    """Forget an ``SSL *`` (before it is freed)."""
    _OWNERS.pop(address, None)


def owner_of(ssl: Any) -> TLSConnection | None:
    """The :class:`TLSConnection` of an ``SSL *`` (``None`` once it is gone)."""
    ref = _OWNERS.get(int(ffi.cast("uintptr_t", ssl)))
    return ref() if ref is not None else None


def _on_verify(ok: int, store_ctx: Any) -> int:
    """Record the first error that counts, and let the handshake continue.

    OpenSSL calls this for every certificate of the chain (and again for every error); the
    store's error is cleared here, so what is not kept here is lost. Fails the handshake (0)
    when the error cannot be recorded: a verdict is never lost silently. A CRL issuer's path,
    verified inside, keeps OpenSSL's own answer (see :func:`mutls.tls.verify.nested`).
    """
    if nested(store_ctx):
        return ok
    owner = owner_of(lib.X509_STORE_CTX_get_ex_data(store_ctx, _openssl.STORE_CTX_SSL_INDEX))
    if owner is None:
        return 0
    owner.verify_recorder.note(store_ctx)
    return 1


def _on_cert_verify(store_ctx: Any, _arg: Any) -> int:
    """OpenSSL's own ``X509_verify_cert``, with the ``CA`` store's intermediates added after
    the client's certificates as untrusted helpers (see :meth:`ClientVerifier.new_store`)."""
    owner = owner_of(lib.X509_STORE_CTX_get_ex_data(store_ctx, _openssl.STORE_CTX_SSL_INDEX))
    if owner is None:
        return 0
    sent = lib.X509_STORE_CTX_get0_untrusted(store_ctx)
    helpers = owner.context.verifier.with_intermediates(sent)
    lib.X509_STORE_CTX_set0_untrusted(store_ctx, helpers.ptr)
    try:
        return int(lib.X509_verify_cert(store_ctx))
    finally:
        lib.X509_STORE_CTX_set0_untrusted(store_ctx, sent)  # ours is freed with ``helpers``


def _on_alpn(ssl: Any, out: Any, outlen: Any, offered: Any, offered_len: int, _arg: Any) -> int:
    """The first of the server's ALPN names (``--http``) that the client offers. None of them:
    HTTP/1.1 carries on without ALPN (clients fall back), while an HTTP/2-only server refuses
    the handshake (no_application_protocol, RFC 7301 3.2)."""
    owner = owner_of(ssl)
    versions = owner.context.config.http if owner is not None else HTTPVersions.HTTP11
    data = ffi.buffer(offered, offered_len)[:]
    names: dict[bytes, int] = {}
    at = 0
    while at < len(data):
        size = data[at]
        names.setdefault(data[at + 1 : at + 1 + size], at)
        at += 1 + size
    for name in versions.alpn:
        found = names.get(name)
        if found is not None:
            out[0] = offered + found + 1
            outlen[0] = len(name)
            return _openssl.SSL_TLSEXT_ERR_OK
    if versions is HTTPVersions.HTTP2:
        return _openssl.SSL_TLSEXT_ERR_ALERT_FATAL
    return _openssl.SSL_TLSEXT_ERR_NOACK


def _on_info(ssl: Any, where: int, value: int) -> None:
    """Note the alerts sent and received: the exact reason of a failed handshake."""
    if where & _openssl.SSL_CB_ALERT:
        owner = owner_of(ssl)
        if owner is None:
            return
        if where & _openssl.SSL_CB_WRITE_ALERT == _openssl.SSL_CB_WRITE_ALERT:
            owner.sent_alert = value & 0xFF
        elif where & _openssl.SSL_CB_READ_ALERT == _openssl.SSL_CB_READ_ALERT:
            owner.received_alert = value & 0xFF


def _on_keylog(ssl: Any, line: Any) -> None:
    owner = owner_of(ssl)
    fd = owner.context._keylog_fd if owner is not None else None
    if fd is not None:
        os.write(fd, ffi.string(line) + b"\n")


def _on_ticket_generate(ssl: Any, _arg: Any) -> int:
    """Put the key of the client's exact chain in the ticket (see :class:`ChainHints`)."""
    owner = owner_of(ssl)
    if owner is None:
        return 1  # no appdata: the ticket will be declined
    key = owner.chain_key
    if key is None:
        sent = _openssl.stack_ders(lib.SSL_get_peer_cert_chain(ssl))
        key = owner.chain_key = owner.context.chain_hints.remember(sent)
    lib.SSL_SESSION_set1_ticket_appdata(lib.SSL_get_session(ssl), key, len(key))
    return 1


def _on_ticket_decrypt(
    ssl: Any, session: Any, _name: Any, _name_len: int, status: int, _arg: Any
) -> int:
    """Use a ticket only when this process knows the exact chain it was issued for."""
    if status not in (_openssl.SSL_TICKET_SUCCESS, _openssl.SSL_TICKET_SUCCESS_RENEW):
        return _openssl.SSL_TICKET_RETURN_IGNORE_RENEW
    owner = owner_of(ssl)
    data = ffi.new("void **")
    size = ffi.new("size_t *")
    if owner is None or not lib.SSL_SESSION_get0_ticket_appdata(session, data, size):
        return _openssl.SSL_TICKET_RETURN_IGNORE_RENEW
    key = bytes(ffi.buffer(data[0], size[0])) if size[0] == len(EMPTY_CHAIN) else None
    hints = owner.context.chain_hints
    if key is None or hints.get(key) is None:
        hints.declined += 1
        return _openssl.SSL_TICKET_RETURN_IGNORE_RENEW
    owner.chain_key = key
    if status == _openssl.SSL_TICKET_SUCCESS_RENEW:
        return _openssl.SSL_TICKET_RETURN_USE_RENEW
    return _openssl.SSL_TICKET_RETURN_USE


def _log_callback_error(kind: type[BaseException], value: BaseException, _tb: Any) -> None:
    from mutls.server.log import log

    log.error("TLS callback failed: %s: %s", kind.__name__, value)


_VERIFY_CALLBACK = ffi.callback(
    "int (*)(int, X509_STORE_CTX *)", _on_verify, error=0, onerror=_log_callback_error
)
_CERT_VERIFY_CALLBACK = ffi.callback(
    "int (*)(X509_STORE_CTX *, void *)", _on_cert_verify, error=0, onerror=_log_callback_error
)
_ALPN_CALLBACK = ffi.callback(
    "int (*)(SSL *, const unsigned char **, unsigned char *, const unsigned char *, "
    "unsigned int, void *)",
    _on_alpn,
    error=_openssl.SSL_TLSEXT_ERR_NOACK,
    onerror=_log_callback_error,
)
_INFO_CALLBACK = ffi.callback(
    "void (*)(const SSL *, int, int)", _on_info, onerror=_log_callback_error
)
_KEYLOG_CALLBACK = ffi.callback(
    "void (*)(const SSL *, const char *)", _on_keylog, onerror=_log_callback_error
)
_TICKET_GENERATE = ffi.callback(
    "int (*)(SSL *, void *)", _on_ticket_generate, error=0, onerror=_log_callback_error
)
_TICKET_DECRYPT = ffi.callback(
    "int (*)(SSL *, SSL_SESSION *, const unsigned char *, size_t, int, void *)",
    _on_ticket_decrypt,
    error=_openssl.SSL_TICKET_RETURN_IGNORE_RENEW,
    onerror=_log_callback_error,
)
