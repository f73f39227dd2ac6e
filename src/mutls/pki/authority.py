"""A certificate authority that issues server and client certificates in one line each.

>>> from mutls import pki
>>> ca = pki.CertificateAuthority.create("CN=My Own Test CA")
>>> server = ca.issue_server("localhost", "127.0.0.1")
>>> poupou = ca.issue_client("CN=poupou")
>>> poupou.write_p12("poupou.p12", "s3kr3t")
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

from mutls.errors import PKIError
from mutls.pki.certs import build_certificate, load_certificates, write_certificate
from mutls.pki.crl import build_crl
from mutls.pki.identity import Identity
from mutls.pki.keys import (
    KeySpec,
    PrivateKey,
    generate_private_key,
    key_matches_certificate,
    load_private_key,
    write_private_key,
)
from mutls.pki.names import common_name, host_general_name, parse_general_name, parse_name

SERVER_AUTH = ExtendedKeyUsageOID.SERVER_AUTH
CLIENT_AUTH = ExtendedKeyUsageOID.CLIENT_AUTH
CA_DAYS = 3650
LEAF_DAYS = 825


def server_sans(
    subject: x509.Name, extra: Iterable[x509.GeneralName] = ()
) -> list[x509.GeneralName]:
    """The SANs of a server certificate: ``extra``, plus the CN's host name when it is absent.

    Browsers and curl ignore the CN and match only the SAN, so ``CN=pollux`` alone would not be
    valid for ``https://pollux``.
    """
    names = list(extra)
    cn = common_name(subject)
    if cn and " " not in cn:
        host = host_general_name(cn)
        if host not in names:
            names.insert(0, host)
    return names


@dataclass(frozen=True)
class CertificateAuthority(Identity):
    """An :class:`Identity` that can sign: root or intermediate CA."""

    @classmethod
    def create(
        cls,
        name: str = "CN=mutls Test CA",
        *,
        key: KeySpec | None = None,
        days: int = CA_DAYS,
        path_length: int | None = None,
        hash_name: str = "sha256",
    ) -> CertificateAuthority:
        """A new self-signed root CA (basicConstraints CA:TRUE, keyCertSign, cRLSign)."""
        private = generate_private_key(key)
        subject = parse_name(name)
        cert = build_certificate(
            subject=subject,
            public_key=private.public_key(),
            signing_key=private,
            is_ca=True,
            path_length=path_length,
            days=days,
            hash_name=hash_name,
        )
        return cls(cert, private)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        password: str | None = None,
        key_path: str | os.PathLike[str] | None = None,
    ) -> CertificateAuthority:
        """Read a CA from a certificate (PEM or Mono's DER ``.cer``) and its key (PEM, DER, PVK)."""
        if key_path is None:
            identity = Identity.load(path, password)
            return cls(identity.certificate, identity.key, identity.chain)
        # A bundle (intermediate first, then its issuers) keeps the rest as the chain, so what
        # this CA issues carries the whole path up to the root.
        cert, *rest = load_certificates(path)
        private = load_private_key(key_path, password)
        if not key_matches_certificate(private, cert):
            raise PKIError(
                f"{key_path} is not the private key of {path} (issuer key/cert mismatch)"
            )
        return cls(cert, private, tuple(rest))

    def write(
        self,
        cert_path: str | os.PathLike[str],
        key_path: str | os.PathLike[str],
        *,
        password: str | None = None,
        overwrite: bool = False,
    ) -> None:
        """Write the CA certificate (format by extension) and its key (PEM, 0600)."""
        write_private_key(key_path, self.key, password=password, overwrite=overwrite)
        write_certificate(cert_path, self.certificate, overwrite=overwrite)

    def sign(
        self,
        subject: x509.Name,
        public_key: CertificatePublicKeyTypes,
        *,
        is_ca: bool = False,
        path_length: int | None = None,
        eku: Sequence[ObjectIdentifier] | None = None,
        san: Sequence[x509.GeneralName] = (),
        days: int | None = None,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
        serial: int | None = None,
        hash_name: str = "sha256",
    ) -> x509.Certificate:
        """Sign a certificate for ``public_key``: the one primitive every issue method uses."""
        return build_certificate(
            subject=subject,
            public_key=public_key,
            signing_key=self.key,
            issuer_cert=self.certificate,
            is_ca=is_ca,
            path_length=path_length,
            eku=eku,
            san=san,
            days=days if days is not None else (CA_DAYS if is_ca else LEAF_DAYS),
            not_before=not_before,
            not_after=not_after,
            serial=serial,
            hash_name=hash_name,
        )

    def issue(
        self,
        name: str,
        *,
        eku: Sequence[ObjectIdentifier] | None = (SERVER_AUTH, CLIENT_AUTH),
        san: Sequence[str | x509.GeneralName] = (),
        key: KeySpec | PrivateKey | None = None,
        days: int | None = None,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
    ) -> Identity:
        """Issue a leaf with exactly ``eku`` and ``san`` (strings parsed as ``DNS:``/``IP:``/…)."""
        names = [parse_general_name(s) if isinstance(s, str) else s for s in san]
        subject = parse_name(name)
        if eku and SERVER_AUTH in eku:
            names = server_sans(subject, names)
        private = _subject_key(key)
        cert = self.sign(
            subject,
            private.public_key(),
            eku=eku,
            san=names,
            days=days,
            not_before=not_before,
            not_after=not_after,
        )
        return Identity(cert, private, (self.certificate, *self.chain))

    def issue_server(
        self, *hosts: str, key: KeySpec | None = None, days: int | None = None
    ) -> Identity:
        """A serverAuth certificate for ``hosts`` (DNS names or IPs), CN = the first."""
        if not hosts:
            raise PKIError("issue_server needs at least one host name")
        return self.issue(
            f"CN={hosts[0]}",
            eku=(SERVER_AUTH,),
            san=[host_general_name(h) for h in hosts],
            key=key,
            days=days,
        )

    def issue_client(
        self,
        name: str,
        *,
        email: str | None = None,
        key: KeySpec | None = None,
        days: int | None = None,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
    ) -> Identity:
        """A clientAuth certificate for a person (``"CN=poupou"`` or ``"poupou"``)."""
        san: list[str | x509.GeneralName] = [x509.RFC822Name(email)] if email else []
        return self.issue(
            name,
            eku=(CLIENT_AUTH,),
            san=san,
            key=key,
            days=days,
            not_before=not_before,
            not_after=not_after,
        )

    def issue_intermediate(
        self, name: str, *, key: KeySpec | None = None, path_length: int | None = 0
    ) -> CertificateAuthority:
        """An intermediate CA under this one."""
        private = _subject_key(key)
        subject = parse_name(name)
        cert = self.sign(subject, private.public_key(), is_ca=True, path_length=path_length)
        return CertificateAuthority(cert, private, (self.certificate, *self.chain))

    def crl(
        self, revoked: Iterable[x509.Certificate | int] = (), *, days: int = 30
    ) -> x509.CertificateRevocationList:
        """A CRL from this CA listing ``revoked``."""
        return build_crl(self.certificate, self.key, revoked, days=days)


def _subject_key(key: KeySpec | PrivateKey | None) -> PrivateKey:
    """The key a new certificate certifies: the one given, or a new one of ``key``'s spec."""
    return key if not (key is None or isinstance(key, KeySpec)) else generate_private_key(key)
