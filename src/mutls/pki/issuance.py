"""Issuing one certificate from makecert-style choices: who signs, for how long, for what.

``mutls makecert`` parses its options and hands them here; everything that decides what the
certificate looks like lives in this module so that it can be reused and tested without a CLI.
"""

from __future__ import annotations

import calendar
import datetime as dt
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ObjectIdentifier

from mutls.errors import PKIError
from mutls.pki.authority import (
    CA_DAYS,
    CLIENT_AUTH,
    LEAF_DAYS,
    SERVER_AUTH,
    CertificateAuthority,
    server_sans,
)
from mutls.pki.certs import build_certificate, utcnow
from mutls.pki.files import read_file
from mutls.pki.keys import (
    KeySpec,
    KeyType,
    PrivateKey,
    describe_key,
    generate_private_key,
    load_private_key,
)
from mutls.pki.names import parse_eku, parse_general_name
from mutls.pki.weakness import key_weaknesses, weaknesses

#: what the article's bare ``-eku`` means: a certificate good for both ends of a TLS connection.
BARE_EKU: tuple[ObjectIdentifier, ...] = (SERVER_AUTH, CLIENT_AUTH)


def parse_mono_date(text: str, flag: str, *, end_of_day: bool = False) -> dt.datetime:
    """``MM/dd/yyyy`` as Mono's ``-b``/``-e`` take it (``yyyy-mm-dd`` too), in UTC.

    An end date covers the whole day it names.
    """
    for pattern in ("%m/%d/%Y", "%Y-%m-%d"):
        try:
            day = dt.datetime.strptime(text.strip(), pattern).replace(tzinfo=dt.UTC)
        except ValueError:
            continue
        return day.replace(hour=23, minute=59, second=59) if end_of_day else day
    raise PKIError(f"{flag} {text}: expected a date as MM/dd/yyyy (e.g. 12/31/2030)")


def add_months(start: dt.datetime, months: int) -> dt.datetime:
    """``start`` plus ``months`` calendar months (the 31st becomes the month's last day)."""
    index = start.month - 1 + months
    year, month = start.year + index // 12, index % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return start.replace(year=year, month=month, day=day)


@dataclass(frozen=True)
class Validity:
    """When a certificate starts and ends, from ``-b``, ``-e``, ``-m`` or ``--days``."""

    not_before: dt.datetime | None = None
    not_after: dt.datetime | None = None
    months: int | None = None
    days: int | None = None

    @classmethod
    def from_options(
        cls,
        begin: str | None = None,
        end: str | None = None,
        months: int | None = None,
        days: int | None = None,
    ) -> Validity:
        """Parse the makecert spellings; more than one way to say the end is an error."""
        ends = [
            flag for flag, v in (("-e", end), ("-m", months), ("--days", days)) if v is not None
        ]
        if len(ends) > 1:
            raise PKIError(f"{' and '.join(ends)} both set the end date: give only one")
        if months is not None and months <= 0:
            raise PKIError(f"-m {months}: the number of months must be positive")
        if days is not None and days <= 0:
            raise PKIError(f"--days {days}: the number of days must be positive")
        return cls(
            parse_mono_date(begin, "-b") if begin else None,
            parse_mono_date(end, "-e", end_of_day=True) if end else None,
            months,
            days,
        )

    def bounds(self, *, is_ca: bool) -> tuple[dt.datetime, dt.datetime]:
        """(notBefore, notAfter); by default CAs live 10 years and leaves 825 days."""
        start = self.not_before or utcnow() - dt.timedelta(minutes=5)
        if self.not_after is not None:
            return start, self.not_after
        if self.months is not None:
            return start, add_months(start, self.months)
        days = self.days if self.days is not None else (CA_DAYS if is_ca else LEAF_DAYS)
        return start, start + dt.timedelta(days=days)


def choose_eku(
    eku: str | None, *, client: bool = False, server: bool = False, is_ca: bool = False
) -> tuple[ObjectIdentifier, ...] | None:
    """The EKU list: ``eku`` ``""`` is the bare ``-eku`` (serverAuth + clientAuth).

    ``--client``/``--server`` add theirs. A leaf given none gets serverAuth + clientAuth (Mono's
    leaves had no EKU, which means any purpose); a CA gets no EKU unless asked.
    """
    chosen: list[ObjectIdentifier] = []
    if eku is not None:
        chosen.extend(BARE_EKU if eku.strip() == "" else parse_eku(eku))
    if server:
        chosen.append(SERVER_AUTH)
    if client:
        chosen.append(CLIENT_AUTH)
    if not chosen:
        return None if is_ca else BARE_EKU
    return tuple(dict.fromkeys(chosen))


def read_san_file(path: str | os.PathLike[str]) -> list[x509.GeneralName]:
    """Mono's ``-alt`` file: one DNS name a line (``IP:``, ``email:`` and ``URI:`` work too)."""
    text = read_file(path, "SAN list (-alt)").decode("utf-8", "replace")
    names = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            names.append(parse_general_name(line))
    return names


def subject_key(
    path: str | os.PathLike[str] | None, spec: KeySpec | None, *, explicit_type: bool = False
) -> tuple[PrivateKey, bool]:
    """The subject's key: reused from ``path`` if it exists (PEM, DER or PVK), else new.

    Returns ``(key, created)``. A key type asked for explicitly must match a reused key.
    """
    if path is not None and Path(path).exists():
        key = load_private_key(path)
        if explicit_type and spec is not None and describe_key(key) != _spec_name(spec):
            raise PKIError(
                f"{path} already holds an {describe_key(key)} key, not the {_spec_name(spec)} "
                "asked for: drop --key-type or give another -sv file"
            )
        return key, False
    return generate_private_key(spec), True


def _spec_name(spec: KeySpec) -> str:
    """The :func:`describe_key` wording of the key ``spec`` would generate."""
    names = {KeyType.EC_P256: "EC P-256", KeyType.EC_P384: "EC P-384", KeyType.ED25519: "Ed25519"}
    return names.get(spec.type, f"RSA {spec.rsa_bits}")


@dataclass(frozen=True)
class Issuer:
    """Who signs: a CA (certificate + key), or Mono's ``-iv key -in name`` with no certificate."""

    key: PrivateKey
    name: x509.Name
    certificate: x509.Certificate | None = None
    chain: tuple[x509.Certificate, ...] = ()
    source: str = "issuer"

    @classmethod
    def load(
        cls,
        key_path: str | os.PathLike[str],
        cert_path: str | os.PathLike[str] | None = None,
        name: x509.Name | None = None,
    ) -> Issuer:
        """Read ``-iv`` (PEM, DER or PVK) and ``-ic`` (PEM, DER, a bundle); check they pair up."""
        if cert_path is None:
            if name is None:
                raise PKIError(f"-iv {key_path}: give the issuer's certificate with -ic CERT")
            return cls(load_private_key(key_path), name, source=str(key_path))
        ca = CertificateAuthority.load(cert_path, key_path=key_path)
        if name is not None and name != ca.certificate.subject:
            raise PKIError(
                f"-in {name.rfc4514_string()} is not the subject of {cert_path} "
                f"({ca.subject}): drop -in"
            )
        return cls(ca.key, ca.certificate.subject, ca.certificate, ca.chain, str(cert_path))

    def warnings(self) -> list[str]:
        """Why verifiers will refuse chains through this issuer (empty when it is sound)."""
        if self.certificate is not None:
            return weaknesses(self.certificate, issues_others=True)
        return key_weaknesses(self.key)


def issue_certificate(
    subject: x509.Name,
    public_key: CertificatePublicKeyTypes,
    *,
    signer: Issuer | None,
    self_key: PrivateKey | None = None,
    is_ca: bool = False,
    path_length: int | None = None,
    eku: Sequence[ObjectIdentifier] | None = None,
    san: Iterable[x509.GeneralName] = (),
    validity: Validity | None = None,
    serial: int | None = None,
    hash_name: str = "sha256",
    crl_urls: Sequence[str] = (),
) -> x509.Certificate:
    """Sign one certificate: by ``signer``, or self-signed by ``self_key`` when it is ``None``.

    Every certificate with serverAuth also names its CN host in the SAN, so that ``CN=pollux``
    is valid for ``https://pollux``.
    """
    if path_length is not None and not is_ca:
        raise PKIError("-h (path length) applies only to a CA: add -cy authority")
    names = list(san)
    if eku and SERVER_AUTH in eku:
        names = server_sans(subject, names)
    start, end = (validity or Validity()).bounds(is_ca=is_ca)
    if signer is None:
        if self_key is None:
            raise PKIError("a self-signed certificate needs its own key")
        signing_key, issuer_cert, issuer_name = self_key, None, None
    else:
        signing_key, issuer_cert, issuer_name = signer.key, signer.certificate, signer.name
    return build_certificate(
        subject=subject,
        public_key=public_key,
        signing_key=signing_key,
        issuer_cert=issuer_cert,
        issuer_name=issuer_name,
        is_ca=is_ca,
        path_length=path_length,
        eku=eku,
        san=names,
        not_before=start,
        not_after=end,
        serial=serial,
        hash_name=hash_name,
        crl_urls=crl_urls,
    )
