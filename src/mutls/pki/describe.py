"""What a PKI file holds, in plain facts, and what about it strict verifiers will refuse.

:func:`describe_file` reads any file ``mutls`` deals with (PEM or DER certificates and bundles,
PKCS#12, private keys, Mono's PVK, CRLs) and returns a :class:`FileReport`: plain data that
``mutls inspect`` prints as text or JSON. :func:`weaknesses` is the one place that decides what
is weak, so ``inspect`` and ``makecert`` (warning about an issuer) say the same thing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mutls.errors import FileFormatError
from mutls.pki.certs import extended_key_usage, fingerprint, parse_certificates, utcnow
from mutls.pki.crl import parse_crls
from mutls.pki.files import read_file
from mutls.pki.keys import (
    describe_key,
    is_pvk,
    key_matches_certificate,
    load_private_key_bytes,
)
from mutls.pki.names import eku_name
from mutls.pki.pkcs12 import describe_p12_algorithms, parse_p12
from mutls.pki.sniff import is_pkcs12
from mutls.pki.trust import spki_sha256
from mutls.pki.weakness import (
    extension_value,
    is_self_signed,
    issued_by,
    key_weaknesses,
    signature_algorithm_name,
    weaknesses,
)

#: asks for a password only when a file turns out to need one (a prompt, or a fixed value).
PasswordSource = Callable[[str], str | None]

_KEY_USAGES = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
)
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----.*?-----END \1-----\r?\n?", re.DOTALL)


@dataclass
class CertificateReport:
    """One certificate, as a person checking it wants to see it."""

    subject: str
    issuer: str
    serial: str
    not_before: str
    not_after: str
    days_left: int
    status: str  # "valid", "EXPIRED" or "NOT YET VALID"
    key: str
    signature_algorithm: str
    eku: list[str] | None
    key_usage: list[str] | None
    san: list[str]
    basic_constraints: str | None
    self_signed: bool
    sha256: str
    sha1: str
    warnings: list[str] = field(default_factory=list)
    #: SHA-256 of the SubjectPublicKeyInfo (hex): what pairs a key file with its certificate
    public_key_sha256: str | None = None


@dataclass
class KeyReport:
    """One private key: its kind, how it is stored, and which certificate it belongs to (in
    its own file, or in another file described with it: ``root.cer root.key``)."""

    key: str
    format: str
    encrypted: bool = False
    matches: str | None = None
    warnings: list[str] = field(default_factory=list)
    public_key_sha256: str | None = None


@dataclass
class CRLReport:
    """One certificate revocation list."""

    issuer: str
    last_update: str
    next_update: str | None
    days_left: int | None
    status: str
    signature_algorithm: str
    revoked: list[str]


@dataclass
class ChainNode:
    """A certificate in the tree of who issued whom (roots at the top)."""

    subject: str
    sha256: str
    children: list[ChainNode] = field(default_factory=list)


@dataclass
class FileReport:
    """Everything one file holds."""

    path: str
    kind: str
    certificates: list[CertificateReport] = field(default_factory=list)
    keys: list[KeyReport] = field(default_factory=list)
    crls: list[CRLReport] = field(default_factory=list)
    chain: list[ChainNode] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        from dataclasses import asdict

        return asdict(self)


# -- facts about one certificate --------------------------------------------------------------


def _general_name(name: x509.GeneralName) -> str:
    prefix = {
        x509.DNSName: "DNS",
        x509.IPAddress: "IP",
        x509.RFC822Name: "email",
        x509.UniformResourceIdentifier: "URI",
    }.get(type(name), type(name).__name__)
    return f"{prefix}:{name.value}"


def _when(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _validity(start: dt.datetime, end: dt.datetime, now: dt.datetime) -> tuple[int, str]:
    days_left = (end - now).days
    if now > end:
        # whole days since it ended, negated: "expired 1 day ago", not timedelta's floor of -2
        return -(now - end).days, "EXPIRED"
    if now < start:
        return days_left, "NOT YET VALID"
    return days_left, "valid"


def describe_certificate(
    cert: x509.Certificate, *, issues_others: bool = False, now: dt.datetime | None = None
) -> CertificateReport:
    """The facts of one certificate and its weaknesses."""
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    days_left, status = _validity(start, end, now or utcnow())
    constraints = extension_value(cert, x509.BasicConstraints)
    basic = None
    if constraints is not None:
        basic = "CA:TRUE" if constraints.ca else "CA:FALSE"
        if constraints.ca and constraints.path_length is not None:
            basic += f", pathlen:{constraints.path_length}"
    usage = extension_value(cert, x509.KeyUsage)
    usages = None
    if usage is not None:
        usages = [_camel(name) for name in _KEY_USAGES if getattr(usage, name)]
    ekus = extended_key_usage(cert)
    san = extension_value(cert, x509.SubjectAlternativeName)
    return CertificateReport(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        serial=f"{cert.serial_number:X}",
        not_before=_when(start),
        not_after=_when(end),
        days_left=days_left,
        status=status,
        key=describe_key(cert.public_key()),
        signature_algorithm=signature_algorithm_name(cert),
        eku=None if ekus is None else [eku_name(oid) for oid in ekus],
        key_usage=usages,
        san=[_general_name(n) for n in san] if san is not None else [],
        basic_constraints=basic,
        self_signed=is_self_signed(cert),
        sha256=_colons(fingerprint(cert, "sha256")),
        sha1=_colons(fingerprint(cert, "sha1")),
        warnings=weaknesses(cert, issues_others=issues_others),
        public_key_sha256=spki_sha256(cert),
    )


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(part.title() for part in rest)


def _colons(hex_digits: str) -> str:
    return ":".join(hex_digits[i : i + 2] for i in range(0, len(hex_digits), 2)).upper()


def chain_tree(certs: Sequence[x509.Certificate]) -> list[ChainNode]:
    """Who issued whom among ``certs``: the roots of the tree (issuer not in ``certs``) first."""
    parent_of: dict[int, int] = {}
    for i, cert in enumerate(certs):
        for j, candidate in enumerate(certs):
            if i != j and issued_by(cert, candidate) and not _is_descendant(parent_of, j, i):
                parent_of[i] = j
                break
    nodes = [ChainNode(c.subject.rfc4514_string(), _colons(fingerprint(c))) for c in certs]
    roots: list[ChainNode] = []
    for i, node in enumerate(nodes):
        if i in parent_of:
            nodes[parent_of[i]].children.append(node)
        else:
            roots.append(node)
    return roots


def _is_descendant(parent_of: dict[int, int], node: int, ancestor: int) -> bool:
    seen: set[int] = set()
    while node in parent_of and node not in seen:
        seen.add(node)
        node = parent_of[node]
        if node == ancestor:
            return True
    return False


def describe_crl(crl: x509.CertificateRevocationList, now: dt.datetime | None = None) -> CRLReport:
    """The facts of one CRL."""
    now = now or utcnow()
    next_update = crl.next_update_utc
    days_left, status = (
        (None, "valid")
        if next_update is None
        else (_validity(crl.last_update_utc, next_update, now))
    )
    return CRLReport(
        issuer=crl.issuer.rfc4514_string(),
        last_update=_when(crl.last_update_utc),
        next_update=_when(next_update) if next_update is not None else None,
        days_left=days_left,
        status=status,
        signature_algorithm=signature_algorithm_name(crl),
        revoked=[f"{r.serial_number:X}" for r in crl],
    )


# -- reading a file of any kind ----------------------------------------------------------------


def describe_file(path: str, password: PasswordSource) -> FileReport:
    """Describe whatever ``path`` holds; ``password(prompt)`` is asked only when needed."""
    return describe_bytes(read_file(path, "file"), path, password)


def describe_bytes(data: bytes, source: str, password: PasswordSource) -> FileReport:
    """Describe PEM, DER, PKCS#12 or PVK ``data`` (``source`` names it in messages)."""
    if is_pvk(data):
        key = load_private_key_bytes(data, source)
        report = FileReport(source, "Mono/Microsoft PVK private key")
        report.keys.append(_key_report(key, "PVK, unencrypted"))
        return report
    if b"-----BEGIN" in data:
        return _describe_pem(data, source, password)
    return _describe_der(data, source, password)


def _describe_pem(data: bytes, source: str, password: PasswordSource) -> FileReport:
    certs: list[x509.Certificate] = []
    report = FileReport(source, "PEM")
    keys: list[tuple[Any, str, bool]] = []
    for match in _PEM_BLOCK.finditer(data):
        label, block = match.group(1).decode(), match.group(0)
        if label in {"CERTIFICATE", "TRUSTED CERTIFICATE", "X509 CERTIFICATE"}:
            certs.extend(parse_certificates(block, source))
        elif label == "X509 CRL":
            report.crls.extend(describe_crl(c) for c in parse_crls(block, source))
        elif label.endswith("PRIVATE KEY"):
            encrypted = label == "ENCRYPTED PRIVATE KEY" or b"Proc-Type: 4,ENCRYPTED" in block
            secret = password(f"Enter pass phrase for {source}:") if encrypted else None
            key = load_private_key_bytes(block, source, secret)
            keys.append((key, f"PEM {_pem_format(label)}", encrypted))
        elif label == "CERTIFICATE REQUEST":
            csr = x509.load_pem_x509_csr(block)
            report.notes.append(f"certificate request for {csr.subject.rfc4514_string()}")
        else:
            report.notes.append(f"unrecognised PEM block {label!r} skipped")
    if not (certs or keys or report.crls or report.notes):
        raise FileFormatError(f"{source}: no PEM block found (corrupt or truncated)")
    _fill(report, certs, keys)
    report.kind = _kind(report)
    return report


def _pem_format(label: str) -> str:
    return {
        "PRIVATE KEY": "PKCS#8",
        "ENCRYPTED PRIVATE KEY": "PKCS#8, encrypted",
        "RSA PRIVATE KEY": "PKCS#1",
        "EC PRIVATE KEY": "SEC1",
    }.get(label, label)


def _describe_der(data: bytes, source: str, password: PasswordSource) -> FileReport:
    if is_pkcs12(data):
        secret = password(f"Enter Import Password for {source}:")
        key, cert, others = parse_p12(data, source, secret)
        report = FileReport(source, "PKCS#12")
        report.notes.append("MAC verified OK")
        report.notes.extend(describe_p12_algorithms(data))
        certs = ([cert] if cert is not None else []) + others
        _fill(report, certs, [(key, "PKCS#12 key bag", True)] if key is not None else [])
        return report
    for kind, parse in (("DER certificate", parse_certificates), ("DER CRL", parse_crls)):
        try:
            items: list[Any] = list(parse(data, source))
        except FileFormatError:
            continue
        report = FileReport(source, kind)
        if kind == "DER CRL":
            report.crls.extend(describe_crl(c) for c in items)
        else:
            _fill(report, items, [])
        return report
    try:
        key = load_private_key_bytes(data, source)
    except FileFormatError:
        raise FileFormatError(
            f"{source}: not a certificate, key, CRL, PKCS#12 or PVK file (or corrupt)"
        ) from None
    report = FileReport(source, "DER private key")
    report.keys.append(_key_report(key, "DER"))
    return report


def _fill(
    report: FileReport, certs: list[x509.Certificate], keys: list[tuple[Any, str, bool]]
) -> None:
    for cert in certs:
        issues_others = any(other is not cert and issued_by(other, cert) for other in certs)
        report.certificates.append(describe_certificate(cert, issues_others=issues_others))
    if len(certs) > 1:
        report.chain = chain_tree(certs)
    for key, fmt, encrypted in keys:
        entry = _key_report(key, fmt, encrypted)
        owner = next((c for c in certs if key_matches_certificate(key, c)), None)
        if owner is not None:
            entry.matches = owner.subject.rfc4514_string()
        elif certs:
            entry.warnings.append("this key belongs to none of the certificates in the file")
        report.keys.append(entry)


def _key_report(key: Any, fmt: str, encrypted: bool = False) -> KeyReport:
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return KeyReport(
        describe_key(key),
        fmt,
        encrypted,
        warnings=key_weaknesses(key),
        public_key_sha256=hashlib.sha256(spki).hexdigest(),
    )


def pair_keys_across_files(reports: Sequence[FileReport]) -> None:
    """Name, for a key whose own file holds no certificate of it, the certificate of another
    file that holds its public half (Mono keeps ``root.key`` and ``root.cer`` apart)."""
    for report in reports:
        for key in report.keys:
            if key.matches is not None:
                continue
            key.matches = next(
                (
                    f"{cert.subject} in {other.path}"
                    for other in reports
                    if other is not report
                    for cert in other.certificates
                    if cert.public_key_sha256 == key.public_key_sha256
                ),
                None,
            )


def _kind(report: FileReport) -> str:
    parts = []
    if report.certificates:
        n = len(report.certificates)
        parts.append("certificate" if n == 1 else f"{n} certificates")
    if report.keys:
        parts.append("private key")
    if report.crls:
        parts.append("CRL")
    return "PEM " + " + ".join(parts) if parts else "PEM"
