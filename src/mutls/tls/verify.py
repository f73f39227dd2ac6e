"""The client-certificate verdict: one chain, one function, every path.

OpenSSL builds and verifies the chain; mutls judges *that* chain and nothing else. Every path
produces the same input, a :class:`Verification` (the chain OpenSSL built, leaf first, and the
first error that counts), and :meth:`ClientVerifier.verdict` turns it into the
:class:`ClientCertificate`:

- a full handshake: the handshake's verify callback (:mod:`mutls.tls.context`) records the first
  error and ``SSL_get0_verified_chain`` gives the chain;
- a resumed session, a certificate forwarded by a trusted proxy, and :meth:`verify_chain`:
  :meth:`ClientVerifier.verify` runs ``X509_verify_cert`` on the same store, with the same
  callback, purpose (``ssl_client``) and security level as the handshake, on the leaf and the
  exact certificates the client sent (the resumption rule is in :mod:`mutls.tls.connection`).

Rules beyond OpenSSL's own, applied to the chain OpenSSL built (never to the list the client
sent, never by name):

- *Disallowed* certificates are refused wherever they are in the built chain, before any other
  error; a certificate matches by its SHA-256 fingerprint or by its public key (SPKI), so a
  re-issued copy of a withdrawn CA (same key, new certificate) is refused too.
- A certificate of the built chain that does not parse strictly (``cryptography``: duplicate
  extensions, BER where DER is required, malformed names) makes the verdict NOT valid, saying so.
- CRLs are checked for every certificate of the chain (``X509_V_FLAG_CRL_CHECK_ALL``), delta
  CRLs included (``X509_V_FLAG_USE_DELTAS``); a CA without a CRL in the trust material is not
  checked ("unable to get certificate CRL" does not count), so a CRL for one CA does not break
  clients of another.
- Weak keys and signatures are OpenSSL's security level (2: RSA/DSA ≥ 2048 bits, EC ≥ 224,
  no SHA-1 or MD5 signatures but a root's own) on every path, set on the standalone check as
  the handshake sets it.
- A CA certificate (basicConstraints CA:TRUE) is never a client certificate: "unsuitable
  certificate purpose" (OpenSSL accepts one whose keyUsage allows digitalSignature).
- A self-signed root the client sends along is ignored: an unknown issuer reads "unable to get
  local issuer certificate" whether the client sent its root or not.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mutls.pki.certs import is_ca_certificate
from mutls.pki.trust import TrustMaterial, spki_sha256
from mutls.tls import _openssl
from mutls.tls._openssl import ffi, lib
from mutls.tls.client_certificate import ClientCertificate

X509_V_ERR_UNABLE_TO_GET_CRL = 3
X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN = 19
X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY = 20
X509_V_ERR_INVALID_PURPOSE = 26
#: the code reported with :data:`DISALLOWED` (OpenSSL's "certificate rejected").
X509_V_ERR_CERT_REJECTED = 28
#: the code reported when a certificate does not parse ("unspecified certificate verification
#: error", X509_V_ERR_UNSPECIFIED): OpenSSL has no code of its own for it.
X509_V_ERR_UNSPECIFIED = 1
DISALLOWED = "certificate is in the Disallowed store"
UNPARSEABLE = "certificate could not be parsed strictly (DER)"
#: the security level of the handshake, applied to the standalone check too (see module docs).
SECURITY_LEVEL = 2
_FLAGS_WITH_CRLS = (
    _openssl.X509_V_FLAG_CRL_CHECK
    | _openssl.X509_V_FLAG_CRL_CHECK_ALL
    | _openssl.X509_V_FLAG_USE_DELTAS
    | _openssl.X509_V_FLAG_EXTENDED_CRL_SUPPORT
)


def verify_error_text(code: int) -> str:
    """OpenSSL's wording for a verification error code (``X509_verify_cert_error_string``)."""
    return _openssl.verify_error_text(code)


def counts(code: int) -> bool:
    """Whether an error OpenSSL reported counts against the certificate."""
    return code != 0 and code != X509_V_ERR_UNABLE_TO_GET_CRL


@dataclass(frozen=True)
class VerifyFailure:
    """One verification error as OpenSSL reported it: code, depth, and the certificate there
    (its DER)."""

    code: int
    depth: int
    der: bytes | None = None


@dataclass(frozen=True)
class Verification:
    """What OpenSSL found for one chain: the chain it built (DER, leaf first, as far as it
    could build it) and the first error that counts. The one input of a verdict."""

    built: tuple[bytes, ...]
    failure: VerifyFailure | None


class FailureRecorder:
    """Keeps the first error that counts, as the verify callback reports them."""

    __slots__ = ("failure",)

    def __init__(self) -> None:
        self.failure: VerifyFailure | None = None

    def note(self, store_ctx: Any) -> None:
        """Record the store's current error if it counts and is the first; then clear it."""
        code = int(lib.X509_STORE_CTX_get_error(store_ctx))
        if counts(code) and self.failure is None:
            depth = int(lib.X509_STORE_CTX_get_error_depth(store_ctx))
            current = lib.X509_STORE_CTX_get_current_cert(store_ctx)
            der = _openssl.x509_to_der(current) if current != ffi.NULL else None
            self.failure = VerifyFailure(code, depth, der)
        lib.X509_STORE_CTX_set_error(store_ctx, _openssl.X509_V_OK)


_standalone = threading.local()


def nested(store_ctx: Any) -> bool:
    """Whether OpenSSL is verifying a CRL issuer's own path inside a verification: that
    one keeps OpenSSL's answer (its failure becomes "CRL path validation error" in the
    chain's verification, which is recorded there)."""
    return bool(lib.X509_STORE_CTX_get0_parent_ctx(store_ctx) != ffi.NULL)


def _on_standalone_verify(ok: int, store_ctx: Any) -> int:
    if nested(store_ctx):
        return ok
    recorder: FailureRecorder | None = getattr(_standalone, "recorder", None)
    if recorder is None:
        return 0
    recorder.note(store_ctx)
    return 1


_STANDALONE_CALLBACK = ffi.callback("int (*)(int, X509_STORE_CTX *)", _on_standalone_verify, 0)


class ClientVerifier:
    """Verifies client chains against one :class:`TrustMaterial` (one trust generation).

    Immutable once built; a trust change builds a new verifier (see
    :meth:`mutls.tls.context.ServerContext.update_trust`), and with it a new OpenSSL store.
    """

    def __init__(self, trust: TrustMaterial, *, security_level: int = SECURITY_LEVEL) -> None:
        self.trust = trust
        self.security_level = security_level
        self._disallowed = trust.disallowed_fingerprints
        self._disallowed_keys = trust.disallowed_keys
        self.store = self.new_store()
        #: the ``CA`` store's intermediates, offered to OpenSSL as *untrusted* certificates
        #: after the ones the client sent (see :meth:`with_intermediates`).
        self.intermediates = [
            _openssl.x509_from_der(c.public_bytes(serialization.Encoding.DER))
            for c in trust.intermediates
        ]

    @property
    def has_anchors(self) -> bool:
        """True when at least one trust anchor is configured."""
        return bool(self.trust.anchors)

    def new_store(self) -> Any:
        """A new ``X509_STORE *`` holding this trust's anchors and CRLs (the handshake's and
        our own).

        The ``CA`` store's intermediates are not in it: OpenSSL treats every certificate of
        its store as trusted, and once a chain reaches a trusted certificate it goes on only
        through trusted ones, so an intermediate there would refuse a client that sends the
        CA above it. They are untrusted helpers instead (:meth:`with_intermediates`).
        """
        trust = self.trust
        store = ffi.gc(lib.X509_STORE_new(), lib.X509_STORE_free)
        _openssl.add_to_store(
            store,
            [c.public_bytes(serialization.Encoding.DER) for c in trust.anchors],
            [c.public_bytes(serialization.Encoding.DER) for c in trust.crls],
        )
        _openssl.set_flags_and_purpose(store, _FLAGS_WITH_CRLS if trust.crls else 0)
        return store

    def with_intermediates(self, sent: Any) -> _openssl.X509Stack:
        """The untrusted certificates for a verification: what the client sent (a
        ``STACK_OF(X509)``, first), then the ``CA`` store's intermediates."""
        return _openssl.X509Stack(made=self.intermediates, before=sent)

    # -- the standalone path: resumption, forwarded certificates ------------------------------

    def verify(self, leaf: bytes, untrusted: Sequence[bytes] = ()) -> Verification:
        """Verify ``leaf`` (DER) now, with ``untrusted`` (DER) to help build the chain, exactly
        as a handshake would: same store, purpose, security level, callback."""
        try:
            leaf_x509 = _openssl.x509_from_der(leaf)
        except ValueError:
            return Verification((leaf,), VerifyFailure(X509_V_ERR_UNSPECIFIED, 0, leaf))
        sent = _openssl.X509Stack(untrusted)
        others = self.with_intermediates(sent.ptr)
        ctx = ffi.gc(lib.X509_STORE_CTX_new(), lib.X509_STORE_CTX_free)
        if not lib.X509_STORE_CTX_init(ctx, self.store, leaf_x509, others.ptr):
            _openssl.errors()
            raise MemoryError("X509_STORE_CTX_init failed")
        lib.X509_STORE_CTX_set_default(ctx, b"ssl_client")
        lib.X509_VERIFY_PARAM_set_auth_level(
            lib.X509_STORE_CTX_get0_param(ctx), self.security_level
        )
        lib.X509_STORE_CTX_set_verify_cb(ctx, _STANDALONE_CALLBACK)
        recorder = FailureRecorder()
        _standalone.recorder = recorder
        try:
            lib.X509_verify_cert(ctx)
        finally:
            _standalone.recorder = None
        _openssl.errors()
        built = _openssl.stack_ders(lib.X509_STORE_CTX_get0_chain(ctx)) or (leaf,)
        return Verification(built, recorder.failure)

    def verify_chain(self, chain: Sequence[x509.Certificate]) -> ClientCertificate:
        """The verdict on a chain that came without a handshake (leaf first), e.g. forwarded
        by a trusted proxy: :meth:`verify` then :meth:`verdict`, as for a resumed session.

        Nothing here proves the sender holds the leaf's key; whoever forwarded it vouches.
        """
        if not chain:
            return ClientCertificate.absent()
        ders = [c.public_bytes(serialization.Encoding.DER) for c in chain]
        return self.verdict(self.verify(ders[0], ders[1:]), sent=tuple(ders[1:]))

    # -- the verdict ----------------------------------------------------------------------------

    def verdict(
        self,
        verification: Verification,
        *,
        sent: Sequence[bytes] = (),
        resumed: bool = False,
    ) -> ClientCertificate:
        """The :class:`ClientCertificate` for what OpenSSL found (the one function of every
        path). ``sent``: the certificates the client sent besides its leaf (what the app sees
        as the chain)."""
        built = verification.built
        parsed = [_strict(der) for der in built]
        leaf = parsed[0]
        shown: tuple[x509.Certificate, ...] = ()
        if leaf is not None:
            shown = (leaf, *(c for c in (_strict(d) for d in sent) if c is not None))
        failure = self._disallowed_in(built, parsed)
        text = DISALLOWED if failure is not None else None
        if failure is None:
            unparseable = next((d for d, c in enumerate(parsed) if c is None), None)
            if unparseable is not None:
                failure = VerifyFailure(X509_V_ERR_UNSPECIFIED, unparseable, built[unparseable])
                text = UNPARSEABLE
        if failure is None and verification.failure is not None:
            failure = _normalise(verification.failure, built)
        if failure is None and leaf is not None and is_ca_certificate(leaf):
            failure = VerifyFailure(X509_V_ERR_INVALID_PURPOSE, 0, built[0])
        if failure is None:
            return ClientCertificate(
                present=True, valid=True, chain=shown, resumed=resumed, verified_chain=built
            )
        if text is None:
            text = verify_error_text(failure.code)
        at = failure.der
        return ClientCertificate(
            present=True,
            valid=False,
            error=text,
            error_code=failure.code,
            error_depth=failure.depth,
            error_certificate=_strict(at) if at is not None else None,
            chain=shown,
            resumed=resumed,
            verified_chain=built,
        )

    def _disallowed_in(
        self, built: Sequence[bytes], parsed: Sequence[x509.Certificate | None]
    ) -> VerifyFailure | None:
        """The first Disallowed certificate of the built chain (by fingerprint or key)."""
        if not self._disallowed and not self._disallowed_keys:
            return None
        for depth, (der, cert) in enumerate(zip(built, parsed, strict=True)):
            if hashlib.sha256(der).hexdigest() in self._disallowed:
                return VerifyFailure(X509_V_ERR_CERT_REJECTED, depth, der)
            if (
                cert is not None
                and self._disallowed_keys
                and spki_sha256(cert) in self._disallowed_keys
            ):
                return VerifyFailure(X509_V_ERR_CERT_REJECTED, depth, der)
        return None


def _strict(der: bytes) -> x509.Certificate | None:
    """``der`` as a certificate whose every field parses, or ``None``.

    ``cryptography`` parses lazily: a certificate OpenSSL accepted may still hold an extension
    or a name ``cryptography`` refuses, which would surface as an exception wherever the app
    reads it. Reading them all here makes such a certificate a verdict, not a traceback.
    """
    try:
        cert = x509.load_der_x509_certificate(der)
        cert.subject.rfc4514_string()
        cert.issuer.rfc4514_string()
        for extension in cert.extensions:
            _ = extension.value
        cert.not_valid_after_utc  # noqa: B018
        cert.not_valid_before_utc  # noqa: B018
    except Exception:  # ValueError, DuplicateExtension, UnsupportedGeneralNameType, ...
        return None
    return cert


def _normalise(failure: VerifyFailure, built: Sequence[bytes]) -> VerifyFailure:
    """Report an untrusted root the client sent as its absence (see the module docs)."""
    if failure.code == X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN and failure.depth > 0:
        depth = failure.depth - 1
        der = built[depth] if depth < len(built) else None
        return VerifyFailure(X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY, depth, der)
    return failure
