"""A CA's own record of what it revoked, kept beside its key, and the CRLs published from it.

``openssl ca`` keeps ``index.txt`` and ``crlnumber``; step-ca keeps a database. mutls keeps one
small JSON file per CA (``root.key`` -> ``root.revoked.json``), because a CRL is a *view* of
that record: revoking must not need the CA's key or re-sign anything, and publishing must know
every revocation so far, its reason, and which full CRL each one came after (for deltas).

Every change is read-modify-write under an exclusive lock on the CA's key file (the record is
replaced by a rename, so it cannot carry the lock itself), and written atomically: two
``mutls revoke`` at once never lose an entry, and a crash leaves the old record or the new.

CRL numbers form one increasing sequence for full and delta CRLs alike (RFC 5280 5.2.3). A
delta CRL lists what was revoked since the last full CRL was issued, names that full CRL's
number as its base, and is applied by OpenSSL only when the base CRL (or the certificate)
carries a Freshest CRL extension: so ``freshest`` URLs are remembered and put on every full
CRL once deltas are asked for.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cryptography import x509

from mutls.errors import PKIError
from mutls.pki.authority import CertificateAuthority
from mutls.pki.certs import utcnow
from mutls.pki.crl import Revocation, build_crl
from mutls.pki.files import PUBLIC, write_file
from mutls.pki.trust import spki_sha256

FORMAT = "mutls revocation record 1"
SUFFIX = ".revoked.json"

#: ``openssl ca -crl_reason`` spellings (RFC 5280 5.3.1), case-insensitive.
REASONS: dict[str, x509.ReasonFlags] = {
    "unspecified": x509.ReasonFlags.unspecified,
    "keyCompromise": x509.ReasonFlags.key_compromise,
    "CACompromise": x509.ReasonFlags.ca_compromise,
    "affiliationChanged": x509.ReasonFlags.affiliation_changed,
    "superseded": x509.ReasonFlags.superseded,
    "cessationOfOperation": x509.ReasonFlags.cessation_of_operation,
    "certificateHold": x509.ReasonFlags.certificate_hold,
    "privilegeWithdrawn": x509.ReasonFlags.privilege_withdrawn,
    "AACompromise": x509.ReasonFlags.aa_compromise,
}
_REASON_NAMES = {flag: name for name, flag in REASONS.items()}


def parse_reason(text: str) -> x509.ReasonFlags:
    """A reason by its RFC 5280 name (``keyCompromise``), any case; raises :class:`PKIError`."""
    for name, flag in REASONS.items():
        if name.lower() == text.strip().lower():
            return flag
    raise PKIError(f"--reason {text}: unknown reason; use one of {', '.join(REASONS)}")


def reason_name(reason: x509.ReasonFlags) -> str:
    """The RFC 5280 name of ``reason``."""
    return _REASON_NAMES.get(reason, reason.value)


def record_path(key_path: str | os.PathLike[str]) -> Path:
    """Where the record of the CA whose key is ``key_path`` lives: beside it."""
    key = Path(key_path)
    return key.with_name(key.stem + SUFFIX)


@dataclass(frozen=True)
class Revoked:
    """One revoked certificate as the record keeps it."""

    serial: int
    date: dt.datetime
    reason: x509.ReasonFlags
    subject: str | None
    #: the number of the last full CRL when this was revoked (0: none yet), for deltas.
    after_full: int

    def entry(self) -> Revocation:
        """The CRL entry."""
        return Revocation(self.serial, self.date, self.reason)


@dataclass(frozen=True)
class RevocationRecord:
    """Everything a CA revoked and published, as read from (and written to) its file."""

    issuer: str
    issuer_key: str
    revoked: tuple[Revoked, ...] = ()
    #: the last CRL number used, full or delta.
    last_number: int = 0
    #: the number of the last full CRL (0: none published yet).
    last_full: int = 0
    #: where delta CRLs are published: the Freshest CRL extension of every full CRL.
    freshest: tuple[str, ...] = field(default=())

    @classmethod
    def empty(cls, ca: x509.Certificate) -> RevocationRecord:
        """The record of a CA that has revoked nothing."""
        return cls(ca.subject.rfc4514_string(), spki_sha256(ca) or "")

    def find(self, serial: int) -> Revoked | None:
        """The entry for ``serial``, if it is revoked."""
        return next((r for r in self.revoked if r.serial == serial), None)

    def with_revoked(self, entry: Revoked) -> RevocationRecord:
        """This record with ``entry`` added."""
        return replace(self, revoked=(*self.revoked, entry))

    def as_json(self) -> dict[str, Any]:
        """The file's content."""
        return {
            "format": FORMAT,
            "issuer": self.issuer,
            "issuer_spki_sha256": self.issuer_key,
            "last_crl_number": self.last_number,
            "last_full_crl_number": self.last_full,
            "freshest_crl": list(self.freshest),
            "revoked": [
                {
                    "serial": format(r.serial, "X"),
                    "date": r.date.isoformat(),
                    "reason": reason_name(r.reason),
                    "subject": r.subject,
                    "after_full_crl": r.after_full,
                }
                for r in self.revoked
            ],
        }

    @classmethod
    def from_json(cls, data: Any, source: str) -> RevocationRecord:
        """Read the file's content; raises :class:`PKIError` naming ``source``."""
        try:
            if data.get("format") != FORMAT:
                raise ValueError(f"not a {FORMAT!r}")
            revoked = tuple(
                Revoked(
                    int(item["serial"], 16),
                    dt.datetime.fromisoformat(item["date"]),
                    REASONS[item["reason"]],
                    item.get("subject"),
                    int(item["after_full_crl"]),
                )
                for item in data["revoked"]
            )
            return cls(
                str(data["issuer"]),
                str(data["issuer_spki_sha256"]),
                revoked,
                int(data["last_crl_number"]),
                int(data["last_full_crl_number"]),
                tuple(str(u) for u in data.get("freshest_crl", [])),
            )
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise PKIError(
                f"{source}: corrupt revocation record ({exc}); restore it from a backup"
            ) from None


class RevocationDatabase:
    """The record of one CA (its certificate and key files), read and changed under a lock."""

    def __init__(
        self,
        ca_cert: x509.Certificate,
        key_path: str | os.PathLike[str],
        path: str | os.PathLike[str] | None = None,
    ) -> None:
        self.ca_cert = ca_cert
        self.key_path = Path(key_path)
        self.path = Path(path) if path is not None else record_path(key_path)

    def read(self) -> RevocationRecord:
        """The record as it is now (empty when the CA never revoked anything)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return RevocationRecord.empty(self.ca_cert)
        except OSError as exc:
            raise PKIError(f"{self.path}: cannot read: {exc.strerror}") from None
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise PKIError(f"{self.path}: corrupt revocation record ({exc})") from None
        record = RevocationRecord.from_json(data, str(self.path))
        if record.issuer_key != (spki_sha256(self.ca_cert) or ""):
            raise PKIError(
                f"{self.path}: the record of another CA ({record.issuer}), not of "
                f"{self.ca_cert.subject.rfc4514_string()}: give its own with --db FILE"
            )
        return record

    @contextlib.contextmanager
    def changing(self) -> Iterator[list[RevocationRecord]]:
        """Read the record under the lock; whatever the block leaves in the one-item list is
        written back (atomically) before the lock is released."""
        try:
            lock = os.open(self.key_path, os.O_RDONLY)
        except OSError as exc:
            raise PKIError(f"{self.key_path}: cannot open the CA key: {exc.strerror}") from None
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            before = self.read()
            holder = [before]
            yield holder
            if holder[0] != before:
                data = json.dumps(holder[0].as_json(), indent=2) + "\n"
                write_file(self.path, data.encode(), mode=PUBLIC, overwrite=True)
        finally:
            os.close(lock)  # releases the lock

    def revoke(
        self,
        serial: int,
        reason: x509.ReasonFlags,
        *,
        subject: str | None = None,
        date: dt.datetime | None = None,
    ) -> tuple[Revoked, bool]:
        """Record ``serial`` as revoked; ``(entry, False)`` when it already was (unchanged)."""
        with self.changing() as holder:
            record = holder[0]
            existing = record.find(serial)
            if existing is not None:
                return existing, False
            entry = Revoked(serial, date or utcnow(), reason, subject, record.last_full)
            holder[0] = record.with_revoked(entry)
            return entry, True


@dataclass(frozen=True)
class PublishedCRL:
    """A CRL just made, and what it holds."""

    crl: x509.CertificateRevocationList
    number: int
    base: int | None
    entries: int


def publish_crl(
    ca: CertificateAuthority,
    database: RevocationDatabase,
    *,
    days: int = 7,
    delta: bool = False,
    freshest: tuple[str, ...] = (),
) -> PublishedCRL:
    """Sign the next CRL from the record: full, or (``delta``) what changed since the last full
    one. ``freshest`` (remembered) is put on full CRLs as their Freshest CRL extension."""
    if days <= 0:
        raise PKIError(f"--days {days}: the number of days must be positive")
    with database.changing() as holder:
        record = holder[0]
        if freshest:
            record = replace(record, freshest=freshest)
        number = record.last_number + 1
        if delta:
            if record.last_full == 0:
                raise PKIError(
                    "no full CRL yet to base a delta on: publish one first (without --delta)"
                )
            if not record.freshest:
                raise PKIError(
                    "deltas need --freshest URL on the full CRL (OpenSSL applies a delta only "
                    "when its base CRL names a Freshest CRL): publish a full CRL with it first"
                )
            entries = [r.entry() for r in record.revoked if r.after_full >= record.last_full]
            crl = build_crl(
                ca.certificate, ca.key, entries, days=days, number=number,
                delta_of=record.last_full,
            )  # fmt: skip
            holder[0] = replace(record, last_number=number)
            return PublishedCRL(crl, number, record.last_full, len(entries))
        entries = [r.entry() for r in record.revoked]
        crl = build_crl(
            ca.certificate, ca.key, entries, days=days, number=number, freshest=record.freshest
        )
        holder[0] = replace(record, last_number=number, last_full=number)
        return PublishedCRL(crl, number, None, len(entries))
