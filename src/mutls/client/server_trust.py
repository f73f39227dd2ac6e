"""Which servers the client trusts: the system's roots plus the user's ``Trust`` store, or
exactly the ``--cacert`` file. One description, applied to pyOpenSSL and to stdlib ``ssl``."""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL, crypto

from mutls.pki.certs import load_certificates
from mutls.store import server_trust_anchors


def trust_store_anchors() -> list[x509.Certificate]:
    """The user's ``Trust`` store (what ``mutls certmgr -add -c Trust`` filled)."""
    return server_trust_anchors(machine=False)


@dataclass(frozen=True)
class ServerTrust:
    """The roots a server certificate must chain to.

    ``system`` adds the operating system's roots to ``anchors``; ``source`` says where the
    anchors came from, for messages ("--cacert root.pem", "system roots + Trust store").
    """

    anchors: tuple[x509.Certificate, ...] = field(default=())
    system: bool = True
    source: str = "system roots + Trust store"

    @classmethod
    def default(cls) -> ServerTrust:
        """The system roots and the user's ``Trust`` store."""
        return cls(tuple(trust_store_anchors()), system=True)

    @classmethod
    def from_cafile(cls, cafile: str | os.PathLike[str]) -> ServerTrust:
        """Exactly the certificates of ``cafile`` (PEM bundle or DER), as curl's ``--cacert``."""
        return cls(tuple(load_certificates(cafile)), system=False, source=f"--cacert {cafile}")

    @classmethod
    def resolve(cls, cafile: str | os.PathLike[str] | None) -> ServerTrust:
        """``--cacert`` when given, else the default."""
        return cls.from_cafile(cafile) if cafile is not None else cls.default()

    def apply_to_openssl(self, context: SSL.Context) -> None:
        """Load these roots into a pyOpenSSL context."""
        if self.system:
            context.set_default_verify_paths()
        store = context.get_cert_store()
        if store is None:  # pragma: no cover - a fresh context always has one
            return
        for cert in self.anchors:
            try:
                store.add_cert(crypto.X509.from_cryptography(cert))
            except Exception:  # noqa: S112 - already present (system and Trust overlap)
                continue

    def apply_to_ssl(self, context: ssl.SSLContext) -> None:
        """Load these roots into a stdlib ``ssl`` context."""
        if self.system:
            context.load_default_certs(ssl.Purpose.SERVER_AUTH)
        if self.anchors:
            pem = "".join(
                c.public_bytes(serialization.Encoding.PEM).decode("ascii") for c in self.anchors
            )
            context.load_verify_locations(cadata=pem)
