"""The client-certificate verdict: one set of rules for full and resumed handshakes.

A full handshake verifies the client's chain inside OpenSSL; the verify callback of
:mod:`mutls.tls.context` hands every error it sees to :meth:`ClientVerifier.note_error`, which
keeps the first one that counts. A resumed handshake runs no callback at all (and OpenSSL reports
the stored result as OK), so :meth:`ClientVerifier.verify` checks the stored certificate again
with ``X509StoreContext`` on a store built by the same :meth:`ClientVerifier.populate`: the same
anchors, intermediates, CRLs, flags and purpose (``sslclient``, so EKU errors are found as in the
handshake). :meth:`ClientVerifier.verdict` then applies the rules both paths share (Disallowed,
the normalisation below) and builds the :class:`ClientCertificate`. Tests hold the two paths to
the same answer for every kind of certificate.

Rules beyond OpenSSL's own:

- *Disallowed* certificates are refused wherever they are in the chain, before any other error
  (an explicit decision of the administrator outranks what OpenSSL found).
- CRLs are checked for the client's own certificate (``X509_V_FLAG_CRL_CHECK``). A CA without a
  CRL in the trust material is not checked ("unable to get certificate CRL" is not an error), so
  a CRL for one CA does not break clients of another; to withdraw an intermediate CA, put it in
  Disallowed.
- Weak keys and weak signatures are refused in both paths, whatever the security level:
  OpenSSL checks them in the handshake (security level 2) but ``X509StoreContext`` has no
  security level, so without this rule a resumed RSA-1024 or SHA-1 certificate would turn
  valid. An RSA (or DSA) key under 2048 bits or an EC key under 224 bits is "EE certificate
  key too weak" for the leaf and "CA certificate key too weak" above it; an MD5 or SHA-1
  signature, except a self-signed root's own, is "CA signature digest algorithm too weak"
  (OpenSSL's codes 66-68).
- A CA certificate (basicConstraints CA:TRUE) is never a client certificate: "unsuitable
  certificate purpose" (OpenSSL accepts one whose keyUsage allows digitalSignature).
- A self-signed root the client sends along is ignored: a client cannot bring its own trust
  anchor, and whether it sent its root or not, an unknown issuer reads "unable to get local
  issuer certificate" (OpenSSL would say "self-signed certificate in certificate chain" when it
  was sent).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa
from OpenSSL import crypto
from OpenSSL._util import ffi as _ffi
from OpenSSL._util import lib as _lib

from mutls.pki.certs import fingerprint, is_ca_certificate
from mutls.pki.keys import MIN_RSA_BITS
from mutls.pki.trust import TrustMaterial
from mutls.tls.client_certificate import ClientCertificate

X509_V_ERR_UNABLE_TO_GET_CRL = 3
X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN = 19
X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY = 20
X509_V_ERR_INVALID_PURPOSE = 26
X509_V_ERR_EE_KEY_TOO_SMALL = 66
X509_V_ERR_CA_KEY_TOO_SMALL = 67
X509_V_ERR_CA_MD_TOO_WEAK = 68
#: the smallest EC key OpenSSL's security level 2 accepts (112-bit security).
MIN_EC_BITS = 224
_WEAK_HASHES = {"sha1", "md5"}
#: the code reported with :data:`DISALLOWED` (OpenSSL's "certificate rejected").
X509_V_ERR_CERT_REJECTED = 28
DISALLOWED = "certificate is in the Disallowed store"
#: longest issuer walk through the trust material when looking for Disallowed CAs.
_MAX_WALK = 10


def verify_error_text(code: int) -> str:
    """OpenSSL's wording for a verification error code (``X509_verify_cert_error_string``)."""
    return str(_ffi.string(_lib.X509_verify_cert_error_string(code)).decode("ascii", "replace"))


@dataclass(frozen=True)
class VerifyFailure:
    """One verification error as OpenSSL reported it: code, depth, and the certificate there."""

    code: int
    depth: int
    certificate: x509.Certificate | None = None


class ClientVerifier:
    """Verifies client chains against one :class:`TrustMaterial`.

    Immutable once built; a trust change builds a new verifier (see
    :meth:`mutls.tls.context.ServerContext.update_trust`).
    """

    def __init__(self, trust: TrustMaterial) -> None:
        self.trust = trust
        self._disallowed = trust.disallowed_fingerprints
        self._authorities = (*trust.anchors, *trust.intermediates)
        self.store = crypto.X509Store()
        self.populate(self.store)
        # Without CRL flags: the answer when the leaf's issuer has no CRL (see module docs).
        self._store_without_crls = crypto.X509Store()
        self.populate(self._store_without_crls, with_crls=False)

    @property
    def has_anchors(self) -> bool:
        """True when at least one trust anchor is configured."""
        return bool(self.trust.anchors)

    def populate(self, store: crypto.X509Store, *, with_crls: bool = True) -> None:
        """Fill an OpenSSL store (the handshake's or our own) with this trust.

        Intermediates are added to the store to help build chains; without
        ``X509_V_FLAG_PARTIAL_CHAIN`` OpenSSL still demands a chain that ends at a self-signed
        anchor, so an intermediate alone never makes a certificate valid.
        """
        for cert in self._authorities:
            store.add_cert(crypto.X509.from_cryptography(cert))
        if with_crls and self.trust.crls:
            for crl in self.trust.crls:
                store.add_crl(crl)
            store.set_flags(crypto.X509StoreFlags.CRL_CHECK)
        # The purpose OpenSSL sets itself when a server verifies a client ("sslclient"): EKU
        # must allow clientAuth. Set on the store so X509StoreContext checks it too.
        _lib.X509_STORE_set_purpose(store._store, _lib.X509_PURPOSE_SSL_CLIENT)

    # -- the handshake path -------------------------------------------------------------------

    @staticmethod
    def counts(code: int) -> bool:
        """Whether an error reported by OpenSSL counts against the certificate."""
        return code != 0 and code != X509_V_ERR_UNABLE_TO_GET_CRL

    # -- the resumption path ------------------------------------------------------------------

    def verify(
        self, leaf: crypto.X509, untrusted: Sequence[crypto.X509] = ()
    ) -> VerifyFailure | None:
        """Verify ``leaf`` now, with ``untrusted`` certificates to help build the chain.

        Without a callback OpenSSL stops at the first error, which is the first one the
        handshake callback records; a missing CRL is skipped as the callback skips it.
        """
        failure = self._verify_in(self.store, leaf, untrusted)
        if failure is not None and failure.code == X509_V_ERR_UNABLE_TO_GET_CRL:
            failure = self._verify_in(self._store_without_crls, leaf, untrusted)
        return failure

    @staticmethod
    def _verify_in(
        store: crypto.X509Store, leaf: crypto.X509, untrusted: Sequence[crypto.X509]
    ) -> VerifyFailure | None:
        try:
            crypto.X509StoreContext(store, leaf, list(untrusted)).verify_certificate()
        except crypto.X509StoreContextError as exc:
            code, depth = int(exc.errors[0]), int(exc.errors[1])
            return VerifyFailure(code, depth, exc.certificate.to_cryptography())
        return None

    def verify_chain(self, chain: Sequence[x509.Certificate]) -> ClientCertificate:
        """The verdict on a chain that came without a handshake (leaf first), e.g. forwarded
        by a trusted proxy: :meth:`verify` then :meth:`verdict`, as for a resumed session.

        Nothing here proves the sender holds the leaf's key; whoever forwarded it vouches.
        """
        if not chain:
            return ClientCertificate.absent()
        leaf = crypto.X509.from_cryptography(chain[0])
        untrusted = [crypto.X509.from_cryptography(c) for c in chain[1:]]
        return self.verdict(chain, self.verify(leaf, untrusted))

    # -- the verdict ----------------------------------------------------------------------------

    def verdict(
        self,
        chain: Sequence[x509.Certificate],
        failure: VerifyFailure | None,
        *,
        resumed: bool = False,
    ) -> ClientCertificate:
        """The :class:`ClientCertificate` for ``chain`` (leaf first, as sent) and ``failure``."""
        if not chain:
            return ClientCertificate.absent()
        banned = self._disallowed_in(chain)
        weak = self._weakness_in(chain) if banned is None else None
        if banned is not None:
            failure = banned
            text = DISALLOWED
        elif weak is not None:
            failure = weak
            text = verify_error_text(failure.code)
        elif failure is not None:
            failure = _normalise(failure, chain)
            text = verify_error_text(failure.code)
        elif is_ca_certificate(chain[0]):
            failure = VerifyFailure(X509_V_ERR_INVALID_PURPOSE, 0, chain[0])
            text = verify_error_text(failure.code)
        if failure is None:
            return ClientCertificate(present=True, valid=True, chain=tuple(chain), resumed=resumed)
        return ClientCertificate(
            present=True,
            valid=False,
            error=text,
            error_code=failure.code,
            error_depth=failure.depth,
            error_certificate=failure.certificate,
            chain=tuple(chain),
            resumed=resumed,
        )

    def _disallowed_in(self, chain: Sequence[x509.Certificate]) -> VerifyFailure | None:
        """The first Disallowed certificate of the chain, the client's and then our issuers."""
        if not self._disallowed:
            return None
        for depth, cert in enumerate(self._with_issuers(chain)):
            if fingerprint(cert) in self._disallowed:
                return VerifyFailure(X509_V_ERR_CERT_REJECTED, depth, cert)
        return None

    def _weakness_in(self, chain: Sequence[x509.Certificate]) -> VerifyFailure | None:
        """The first weak key or weak signature of the chain (see the module docs)."""
        path = self._with_issuers(chain)
        for depth, cert in enumerate(path):
            if _key_too_small(cert):
                code = X509_V_ERR_EE_KEY_TOO_SMALL if depth == 0 else X509_V_ERR_CA_KEY_TOO_SMALL
                return VerifyFailure(code, depth, cert)
            top_root = depth == len(path) - 1 and cert.subject == cert.issuer
            algorithm = cert.signature_hash_algorithm
            if not top_root and algorithm is not None and algorithm.name in _WEAK_HASHES:
                return VerifyFailure(X509_V_ERR_CA_MD_TOO_WEAK, depth, cert)
        return None

    def _with_issuers(self, chain: Sequence[x509.Certificate]) -> list[x509.Certificate]:
        """``chain`` (without self-signed extras) continued upwards with our anchors and CAs."""
        path = [chain[0]] + [c for c in chain[1:] if c.subject != c.issuer]
        current = path[-1]
        for _ in range(_MAX_WALK):
            if current.subject == current.issuer:
                break
            parent = next(
                (c for c in self._authorities if c.subject == current.issuer and c not in path),
                None,
            )
            if parent is None:
                break
            path.append(parent)
            current = parent
        return path


def _key_too_small(cert: x509.Certificate) -> bool:
    """Whether the certificate's key is under OpenSSL security level 2 (112 bits)."""
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey | dsa.DSAPublicKey):
        return key.key_size < MIN_RSA_BITS
    if isinstance(key, ec.EllipticCurvePublicKey):
        return key.curve.key_size < MIN_EC_BITS
    return False


def _normalise(failure: VerifyFailure, chain: Sequence[x509.Certificate]) -> VerifyFailure:
    """Report an untrusted root the client sent as its absence (see the module docs)."""
    if failure.code == X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN and failure.depth > 0:
        depth = failure.depth - 1
        cert = chain[depth] if depth < len(chain) else None
        return VerifyFailure(X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY, depth, cert)
    return failure
