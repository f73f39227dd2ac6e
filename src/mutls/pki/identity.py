"""An identity: a certificate, its private key, and the chain of issuers that vouches for it."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mutls.errors import FileFormatError, PKIError
from mutls.pki.certs import load_certificates, parse_certificates, pem
from mutls.pki.files import PRIVATE, PUBLIC, read_file, write_file
from mutls.pki.keys import (
    PrivateKey,
    key_matches_certificate,
    load_private_key_bytes,
    private_key_pem,
)
from mutls.pki.names import common_name
from mutls.pki.pkcs12 import p12_bytes, parse_p12


@dataclass(frozen=True)
class Identity:
    """A leaf (or CA) certificate with its private key and issuer chain (leaf not included)."""

    certificate: x509.Certificate
    key: PrivateKey
    chain: tuple[x509.Certificate, ...] = field(default=())

    @property
    def subject(self) -> str:
        """The subject as RFC 4514."""
        return self.certificate.subject.rfc4514_string()

    @property
    def common_name(self) -> str | None:
        """The subject's CN."""
        return common_name(self.certificate.subject)

    # -- output ------------------------------------------------------------------------------

    def cert_pem(self, *, with_chain: bool = False) -> bytes:
        """The certificate (and its chain) as PEM."""
        return pem([self.certificate, *(self.chain if with_chain else ())])

    def key_pem(self, password: str | None = None) -> bytes:
        """The key as PEM PKCS#8, encrypted when ``password`` is given."""
        return private_key_pem(self.key, password)

    def p12(self, password: str, *, legacy: bool = False) -> bytes:
        """The identity as a PKCS#12 bundle (leaf, key, chain)."""
        return p12_bytes(
            self.key,
            self.certificate,
            self.chain,
            password,
            legacy=legacy,
            friendly_name=self.common_name,
        )

    def write_p12(
        self,
        path: str | os.PathLike[str],
        password: str,
        *,
        legacy: bool = False,
        overwrite: bool = False,
    ) -> None:
        """Write a PKCS#12 file, mode 0600 (it holds the key)."""
        write_file(path, self.p12(password, legacy=legacy), mode=PRIVATE, overwrite=overwrite)

    def write_pem(
        self,
        cert_path: str | os.PathLike[str],
        key_path: str | os.PathLike[str] | None = None,
        *,
        password: str | None = None,
        overwrite: bool = False,
    ) -> None:
        """Write certificate + chain to ``cert_path`` and the key to ``key_path`` (0600).

        Without ``key_path`` both go into ``cert_path``, which is then written 0600.
        """
        if key_path is None:
            data = self.key_pem(password) + self.cert_pem(with_chain=True)
            write_file(cert_path, data, mode=PRIVATE, overwrite=overwrite)
            return
        write_file(cert_path, self.cert_pem(with_chain=True), mode=PUBLIC, overwrite=overwrite)
        write_file(key_path, self.key_pem(password), mode=PRIVATE, overwrite=overwrite)

    def with_chain(self, certs: Sequence[x509.Certificate]) -> Identity:
        """This identity with ``certs`` added to its chain (ordered leaf upwards, no repeats)."""
        extra = [c for c in certs if c != self.certificate and c not in self.chain]
        return Identity(
            self.certificate, self.key, tuple(_order_chain(self.certificate, [*self.chain, *extra]))
        )

    # -- input -------------------------------------------------------------------------------

    @classmethod
    def from_p12_bytes(cls, data: bytes, password: str | None, source: str = "<p12>") -> Identity:
        """Open a PKCS#12 bundle that holds a key and its certificate."""
        key, cert, others = parse_p12(data, source, password)
        if key is None or cert is None:
            raise FileFormatError(f"{source}: holds no private key and certificate pair")
        return cls(cert, key, tuple(_order_chain(cert, others)))

    @classmethod
    def from_p12(cls, path: str | os.PathLike[str], password: str | None) -> Identity:
        """Read a PKCS#12 file (``.p12``/``.pfx``), modern or legacy (3DES, RC2)."""
        return cls.from_p12_bytes(read_file(path, "PKCS#12 file"), password, str(path))

    @classmethod
    def from_pem(
        cls,
        cert_path: str | os.PathLike[str],
        key_path: str | os.PathLike[str] | None = None,
        password: str | None = None,
    ) -> Identity:
        """Read a certificate (+chain) and its key; the key may share the certificate's file."""
        certs = load_certificates(cert_path)
        key_source = key_path if key_path is not None else cert_path
        key = load_private_key_bytes(
            read_file(key_source, "private key"), str(key_source), password
        )
        leaf = next((c for c in certs if key_matches_certificate(key, c)), None)
        if leaf is None:
            raise PKIError(
                f"{key_source}: this private key does not belong to the certificate in {cert_path}"
            )
        rest = [c for c in certs if c is not leaf]
        return cls(leaf, key, tuple(_order_chain(leaf, rest)))

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        password: str | None = None,
        key_path: str | os.PathLike[str] | None = None,
    ) -> Identity:
        """Read a P12 or PEM identity, telling them apart by content, not name."""
        data = read_file(path, "certificate")
        if b"-----BEGIN" in data:
            return cls.from_pem(path, key_path, password)
        if key_path is not None:
            certs = parse_certificates(data, str(path))
            key = load_private_key_bytes(
                read_file(key_path, "private key"), str(key_path), password
            )
            if not key_matches_certificate(key, certs[0]):
                raise PKIError(f"{key_path}: this private key does not belong to {path}")
            return cls(certs[0], key, tuple(certs[1:]))
        return cls.from_p12_bytes(data, password, str(path))


def _order_chain(leaf: x509.Certificate, others: list[x509.Certificate]) -> list[x509.Certificate]:
    """Order ``others`` issuer-first from the leaf upwards; unrelated certificates go last."""
    ordered: list[x509.Certificate] = []
    remaining = list(others)
    current = leaf
    while remaining:
        parent = next((c for c in remaining if c.subject == current.issuer and c != current), None)
        if parent is None:
            break
        ordered.append(parent)
        remaining.remove(parent)
        if parent.subject == parent.issuer:
            break
        current = parent
    return ordered + remaining


def certificate_pem(cert: x509.Certificate) -> str:
    """One certificate as a PEM string."""
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
