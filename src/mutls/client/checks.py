"""What can be said about a client certificate without asking the server."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from cryptography import x509

from mutls.pki.certs import allows_client_auth, extended_key_usage
from mutls.pki.identity import Identity
from mutls.pki.keys import describe_key, key_matches_certificate
from mutls.pki.names import eku_name


def _when(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


@dataclass(frozen=True)
class LocalFindings:
    """The offered certificate judged on its own: validity, EKU, key, and its chain's names."""

    subject: str
    issuer: str
    key: str
    not_before: dt.datetime
    not_after: dt.datetime
    problems: tuple[str, ...] = field(default=())
    notes: tuple[str, ...] = field(default=())

    @property
    def expired(self) -> bool:
        """The validity ended before now."""
        return any(p.startswith("expired") for p in self.problems)

    @property
    def eku_refused(self) -> bool:
        """The EKU does not allow clientAuth."""
        return any(p.startswith("extended key usage") for p in self.problems)


def check_identity(identity: Identity, now: dt.datetime | None = None) -> LocalFindings:
    """Judge ``identity`` as a client certificate, as a server will."""
    cert = identity.certificate
    now = now or dt.datetime.now(dt.UTC)
    problems: list[str] = []
    notes: list[str] = []
    if now > cert.not_valid_after_utc:
        problems.append(f"expired on {_when(cert.not_valid_after_utc)}")
    elif now < cert.not_valid_before_utc:
        problems.append(f"not valid before {_when(cert.not_valid_before_utc)} (check clocks)")
    else:
        notes.append(f"valid until {_when(cert.not_valid_after_utc)}")
    usages = extended_key_usage(cert)
    if not allows_client_auth(cert):
        names = ", ".join(eku_name(u) for u in usages or [])
        problems.append(f"extended key usage is {names}: clientAuth is missing")
    else:
        notes.append("clientAuth allowed" if usages is not None else "no EKU (any purpose)")
    if not key_matches_certificate(identity.key, cert):
        problems.append("the private key does not belong to the certificate")
    return LocalFindings(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        key=describe_key(identity.key),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        problems=tuple(problems),
        notes=tuple(notes),
    )


def chains_to_named_ca(identity: Identity, ca_names: list[x509.Name]) -> bool:
    """True when the leaf or a certificate of its chain was issued by (or is) a named CA.

    A server lists the subjects of the CAs it trusts; a client whose chain reaches one of them
    (through intermediates it sends) can be accepted.
    """
    wanted = set(ca_names)
    for cert in (identity.certificate, *identity.chain):
        if cert.issuer in wanted or cert.subject in wanted:
            return True
    return False
