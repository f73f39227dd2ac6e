"""One chain, one verdict: the attacks that beat the old name-based second walk.

Each case was reproduced against a live ``mutls serve --verify strict`` before the engine judged
the chain OpenSSL built (see docs/tls.md): the app was called with ``SSL_CLIENT_VERIFY=SUCCESS``.
Every case is judged here over a full handshake and over every kind of resumption (TLS 1.2
ticket, TLS 1.2 session id, TLS 1.3 ticket), by the forwarded-certificate path
(``verify_chain``), and the verdict must be the same NOT valid everywhere.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from OpenSSL import SSL
from weak_pki import resign_sha1

from mutls import pki
from mutls.pki.trust import TrustMaterial
from mutls.tls import ClientCertMode, ServerContext, TLSConnection
from mutls.tls.verify import DISALLOWED, UNPARSEABLE, ClientVerifier

from helpers import PKIFiles
from tls_driver import client_context, connect, server_context

KINDS = {
    "full-1.3": (SSL.TLS1_3_VERSION, True, False),
    "full-1.2": (SSL.TLS1_2_VERSION, True, False),
    "resumed-1.3": (SSL.TLS1_3_VERSION, True, True),
    "resumed-1.2-ticket": (SSL.TLS1_2_VERSION, True, True),
    "resumed-1.2-session-id": (SSL.TLS1_2_VERSION, False, True),
}


@dataclass(frozen=True)
class Case:
    """A client identity (what it sends), the server's trust, and the reason it must give."""

    identity: pki.Identity
    trust: TrustMaterial
    error: str


def _name(cert: x509.Certificate) -> x509.Name:
    return cert.subject


def _forged(subject: x509.Name, issuer: x509.Name) -> x509.Certificate:
    """A CA-looking certificate with ``subject``, "issued by" ``issuer``, signed by nobody's
    key that matters."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )


def _delta_crl(
    ca: pki.CertificateAuthority, base_number: int, revoked: x509.Certificate
) -> x509.CertificateRevocationList:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(now - dt.timedelta(minutes=5))
        .next_update(now + dt.timedelta(days=1))
        .add_extension(x509.CRLNumber(base_number + 1), critical=False)
        .add_extension(x509.DeltaCRLIndicator(base_number), critical=True)
        .add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(revoked.serial_number)
            .revocation_date(now - dt.timedelta(minutes=5))
            .build()
        )
        .sign(ca.key, hashes.SHA256())  # type: ignore[arg-type]
    )


def _base_crl(ca: pki.CertificateAuthority, number: int) -> x509.CertificateRevocationList:
    """A base CRL that names where its deltas are (Freshest CRL, RFC 5280 5.2.6): OpenSSL
    applies a delta only to a base CRL or certificate that says deltas exist, as AD CS does."""
    now = dt.datetime.now(dt.UTC)
    where = x509.UniformResourceIdentifier("http://pki.example/delta.crl")
    return (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(now - dt.timedelta(minutes=5))
        .next_update(now + dt.timedelta(days=1))
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(
            x509.FreshestCRL([x509.DistributionPoint([where], None, None, None)]), critical=False
        )
        .sign(ca.key, hashes.SHA256())  # type: ignore[arg-type]
    )


def _patched_leaf(
    ca: pki.CertificateAuthority, extension: x509.ExtensionType, old: bytes, new: bytes
) -> pki.Identity:
    """A clientAuth leaf carrying ``extension`` whose DER bytes ``old`` become ``new`` (same
    length, so the DER keeps its shape), signed again by ``ca``."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name.from_rfc4514_string("CN=odd"))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.ExtendedKeyUsage([pki.CLIENT_AUTH]), critical=False)
        .add_extension(extension, critical=False)
        .sign(ca.key, hashes.SHA256())  # type: ignore[arg-type]
    )
    assert len(old) == len(new) and cert.tbs_certificate_bytes.count(old) == 1
    tbs = cert.tbs_certificate_bytes.replace(old, new)
    signature = ca.key.sign(tbs, ec.ECDSA(hashes.SHA256()))  # type: ignore[union-attr,call-arg]
    algorithm = bytes.fromhex("300a06082a8648ce3d040302")  # ecdsa-with-SHA256
    body = tbs + algorithm + _bit_string(signature)
    der = b"\x30" + _length(len(body)) + body
    return pki.Identity(x509.load_der_x509_certificate(der), key)


def _odd_san_leaf(ca: pki.CertificateAuthority) -> pki.Identity:
    """A SAN dNSName holding byte 0xFF: OpenSSL reads it, cryptography refuses it."""
    san = x509.SubjectAlternativeName([x509.DNSName("odd.example")])
    return _patched_leaf(ca, san, b"odd.example", b"od\xff.example")


def _duplicate_extension_leaf(ca: pki.CertificateAuthority) -> pki.Identity:
    """Two extendedKeyUsage extensions: the SubjectKeyIdentifier's OID (2.5.29.14) becomes
    extendedKeyUsage's (2.5.29.37)."""
    ski = x509.SubjectKeyIdentifier(b"\x01" * 20)
    return _patched_leaf(ca, ski, b"\x06\x03\x55\x1d\x0e", b"\x06\x03\x55\x1d\x25")


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _bit_string(data: bytes) -> bytes:
    return b"\x03" + _length(len(data) + 1) + b"\x00" + data


@pytest.fixture(scope="module")
def cases(test_pki: PKIFiles) -> dict[str, Case]:
    root = pki.CertificateAuthority.create("CN=One Chain Root")
    inter = root.issue_intermediate("CN=One Chain Intermediate")
    leaf = inter.issue_client("CN=leaf")
    direct = root.issue_client("CN=direct")
    forged_inter = _forged(_name(inter.certificate), _name(root.certificate))
    forged_root = _forged(_name(root.certificate), _name(root.certificate))
    # Two roots with one name: the old is Disallowed, the leaf was issued by it.
    old_root = pki.CertificateAuthority.create("CN=Rekeyed Root")
    new_root = pki.CertificateAuthority.create("CN=Rekeyed Root")
    old_leaf = old_root.issue_client("CN=old-leaf")
    # Weak intermediates the client sends itself (not in any store).
    rsa_root = pki.CertificateAuthority.create("CN=RSA Root", key=pki.KeySpec.parse("rsa"))
    weak_key = rsa.generate_private_key(65537, 1024)  # noqa: S505 - the point of the case
    weak_inter = pki.CertificateAuthority(
        rsa_root.sign(
            x509.Name.from_rfc4514_string("CN=Weak Intermediate"),
            weak_key.public_key(),
            is_ca=True,
            path_length=0,
        ),
        weak_key,
    )
    weak_leaf = weak_inter.issue_client("CN=weak-leaf")
    sha1_inter_ca = rsa_root.issue_intermediate(
        "CN=SHA1 Intermediate", key=pki.KeySpec.parse("rsa")
    )
    sha1_inter = resign_sha1(sha1_inter_ca.certificate, rsa_root.key)  # type: ignore[arg-type]
    sha1_leaf = sha1_inter_ca.issue_client("CN=sha1-leaf")
    base = _base_crl(root, 1)
    delta = _delta_crl(root, 1, direct.certificate)
    crl_of_root = root.crl([inter.certificate])
    odd = _odd_san_leaf(root)
    twice = _duplicate_extension_leaf(root)
    anchors = (root.certificate,)
    return {
        # OpenSSL takes the client's list before the CA store's intermediates, builds on the
        # forgery and finds its signature false; the Disallowed intermediate is never reached,
        # and nothing can make the chain valid.
        "look-alike-hides-disallowed-intermediate": Case(
            pki.Identity(leaf.certificate, leaf.key, (forged_inter,)),
            TrustMaterial(anchors, (inter.certificate,), (inter.certificate,)),
            "certificate signature failure",
        ),
        "look-alike-hides-disallowed-root": Case(
            pki.Identity(leaf.certificate, leaf.key, (inter.certificate, forged_root)),
            TrustMaterial(anchors, (), (root.certificate,)),
            DISALLOWED,
        ),
        "sent-intermediate-disallowed": Case(
            pki.Identity(leaf.certificate, leaf.key, (inter.certificate,)),
            TrustMaterial(anchors, (), (inter.certificate,)),
            DISALLOWED,
        ),
        "reissued-disallowed-intermediate": Case(  # same key, another certificate
            pki.Identity(leaf.certificate, leaf.key, (inter.certificate,)),
            TrustMaterial(anchors, (), (_reissued(inter, root),)),
            DISALLOWED,
        ),
        "sent-intermediate-rsa-1024": Case(
            pki.Identity(weak_leaf.certificate, weak_leaf.key, (weak_inter.certificate,)),
            TrustMaterial((rsa_root.certificate,)),
            "CA certificate key too weak",
        ),
        "sent-intermediate-sha1": Case(
            pki.Identity(sha1_leaf.certificate, sha1_leaf.key, (sha1_inter,)),
            TrustMaterial((rsa_root.certificate,)),
            "CA signature digest algorithm too weak",
        ),
        "two-roots-one-name-new-first": Case(
            pki.Identity(old_leaf.certificate, old_leaf.key),
            TrustMaterial(
                (new_root.certificate, old_root.certificate), (), (old_root.certificate,)
            ),
            DISALLOWED,
        ),
        "two-roots-one-name-old-first": Case(
            pki.Identity(old_leaf.certificate, old_leaf.key),
            TrustMaterial(
                (old_root.certificate, new_root.certificate), (), (old_root.certificate,)
            ),
            DISALLOWED,
        ),
        "delta-crl-revokes": Case(
            pki.Identity(direct.certificate, direct.key),
            TrustMaterial(anchors, crls=(base, delta)),
            "certificate revoked",
        ),
        "crl-revokes-the-intermediate": Case(
            pki.Identity(leaf.certificate, leaf.key, (inter.certificate,)),
            TrustMaterial(anchors, crls=(crl_of_root,)),
            "certificate revoked",
        ),
        "leaf-with-a-non-ascii-dns-name": Case(odd, TrustMaterial(anchors), UNPARSEABLE),
        "leaf-with-a-duplicated-extension": Case(twice, TrustMaterial(anchors), UNPARSEABLE),
    }


def _reissued(inter: pki.CertificateAuthority, root: pki.CertificateAuthority) -> x509.Certificate:
    """Another certificate for the intermediate's key (another serial): Disallowed by key."""
    return root.sign(
        inter.certificate.subject, inter.certificate.public_key(), is_ca=True, path_length=0
    )


CASE_NAMES = [
    "look-alike-hides-disallowed-intermediate",
    "look-alike-hides-disallowed-root",
    "sent-intermediate-disallowed",
    "reissued-disallowed-intermediate",
    "sent-intermediate-rsa-1024",
    "sent-intermediate-sha1",
    "two-roots-one-name-new-first",
    "two-roots-one-name-old-first",
    "delta-crl-revokes",
    "crl-revokes-the-intermediate",
    "leaf-with-a-non-ascii-dns-name",
    "leaf-with-a-duplicated-extension",
]


def _handshakes(
    test_pki: PKIFiles, context: ServerContext, identity: pki.Identity, kind: str
) -> TLSConnection:
    version, tickets, resume = KINDS[kind]
    client_ctx = client_context(
        test_pki, identity, version=version, tickets=tickets, ciphers="DEFAULT:@SECLEVEL=0"
    )
    server, client = connect(test_pki, context, client_ctx)
    if not resume:
        return server
    again, _ = connect(test_pki, context, client_ctx, client.get_session())
    assert again.info is not None and again.info.resumed, "the session did not resume"
    return again


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("name", CASE_NAMES)
def test_never_valid_on_any_path(
    test_pki: PKIFiles, cases: dict[str, Case], name: str, kind: str
) -> None:
    case = cases[name]
    context = server_context(test_pki, ClientCertMode.OPTIONAL, case.trust)
    server = _handshakes(test_pki, context, case.identity, kind)
    assert server.info is not None
    cert = server.info.client_certificate
    assert (cert.present, cert.valid, cert.error) == (True, False, case.error)


@pytest.mark.parametrize("name", CASE_NAMES)
def test_the_forwarded_path_says_the_same(cases: dict[str, Case], name: str) -> None:
    case = cases[name]
    chain = (case.identity.certificate, *case.identity.chain)
    cert = ClientVerifier(case.trust).verify_chain(chain)
    assert (cert.present, cert.valid, cert.error) == (True, False, case.error)


def test_the_same_chains_are_valid_without_the_rule(cases: dict[str, Case]) -> None:
    # The cases fail for their rule, not for something else: without Disallowed they pass.
    case = cases["sent-intermediate-disallowed"]
    trust = TrustMaterial(case.trust.anchors, case.trust.intermediates)
    chain = (case.identity.certificate, *case.identity.chain)
    assert ClientVerifier(trust).verify_chain(chain).valid


def test_an_unparseable_leaf_keeps_the_server_answering(
    test_pki: PKIFiles, cases: dict[str, Case]
) -> None:
    case = cases["leaf-with-a-non-ascii-dns-name"]
    context = server_context(test_pki, ClientCertMode.OPTIONAL, case.trust)
    server = _handshakes(test_pki, context, case.identity, "full-1.3")
    assert server.info is not None
    cert = server.info.client_certificate
    assert cert.chain == () and cert.subject is None and cert.san.dns == ()
    assert cert.verify_status == f"FAILED:{UNPARSEABLE}"
    der = case.identity.certificate.public_bytes(serialization.Encoding.DER)
    assert cert.verified_chain[0] == der


def test_a_delta_crl_openssl_would_ignore_is_said_at_start_up(test_pki: PKIFiles) -> None:
    root = pki.CertificateAuthority.create("CN=Delta Root")
    client = root.issue_client("CN=delta-client")
    plain_base = root.crl()  # no Freshest CRL: OpenSSL will not apply the delta to it
    trust = TrustMaterial(
        (root.certificate,), crls=(plain_base, _delta_crl(root, 1, client.certificate))
    )
    context = server_context(test_pki, ClientCertMode.OPTIONAL, trust)
    assert any("delta CRL of CN=Delta Root" in w for w in context.warnings), context.warnings
    with_freshest = TrustMaterial(
        (root.certificate,), crls=(_base_crl(root, 1), _delta_crl(root, 1, client.certificate))
    )
    quiet = server_context(test_pki, ClientCertMode.OPTIONAL, with_freshest)
    assert not any("delta CRL" in w for w in quiet.warnings)
