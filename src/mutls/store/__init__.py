"""Certificate stores (Mono's certmgr): Trust, CA, My, AddressBook, Disallowed, and CRLs.

What the rest of mutls calls::

    from mutls import store
    trust = store.client_trust()                 # the server's client-certificate trust
    extra = store.server_trust_anchors()         # the client's trust on top of the system's
    trusted = store.open_store("Trust")          # one store, to list, add, remove

The user's stores live under ``$XDG_CONFIG_HOME/mutls/certs/<Store>/`` (``~/.config/…``), the
machine's under ``/etc/mutls/certs`` (``$MUTLS_MACHINE_STORE``). As Mono merges CurrentUser and
LocalMachine when it builds a chain, the user's view is the user's stores plus the machine's;
``machine=True`` reads the machine's stores alone (a service should not depend on a home).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from cryptography import x509

from mutls.pki.certs import fingerprint, load_certificates
from mutls.pki.crl import load_crls
from mutls.pki.trust import TrustMaterial
from mutls.store.directory import (
    AddResult,
    CertificateStore,
    CRLAdded,
    StoredCertificate,
    StoredCRL,
    crl_fingerprint,
)
from mutls.store.locations import StoreError, StoreName, store_root
from mutls.store.mono import MonoCertificateStore, mono_file_name, mono_hash

__all__ = [
    "AddResult",
    "CRLAdded",
    "CertificateStore",
    "MonoCertificateStore",
    "StoreError",
    "StoreName",
    "StoredCRL",
    "StoredCertificate",
    "client_trust",
    "mono_file_name",
    "mono_hash",
    "open_store",
    "server_trust_anchors",
    "store_root",
]


def open_store(
    name: str | StoreName, *, machine: bool = False, mono: bool = False
) -> CertificateStore:
    """The store called ``name`` (case-insensitive), user or machine, mutls or Mono layout.

    Opening creates nothing; the directory appears with the first certificate added.
    """
    store_name = StoreName.parse(name)
    directory = store_root(machine=machine, mono=mono) / store_name.value
    kind = MonoCertificateStore if mono else CertificateStore
    return kind(store_name, directory, machine=machine)


def _stores(name: StoreName, machine: bool) -> list[CertificateStore]:
    if machine:
        return [open_store(name, machine=True)]
    user, system = open_store(name), open_store(name, machine=True)
    # Both point to the same place when a user sets MUTLS_MACHINE_STORE to their own store.
    same = os.path.realpath(user.directory) == os.path.realpath(system.directory)
    return [user] if same else [user, system]


def _unique(certs: Iterable[x509.Certificate]) -> tuple[x509.Certificate, ...]:
    seen: dict[str, x509.Certificate] = {}
    for cert in certs:
        seen.setdefault(fingerprint(cert), cert)
    return tuple(seen.values())


def _certificates(name: StoreName, machine: bool) -> tuple[x509.Certificate, ...]:
    return _unique(e.certificate for s in _stores(name, machine) for e in s.certificates())


def client_trust(
    *,
    client_ca_files: Sequence[str | os.PathLike[str]] = (),
    crl_files: Sequence[str | os.PathLike[str]] = (),
    machine: bool = False,
) -> TrustMaterial:
    """What a server trusts for client certificates, as the article relies on it.

    anchors: the ``Trust`` store, replaced by every certificate in ``client_ca_files`` when any
    are given (``--client-ca``); intermediates: the ``CA`` store; disallowed: the
    ``Disallowed`` store; crls: the CRLs of ``Trust`` and ``CA`` plus those in ``crl_files``.
    ``Disallowed`` and CRLs apply whichever anchors are used.
    """
    if client_ca_files:
        anchors = _unique(c for path in client_ca_files for c in load_certificates(path))
    else:
        anchors = _certificates(StoreName.TRUST, machine)
    crls: dict[str, x509.CertificateRevocationList] = {}
    for name in (StoreName.TRUST, StoreName.CA):
        for store in _stores(name, machine):
            for entry in store.crls():
                crls.setdefault(entry.fingerprint, entry.crl)
    for path in crl_files:
        for crl in load_crls(path):
            crls.setdefault(crl_fingerprint(crl), crl)
    return TrustMaterial(
        anchors=anchors,
        intermediates=_certificates(StoreName.CA, machine),
        disallowed=_certificates(StoreName.DISALLOWED, machine),
        crls=tuple(crls.values()),
    )


def server_trust_anchors(*, machine: bool = False) -> list[x509.Certificate]:
    """The ``Trust`` store: what a client trusts for servers on top of the system's trust."""
    return list(_certificates(StoreName.TRUST, machine))


def store_directory(name: str | StoreName, *, machine: bool = False, mono: bool = False) -> Path:
    """Where the store called ``name`` lives (it may not exist yet)."""
    return open_store(name, machine=machine, mono=mono).directory
