"""Client-certificate chains for differential testing, built in memory from a :class:`Plan`.

A plan is a valid chain (the leaf, 0 to 2 intermediates, one of one or two roots) and up to a few
:class:`Mutation` s, each aimed at one level of the chain (0 is the leaf, ``depth`` the root):
expiry, weak keys and digests, CRLs and delta CRLs, Disallowed, forged and re-keyed look-alikes,
names shared or spelled another way, certificates cryptography cannot parse, and what the client
sends (extra, missing, reordered). :func:`plans` draws them with hypothesis; :func:`build` turns
one into a :class:`Case`: the certificates as DER, what the client sends, and the
:class:`~mutls.pki.trust.TrustMaterial` it is judged by. Keys come from a pool (EC P-256; RSA only
for the weak cases), so a case costs a few signatures.

The certificates follow the profile strict verifiers expect (keyUsage, SKI/AKI, SAN on leaves),
so that only a mutation makes one of them invalid. cryptography signs with SHA-256 only: other
digests and deliberate encoding faults are made by editing the DER and signing again
(:func:`resign`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hypothesis import strategies as st
from OpenSSL import crypto

from mutls.pki.keys import PrivateKey
from mutls.pki.trust import TrustMaterial

#: the moment every case is built for (validity windows are days wide around it).
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
DAY = dt.timedelta(days=1)
WINDOWS = {
    "valid": (NOW - DAY, NOW + 365 * DAY),
    "expired": (NOW - 400 * DAY, NOW - 2 * DAY),
    "future": (NOW + 2 * DAY, NOW + 400 * DAY),
}

# -- DER: just enough to edit a certificate and sign it again --------------------------------------


def _header(der: bytes, at: int) -> tuple[int, int]:
    """(start of the content, end of the TLV) of the TLV at ``at`` (short tags only)."""
    length = der[at + 1]
    at += 2
    if length & 0x80:
        size = length & 0x7F
        length = int.from_bytes(der[at : at + size], "big")
        at += size
    return at, at + length


def tlv(tag: int, content: bytes) -> bytes:
    """One DER TLV."""
    if len(content) < 0x80:
        return bytes((tag, len(content))) + content
    size = len(content).to_bytes((len(content).bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(size))) + size + content


def content(der: bytes) -> bytes:
    """The content of one TLV."""
    start, end = _header(der, 0)
    return der[start:end]


def children(der: bytes) -> list[bytes]:
    """The TLVs inside one constructed TLV, each whole."""
    start, end = _header(der, 0)
    out = []
    while start < end:
        _, stop = _header(der, start)
        out.append(der[start:stop])
        start = stop
    return out


_OIDS = {
    ("ec", "sha256"): "2a8648ce3d040302",
    ("ec", "sha1"): "2a8648ce3d0401",
    ("rsa", "sha256"): "2a864886f70d01010b",
    ("rsa", "sha1"): "2a864886f70d010105",
}
_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha1": hashes.SHA1,  # the weak cases' point
}
_BY_OID = {bytes.fromhex(oid): (kind, name) for (kind, name), oid in _OIDS.items()}
#: extension OIDs as DER (the ``06 03 55 1d xx`` of id-ce).
SKI_OID = bytes.fromhex("0603551d0e")
BASIC_CONSTRAINTS_OID = bytes.fromhex("0603551d13")
DER_TRUE, BER_TRUE = bytes.fromhex("0101ff"), bytes.fromhex("010101")


def _kind(key: object) -> str:
    return "rsa" if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey) else "ec"


def algorithm_identifier(key: PrivateKey, hash_name: str) -> bytes:
    """The signature AlgorithmIdentifier for ``key`` and ``hash_name`` (RSA: PKCS#1 v1.5)."""
    oid = tlv(0x06, bytes.fromhex(_OIDS[_kind(key), hash_name]))
    return tlv(0x30, oid + (b"\x05\x00" if _kind(key) == "rsa" else b""))


def _sign(key: PrivateKey, data: bytes, hash_name: str) -> bytes:
    digest = _HASHES[hash_name]()
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), digest)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key.sign(data, ec.ECDSA(digest))


Edit = Callable[[list[bytes]], list[bytes]]


def resign(
    der: bytes, key: PrivateKey, hash_name: str = "sha256", edit: Edit | None = None
) -> bytes:
    """``der`` signed again by ``key`` with ``hash_name``; ``edit`` may change the TBS first."""
    tbs = children(der)[0]
    fields = children(tbs)
    algorithm = algorithm_identifier(key, hash_name)
    fields[2 if fields[0][0] == 0xA0 else 1] = algorithm
    if edit is not None:
        fields = edit(fields)
    tbs = tlv(0x30, b"".join(fields))
    signature = _sign(key, tbs, hash_name)
    return tlv(0x30, tbs + algorithm + tlv(0x03, b"\x00" + signature))


def _edit_extensions(fields: list[bytes], change: Callable[[list[bytes]], list[bytes]]) -> None:
    assert fields[-1][0] == 0xA3, "the TBS ends with its extensions"
    extensions = children(children(fields[-1])[0])
    fields[-1] = tlv(0xA3, tlv(0x30, b"".join(change(extensions))))


def _is(extension: bytes, oid: bytes) -> bool:
    return children(extension)[0] == oid


def duplicate_extension(fields: list[bytes]) -> list[bytes]:
    """The subject key identifier twice (RFC 5280 4.2: at most one instance of an extension)."""

    def change(extensions: list[bytes]) -> list[bytes]:
        ski = next(e for e in extensions if _is(e, SKI_OID))
        return [*extensions, ski]

    _edit_extensions(fields, change)
    return fields


def ber_boolean(fields: list[bytes]) -> list[bytes]:
    """basicConstraints' critical flag as BER TRUE (``01 01 01``), which DER forbids."""

    def change(extensions: list[bytes]) -> list[bytes]:
        out = []
        for extension in extensions:
            if _is(extension, BASIC_CONSTRAINTS_OID):
                parts = [p if p != DER_TRUE else BER_TRUE for p in children(extension)]
                extension = tlv(0x30, b"".join(parts))
            out.append(extension)
        return out

    _edit_extensions(fields, change)
    return fields


UNPARSEABLE: dict[str, Edit] = {
    "duplicate-extension": duplicate_extension,
    "ber-boolean": ber_boolean,
}


def signed_by(child: bytes, issuer_key: PrivateKey) -> bool:
    """Whether ``issuer_key`` made the signature of the DER certificate ``child``."""
    tbs, algorithm, bits = children(child)
    kind, hash_name = _BY_OID[content(children(algorithm)[0])]
    public = issuer_key.public_key()
    if kind != _kind(issuer_key):
        return False
    signature = content(bits)[1:]
    try:
        if isinstance(public, rsa.RSAPublicKey):
            public.verify(signature, tbs, padding.PKCS1v15(), _HASHES[hash_name]())
        else:
            assert isinstance(public, ec.EllipticCurvePublicKey)
            public.verify(signature, tbs, ec.ECDSA(_HASHES[hash_name]()))
    except InvalidSignature:
        return False
    return True


# -- keys ------------------------------------------------------------------------------------------


class KeyPool:
    """Keys made once per session and handed out in order for each case (distinct in a case)."""

    def __init__(self) -> None:
        self._keys: dict[str, list[PrivateKey]] = {"ec": [], "rsa1024": []}

    def index(self, key: PrivateKey) -> int:
        """Where ``key`` is in its list (for reports)."""
        return next(i for keys in self._keys.values() for i, k in enumerate(keys) if k is key)

    def key(self, kind: str, index: int) -> PrivateKey:
        keys = self._keys[kind]
        while len(keys) <= index:
            if kind == "ec":
                keys.append(ec.generate_private_key(ec.SECP256R1()))
            else:
                keys.append(rsa.generate_private_key(65537, 1024))  # noqa: S505 - the weak case
        return keys[index]


POOL = KeyPool()


class _Keys:
    """One case's keys: the next unused key of the pool each time."""

    def __init__(self) -> None:
        self._used = {"ec": 0, "rsa1024": 0}

    def __call__(self, kind: str = "ec") -> PrivateKey:
        index = self._used[kind]
        self._used[kind] += 1
        return POOL.key(kind, index)


# -- certificates and CRLs -------------------------------------------------------------------------


def name(common_name: str, spelling: str = "plain") -> x509.Name:
    """``CN=common_name``; ``spelling`` another encoding OpenSSL's name comparison equates."""
    if spelling == "case":
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name.swapcase())])
    if spelling == "spaces":
        spaced = "  " + common_name.replace(" ", "   ") + " "
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, spaced)])
    string_type = _ASN1Type.PrintableString if spelling == "printable" else _ASN1Type.UTF8String
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name, _type=string_type)])


@dataclass(frozen=True, eq=False)
class Cert:
    """One certificate of a case, as DER, with what it was built from (for the oracle and the
    report). ``key`` is its subject's private key."""

    label: str
    der: bytes
    key: PrivateKey
    name: x509.Name
    issuer: str
    serial: int
    is_ca: bool
    window: str = "valid"
    notes: tuple[str, ...] = ()

    @cached_property
    def x509(self) -> x509.Certificate | None:
        """cryptography's view of it, or ``None`` when cryptography cannot parse it."""
        try:
            cert = x509.load_der_x509_certificate(self.der)
            _ = (cert.subject, cert.issuer, cert.extensions, cert.public_key())
        except Exception:  # ValueError, DuplicateExtension, the Rust parser's own errors
            return None
        return cert

    @cached_property
    def pyopenssl(self) -> crypto.X509:
        return crypto.load_certificate(crypto.FILETYPE_ASN1, self.der)

    @property
    def pem(self) -> bytes:
        return crypto.dump_certificate(crypto.FILETYPE_PEM, self.pyopenssl)

    @property
    def subject(self) -> str:
        return self.name.rfc4514_string()

    @cached_property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.der).hexdigest()

    @property
    def within_validity(self) -> bool:
        return self.window == "valid"

    @property
    def self_issued(self) -> bool:
        return self.subject == self.issuer

    def describe(self) -> str:
        notes = f" [{', '.join(self.notes)}]" if self.notes else ""
        return (
            f"{self.label}: subject {self.subject!r}, issuer {self.issuer!r}, "
            f"{describe_key(self.key)}, {'CA' if self.is_ca else 'end entity'}, {self.window}"
            f"{notes}, sha256 {self.fingerprint[:12]}"
        )


def describe_key(key: PrivateKey) -> str:
    """``EC P-256 key #3``: the key's type and its place in the pool."""
    kind = f"RSA-{key.key_size}" if isinstance(key, rsa.RSAPrivateKey) else "EC P-256"
    return f"{kind} key #{POOL.index(key)}"


KEY_USAGE = {
    name: False
    for name in (
        "content_commitment",
        "key_encipherment",
        "data_encipherment",
        "key_agreement",
        "encipher_only",
        "decipher_only",
    )
}


def make_cert(
    label: str,
    subject: x509.Name,
    key: PrivateKey,
    issuer: x509.Name,
    issuer_key: PrivateKey,
    *,
    is_ca: bool,
    eku: Sequence[x509.ObjectIdentifier] | None = None,
    window: str = "valid",
    hash_name: str = "sha256",
    edit: str | None = None,
    notes: tuple[str, ...] = (),
) -> Cert:
    """Sign one certificate (keyUsage, SKI/AKI, a SAN on the leaf; EKU when given)."""
    start, end = WINDOWS[window]
    serial = x509.random_serial_number()
    usage = x509.KeyUsage(digital_signature=True, key_cert_sign=is_ca, crl_sign=is_ca, **KEY_USAGE)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(authority_key_id(issuer_key), critical=False)
    )
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
    if label == "leaf":
        email = x509.RFC822Name("client@example.org")
        builder = builder.add_extension(x509.SubjectAlternativeName([email]), critical=False)
    der = builder.sign(issuer_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
    if hash_name != "sha256" or edit is not None:
        der = resign(der, issuer_key, hash_name, UNPARSEABLE[edit] if edit else None)
    issuer_text = issuer.rfc4514_string()
    return Cert(label, der, key, subject, issuer_text, serial, is_ca, window, notes)


def authority_key_id(issuer_key: PrivateKey) -> x509.AuthorityKeyIdentifier:
    return x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key())  # type: ignore[arg-type]


@dataclass(frozen=True, eq=False)
class Crl:
    """One CRL of a case: who issued it, whom it revokes, and whether it is a delta CRL
    (``delta_of``: the number of its base CRL) or has expired."""

    issuer: Cert
    revoked: tuple[Cert, ...] = ()
    number: int = 1000
    delta_of: int | None = None
    expired: bool = False
    #: a base CRL that announces a delta CRL (freshestCRL: OpenSSL looks for one only then).
    has_delta: bool = False

    @cached_property
    def x509(self) -> x509.CertificateRevocationList:
        last, end = (NOW - 10 * DAY, NOW - DAY) if self.expired else (NOW - DAY, NOW + 7 * DAY)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.issuer.name)
            .last_update(last)
            .next_update(end)
            .add_extension(x509.CRLNumber(self.number), critical=False)
            .add_extension(authority_key_id(self.issuer.key), critical=False)
        )
        if self.delta_of is not None:
            builder = builder.add_extension(x509.DeltaCRLIndicator(self.delta_of), critical=True)
        if self.has_delta:
            where = x509.UniformResourceIdentifier("http://crl.example/delta.crl")
            point = x509.DistributionPoint([where], None, None, None)
            builder = builder.add_extension(x509.FreshestCRL([point]), critical=False)
        for cert in self.revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(cert.serial)
                .revocation_date(last)
                .build()
            )
        return builder.sign(self.issuer.key, hashes.SHA256())  # type: ignore[arg-type]

    @property
    def pem(self) -> bytes:
        return self.x509.public_bytes(serialization.Encoding.PEM)

    def describe(self) -> str:
        kind = f"delta CRL #{self.number} on #{self.delta_of}" if self.delta_of else "CRL"
        revoked = ", ".join(c.label for c in self.revoked) or "nothing"
        expired = " (expired)" if self.expired else ""
        return f"{kind} of {self.issuer.label}{expired} revoking {revoked}"


# -- plans -----------------------------------------------------------------------------------------

#: where an intermediate is: sent by the client, in the trust's CA store, or both.
PLACEMENTS = ("sent", "store", "both")


@dataclass(frozen=True)
class Mutation:
    """One change to the valid chain, at ``level`` (0: the leaf; the plan's depth: the root)."""

    kind: str
    level: int = 0
    variant: str = ""

    def __str__(self) -> str:
        level = "" if MUTATIONS[self.kind][0] is NO_LEVEL else f"@{self.level}"
        variant = f"({self.variant})" if self.variant else ""
        return f"{self.kind}{level}{variant}"


#: the levels a mutation applies to, as (lowest, highest counted from the root: 0 is the root).
ANY, BELOW_ROOT, ABOVE_LEAF, INTERMEDIATES, NO_LEVEL = (0, 0), (0, -1), (1, 0), (1, -1), None
#: every mutation: the levels it applies to and its variants.
MUTATIONS: dict[str, tuple[tuple[int, int] | None, tuple[str, ...]]] = {
    "expired": (ANY, ()),
    "not-yet-valid": (ANY, ()),
    "rsa-1024": (ANY, ()),
    "sha1": (ANY, ()),
    "disallowed": (ANY, ()),
    "eku-server-only": (ANY, ()),
    "revoked": (BELOW_ROOT, ("base", "delta")),
    "crl-expired": (BELOW_ROOT, ()),
    "crl-missing": (BELOW_ROOT, ()),
    "subject-as-issuer": (BELOW_ROOT, ()),
    "unparseable": (BELOW_ROOT, tuple(UNPARSEABLE)),
    "forged": (
        ABOVE_LEAF,
        ("root-name/first", "root-name/last", "self-issued/first", "stranger/last"),
    ),
    "name-spelling": (ABOVE_LEAF, ("case", "printable", "spaces")),
    "missing": (INTERMEDIATES, ()),
    "look-alike": (
        INTERMEDIATES,
        tuple(
            f"{signer}/{where}{flag}"
            for signer in ("same-issuer", "other-root", "same-key")
            for where in ("store-first", "store-last", "sent")
            for flag in ("", "/disallowed")
        ),
    ),
    "ca-as-client": (NO_LEVEL, ()),
    "no-eku": (NO_LEVEL, ()),
    "root-sent": (NO_LEVEL, ()),
    "extra-sent": (NO_LEVEL, ("leaf", "ca", "self-signed", "disallowed-ca")),
    "sent-order": (NO_LEVEL, ("reversed", "leaf-twice", "intermediate-twice")),
    "untrusted-root": (NO_LEVEL, ()),
    "anchors-reversed": (NO_LEVEL, ()),
    "other-root-disallowed": (NO_LEVEL, ()),
}
#: mutations that only mean something with a second root.
NEEDS_TWO_ROOTS = {"anchors-reversed", "other-root-disallowed"}
CRL_MUTATIONS = {"revoked", "crl-expired", "crl-missing"}


def levels(kind: str, depth: int) -> range:
    """The levels ``kind`` applies to in a chain of ``depth`` (empty: none)."""
    span = MUTATIONS[kind][0]
    if span is None:
        return range(1)
    return range(span[0], depth + span[1] + 1)


@dataclass(frozen=True)
class Plan:
    """A chain to build: ``depth`` issuers above the leaf (1: the root signs the leaf), where
    each intermediate is (``placement``, from the leaf up), the roots, CRLs, and mutations."""

    depth: int = 1
    placement: tuple[str, ...] = ()
    roots: int = 1
    same_name_roots: bool = False
    chain_root: int = 0
    crls: bool = False
    mutations: tuple[Mutation, ...] = ()

    def __post_init__(self) -> None:
        assert len(self.placement) == self.depth - 1, "one placement per intermediate"
        for m in self.mutations:
            assert m.level in levels(m.kind, self.depth), (
                f"{m} does not apply at depth {self.depth}"
            )
            assert self.roots == 2 or m.kind not in NEEDS_TWO_ROOTS, f"{m} needs two roots"
        assert self.crls or not any(m.kind in CRL_MUTATIONS for m in self.mutations)

    def __str__(self) -> str:
        parts = [f"depth {self.depth}"]
        if self.placement:
            parts.append("intermediates " + ", ".join(self.placement))
        if self.roots == 2:
            same = " of one name" if self.same_name_roots else ""
            parts.append(f"two roots{same}, the chain's is R{self.chain_root}")
        if self.crls:
            parts.append("CRLs")
        return "; ".join(parts + [str(m) for m in self.mutations])

    def get(self, kind: str, level: int = 0) -> Mutation | None:
        """The mutation ``kind`` at ``level``, if the plan has it."""
        return next((m for m in self.mutations if (m.kind, m.level) == (kind, level)), None)

    def has(self, kind: str) -> bool:
        return any(m.kind == kind for m in self.mutations)


def _mutation(depth: int, roots: int) -> st.SearchStrategy[Mutation]:
    kinds = [
        kind
        for kind in MUTATIONS
        if levels(kind, depth) and (roots == 2 or kind not in NEEDS_TWO_ROOTS)
    ]

    def one(kind: str) -> st.SearchStrategy[Mutation]:
        span, variants = levels(kind, depth), MUTATIONS[kind][1]
        return st.builds(
            Mutation,
            st.just(kind),
            st.integers(span.start, span.stop - 1),
            st.sampled_from(variants) if variants else st.just(""),
        )

    return st.sampled_from(kinds).flatmap(one)


@st.composite
def plans(draw: st.DrawFn, max_mutations: int = 3) -> Plan:
    """A valid chain of depth 1-3 under one of one or two roots, and up to ``max_mutations``."""
    depth = draw(st.integers(1, 3))
    roots = draw(st.integers(1, 2))
    mutations = draw(
        st.lists(
            _mutation(depth, roots), max_size=max_mutations, unique_by=lambda m: (m.kind, m.level)
        )
    )
    return Plan(
        depth=depth,
        placement=tuple(draw(st.sampled_from(PLACEMENTS)) for _ in range(depth - 1)),
        roots=roots,
        same_name_roots=roots == 2 and draw(st.booleans()),
        chain_root=draw(st.integers(0, roots - 1)),
        crls=any(m.kind in CRL_MUTATIONS for m in mutations) or draw(st.booleans()),
        mutations=tuple(mutations),
    )


# -- cases -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sender:
    """What the client presents (a ``tls_driver.Credentials``)."""

    certificate: x509.Certificate | crypto.X509
    key: PrivateKey
    chain: tuple[x509.Certificate | crypto.X509, ...]


@dataclass(eq=False)
class Case:
    """One built plan: its certificates, what the client sends (leaf first), and the trust."""

    plan: Plan
    certs: list[Cert]
    sent: list[Cert]
    anchors: list[Cert]
    intermediates: list[Cert]
    disallowed: list[Cert]
    crls: list[Crl]
    #: signed_by's answers, by (issuer, child): the certificates themselves (hashed by identity,
    #: ``eq=False``) are the key, so an entry cannot outlive them and answer for another pair.
    _signatures: dict[tuple[Cert, Cert], bool] = field(default_factory=dict)

    @property
    def leaf(self) -> Cert:
        return self.sent[0]

    def trust(self) -> TrustMaterial:
        """The trust material the case is judged by (all of it parses, by construction)."""

        def parsed(certs: list[Cert]) -> tuple[x509.Certificate, ...]:
            return tuple(c.x509 for c in certs if c.x509 is not None)

        return TrustMaterial(
            anchors=parsed(self.anchors),
            intermediates=parsed(self.intermediates),
            disallowed=parsed(self.disallowed),
            crls=tuple(c.x509 for c in self.crls),
        )

    def sender(self) -> Sender:
        """The client's credentials: pyOpenSSL's X509 for what cryptography cannot parse."""
        certs = [c.x509 or c.pyopenssl for c in self.sent]
        return Sender(certs[0], self.leaf.key, tuple(certs[1:]))

    @property
    def unparseable(self) -> list[Cert]:
        """What the client sends that cryptography cannot parse."""
        return [c for c in self.sent if c.x509 is None]

    # -- the oracle: signature paths ---------------------------------------------------------------

    def signs(self, issuer: Cert, child: Cert) -> bool:
        key = (issuer, child)
        if key not in self._signatures:
            self._signatures[key] = signed_by(child.der, issuer.key)
        return self._signatures[key]

    def paths(self) -> Iterator[tuple[Cert, ...]]:
        """Every path from the leaf to an anchor whose signatures verify, every certificate
        within its validity and every issuer a CA (names are not compared: keys decide)."""
        anchors = {c.der for c in self.anchors}
        pool = {c.der: c for c in (*self.sent[1:], *self.intermediates, *self.anchors)}

        def extend(path: tuple[Cert, ...]) -> Iterator[tuple[Cert, ...]]:
            last = path[-1]
            if last.der in anchors:
                yield path
                return
            seen = {c.der for c in path}
            for der, issuer in pool.items():
                usable = der not in seen and issuer.is_ca and issuer.within_validity
                if usable and self.signs(issuer, last):
                    yield from extend((*path, issuer))

        if self.leaf.within_validity:
            yield from extend((self.leaf,))

    def clean_path(self) -> tuple[Cert, ...] | None:
        """A path (see :meth:`paths`) with no Disallowed certificate on it, if there is one."""
        banned = {c.der for c in self.disallowed}
        return next((p for p in self.paths() if not any(c.der in banned for c in p)), None)

    def sent_disallowed(self) -> list[Cert]:
        """What the client sent that is Disallowed (self-signed certificates aside)."""
        banned = {c.der for c in self.disallowed}
        return [c for c in self.sent if c.der in banned and not c.self_issued]

    # -- the report --------------------------------------------------------------------------------

    def describe(self) -> str:
        """Everything about the case, for a failure message."""

        def labels(items: Sequence[Cert | Crl]) -> str:
            text = [c.label if isinstance(c, Cert) else c.describe() for c in items]
            return ", ".join(text) or "-"

        paths = [" <- ".join(c.label for c in p) for p in self.paths()]
        lines = [
            f"plan: {self.plan}",
            "certificates:",
            *(f"  {c.describe()}" for c in self.certs),
            f"the client sends: {labels(self.sent)}",
            f"anchors: {labels(self.anchors)}",
            f"CA store: {labels(self.intermediates)}",
            f"Disallowed: {labels(self.disallowed)}",
            f"CRLs: {labels(self.crls)}",
            f"signature paths to an anchor: {'; '.join(paths) or 'none'}",
        ]
        if paths and self.clean_path() is None:
            lines.append("  (every one of them passes a Disallowed certificate)")
        return "\n".join(lines)


def build(plan: Plan) -> Case:
    """The certificates, chain and trust of ``plan``."""
    return _Builder(plan).case()


#: mutations shown on the certificate they change (the others show in the case's lists).
_NOTED = {"expired", "not-yet-valid", "rsa-1024", "sha1", "eku-server-only", "unparseable"}


class _Builder:
    """Builds one :class:`Case`: the chain top down, then what the mutations add."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.keys = _Keys()
        self.certs: list[Cert] = []
        self.disallowed: list[Cert] = []
        self.chain: dict[int, Cert] = {}  # level -> certificate
        self.roots: list[Cert] = []
        self.sent: list[Cert] = []
        self.store: list[Cert] = []

    def get(self, kind: str, level: int = 0) -> Mutation | None:
        return self.plan.get(kind, level)

    def add(self, cert: Cert) -> Cert:
        self.certs.append(cert)
        return cert

    def new(self, label: str, subject: str, issuer: Cert | None = None, **options: object) -> Cert:
        """A certificate for a fresh EC key: self-signed, or issued by ``issuer``."""
        key = self.keys()
        issuer_name = issuer.name if issuer is not None else name(subject)
        signer = issuer.key if issuer is not None else key
        return self.add(make_cert(label, name(subject), key, issuer_name, signer, **options))  # type: ignore[arg-type]

    # -- the chain: level 0 is the leaf, 1..depth-1 the intermediates, depth the root --------------

    def common_name(self, level: int) -> str:
        if level == 0:
            return "client"
        if level < self.plan.depth:
            return f"Intermediate CA {level}"
        return self.root_name(self.plan.chain_root)

    def root_name(self, index: int) -> str:
        return "Root CA" if self.plan.same_name_roots else f"Root CA {'AB'[index]}"

    def subject(self, level: int) -> str:
        """The level's CN; subject-as-issuer gives a certificate its issuer's name."""
        if self.get("subject-as-issuer", level) is not None:
            return self.common_name(level + 1)
        return self.common_name(level)

    def level_cert(self, level: int, issuer_key: PrivateKey | None) -> Cert:
        """The chain's certificate at ``level`` (self-signed when ``issuer_key`` is None)."""
        plan = self.plan
        label = (
            "leaf" if level == 0 else f"I{level}" if level < plan.depth else f"R{plan.chain_root}"
        )
        key = self.keys("rsa1024" if self.get("rsa-1024", level) else "ec")
        spelling = self.get("name-spelling", level + 1)
        issuer = name(self.subject(level + 1), spelling.variant if spelling else "plain")
        if issuer_key is None:
            issuer, issuer_key = name(self.subject(level)), key
        window = "expired" if self.get("expired", level) else "valid"
        window = "future" if self.get("not-yet-valid", level) else window
        eku = [ExtendedKeyUsageOID.CLIENT_AUTH] if level == 0 and not plan.has("no-eku") else None
        if self.get("eku-server-only", level) is not None:
            eku = [ExtendedKeyUsageOID.SERVER_AUTH]
        unparseable = self.get("unparseable", level)
        return self.add(
            make_cert(
                label,
                name(self.subject(level)),
                key,
                issuer,
                issuer_key,
                is_ca=level > 0 or plan.has("ca-as-client"),
                eku=eku,
                window=window,
                hash_name="sha1" if self.get("sha1", level) else "sha256",
                edit=unparseable.variant if unparseable else None,
                notes=tuple(
                    str(m) for m in plan.mutations if (m.level == level and m.kind in _NOTED)
                ),
            )
        )

    def case(self) -> Case:
        plan = self.plan
        for index in range(plan.roots):
            if index == plan.chain_root:
                root = self.chain[plan.depth] = self.level_cert(plan.depth, None)
            else:
                root = self.new(f"R{index}", self.root_name(index), is_ca=True)
            self.roots.append(root)
        for level in range(plan.depth - 1, -1, -1):
            self.chain[level] = self.level_cert(level, self.chain[level + 1].key)
        self.sent.append(self.chain[0])
        for level in range(1, plan.depth):
            where = plan.placement[level - 1]
            if self.get("missing", level):
                where = "nowhere"
            if self.get("unparseable", level):
                where = "sent"  # the trust holds only what parses: the client sends the rest
            if where in ("sent", "both"):
                self.sent.append(self.chain[level])
            if where in ("store", "both"):
                self.store.append(self.chain[level])
        self.disallowed += [c for lv, c in self.chain.items() if self.get("disallowed", lv)]
        anchors = self.anchors()
        for mutation in plan.mutations:
            if mutation.kind == "look-alike":
                self.look_alike(mutation)
            elif mutation.kind == "forged":
                self.forged(mutation)
        self.sending()
        crls = self.revocation() if plan.crls else []
        disallowed = [c for c in self.disallowed if c.x509 is not None]
        return Case(plan, self.certs, self.sent, anchors, self.store, disallowed, crls)

    def anchors(self) -> list[Cert]:
        anchors = list(self.roots)
        if self.plan.has("untrusted-root"):
            anchors.remove(self.chain[self.plan.depth])
        if self.plan.has("other-root-disallowed"):
            self.disallowed += [r for r in self.roots if r is not self.chain[self.plan.depth]]
        if self.plan.has("anchors-reversed"):
            anchors.reverse()
        return anchors

    def look_alike(self, mutation: Mutation) -> None:
        """A CA with an intermediate's name and another key (or the same key, re-issued)."""
        level = mutation.level
        signer, where, *disallowed = mutation.variant.split("/")
        issuer = self.chain[level + 1]
        if signer == "other-root" and len(self.roots) == 2:
            issuer = self.roots[1 - self.plan.chain_root]
        original = self.chain[level]
        key = original.key if signer == "same-key" else self.keys()
        twin = self.add(
            make_cert(
                f"look-alike of {original.label}",
                original.name,
                key,
                issuer.name,
                issuer.key,
                is_ca=True,
            )
        )
        if where == "sent":
            self.sent.append(twin)
        else:
            self.store.insert(0 if where == "store-first" else len(self.store), twin)
        if disallowed:
            self.disallowed.append(twin)

    def forged(self, mutation: Mutation) -> None:
        """A CA certificate with a chain certificate's name, signed by a key nobody trusts."""
        signer, where = mutation.variant.split("/")
        original = self.chain[mutation.level]
        key, other = self.keys(), self.keys()
        issuer = {
            "root-name": (self.chain[self.plan.depth].name, other),
            "self-issued": (original.name, key),
            "stranger": (name("Nobody"), other),
        }[signer]
        forged = self.add(
            make_cert(f"forged {original.label}", original.name, key, *issuer, is_ca=True)
        )
        self.sent.insert(1 if where == "first" else len(self.sent), forged)

    def sending(self) -> None:
        """Extra, repeated and reordered certificates in what the client sends."""
        sent = self.sent
        if self.plan.has("root-sent"):
            sent.append(self.chain[self.plan.depth])
        extra = self.get("extra-sent")
        if extra is not None:
            sent.append(self.stranger(extra.variant))
        order = self.get("sent-order")
        variant = order.variant if order is not None else ""
        if variant == "reversed":
            sent[1:] = reversed(sent[1:])
        elif variant == "leaf-twice":
            sent.insert(1, sent[0])
        elif variant == "intermediate-twice" and len(sent) > 1:
            sent.insert(1, sent[1])

    def stranger(self, variant: str) -> Cert:
        """A certificate that has nothing to do with the client's chain."""
        if variant == "self-signed":
            return self.new("stranger", "Stranger", is_ca=True)
        eku = [ExtendedKeyUsageOID.CLIENT_AUTH] if variant == "leaf" else None
        cert = self.new(
            f"stranger {variant}", "Stranger", self.roots[-1], is_ca=variant != "leaf", eku=eku
        )
        if variant == "disallowed-ca":
            self.disallowed.append(cert)
        return cert

    def revocation(self) -> list[Crl]:
        """A CRL from every CA of the chain and every root, as the CRL mutations change them."""
        crls = [Crl(root) for root in self.roots if root is not self.chain[self.plan.depth]]
        for level in range(self.plan.depth - 1, -1, -1):
            issuer, child = self.chain[level + 1], self.chain[level]
            if self.get("crl-missing", level):
                continue
            revoked = self.get("revoked", level)
            variant = revoked.variant if revoked is not None else None
            expired = self.get("crl-expired", level) is not None
            revoked_here = (child,) if variant == "base" else ()
            crls.append(Crl(issuer, revoked_here, expired=expired, has_delta=variant == "delta"))
            if variant == "delta":
                crls.append(Crl(issuer, (child,), 1001, delta_of=1000))
        return crls
