"""A certificate store on disk: one file per certificate named by its SHA-256 fingerprint.

Layout of store ``S`` under a root (see :mod:`mutls.store.locations`)::

    S/<sha256>.pem        the certificate, PEM
    S/<sha256>.key        its private key, PEM PKCS#8, 0600 (``My`` only)
    S/crl/<sha256>.pem    a CRL, named by the SHA-256 of its DER (``Trust`` and ``CA`` only)

Every file is written atomically (:func:`mutls.pki.files.write_file`), so a crash leaves the
old store or the new one, never a partial file. A file that cannot be read is an error, not
skipped: silently dropping a ``Disallowed`` entry would quietly trust what the user refused.
"""

from __future__ import annotations

import contextlib
import enum
import fnmatch
import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mutls.errors import MutlsError
from mutls.pki.certs import fingerprint, parse_certificates
from mutls.pki.crl import crl_label, parse_crls
from mutls.pki.files import PRIVATE, PRIVATE_DIR, PUBLIC, PUBLIC_DIR, make_directories, write_file
from mutls.pki.keys import (
    PrivateKey,
    key_matches_certificate,
    load_private_key,
    private_key_pem,
)
from mutls.pki.names import common_name
from mutls.store.crls import superseded_by
from mutls.store.locations import StoreError, StoreName
from mutls.store.selection import select


@dataclass(frozen=True)
class StoredCertificate:
    """A certificate as a store holds it: the certificate, its file, and its key file if any."""

    certificate: x509.Certificate
    path: Path
    key_path: Path | None = None
    aliases: tuple[str, ...] = field(default=())

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the DER, lower-case hex."""
        return fingerprint(self.certificate)

    @property
    def subject(self) -> str:
        """The subject, RFC 4514."""
        return self.certificate.subject.rfc4514_string()

    @property
    def names(self) -> tuple[str, ...]:
        """The subject CN, for selectors."""
        cn = common_name(self.certificate.subject)
        return (cn,) if cn else ()

    def describe(self) -> str:
        """``<fingerprint prefix> <subject>``."""
        return f"{self.fingerprint[:16]} {self.subject or '(empty subject)'}"


@dataclass(frozen=True)
class StoredCRL:
    """A CRL as a store holds it."""

    crl: x509.CertificateRevocationList
    path: Path
    aliases: tuple[str, ...] = field(default=())

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the DER, lower-case hex."""
        return crl_fingerprint(self.crl)

    @property
    def issuer(self) -> str:
        """The issuer, RFC 4514."""
        return self.crl.issuer.rfc4514_string()

    @property
    def names(self) -> tuple[str, ...]:
        """The issuer CN, for selectors."""
        cn = common_name(self.crl.issuer)
        return (cn,) if cn else ()

    def describe(self) -> str:
        """``<fingerprint prefix> full CRL #3 of <issuer>`` (or ``delta CRL #4 (base #3)``)."""
        return f"{self.fingerprint[:16]} {crl_label(self.crl)} of {self.issuer}"


class AddResult(enum.Enum):
    """What :meth:`CertificateStore.add` did."""

    ADDED = "added"
    ALREADY_PRESENT = "already present"
    KEY_ADDED = "key added"


@dataclass(frozen=True)
class CRLAdded:
    """What :meth:`CertificateStore.add_crl` did, and the CRLs it replaced."""

    result: AddResult
    replaced: tuple[StoredCRL, ...] = ()


def crl_fingerprint(crl: x509.CertificateRevocationList) -> str:
    """SHA-256 of a CRL's DER, lower-case hex."""
    return hashlib.sha256(crl.public_bytes(serialization.Encoding.DER)).hexdigest()


class CertificateStore:
    """One named store (My, AddressBook, CA, Trust or Disallowed) in one directory."""

    #: the layout's name, for messages.
    layout = "mutls"

    def __init__(self, name: StoreName, directory: Path, *, machine: bool = False) -> None:
        self.name = name
        self.directory = directory
        self.machine = machine

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name.value} at {self.directory}>"

    @property
    def label(self) -> str:
        """How messages name this store: ``Trust (user store ~/.config/…/Trust)``."""
        kind = "machine" if self.machine else "user"
        extra = "Mono " if self.layout == "mono" else ""
        return f"{self.name.value} ({kind} {extra}store {self.directory})"

    # -- layout (overridden by the Mono layout) ---------------------------------------------------

    def certificate_path(self, cert: x509.Certificate) -> Path:
        """Where ``cert`` is (or would be) stored."""
        return self.directory / f"{fingerprint(cert)}.pem"

    def key_path(self, cert: x509.Certificate) -> Path:
        """Where the key of ``cert`` is (or would be) stored."""
        return self.directory / f"{fingerprint(cert)}.key"

    def existing_key_path(self, cert: x509.Certificate) -> Path | None:
        """The key file of ``cert`` when the store holds one."""
        if not self.name.holds_keys:
            return None
        path = self.key_path(cert)
        return path if path.is_file() else None

    def crl_path(self, crl: x509.CertificateRevocationList) -> Path:
        """Where ``crl`` is (or would be) stored."""
        return self.directory / "crl" / f"{crl_fingerprint(crl)}.pem"

    def certificate_files(self) -> list[Path]:
        """The files that hold certificates."""
        return self._files(self.directory, "*.pem")

    def crl_files(self) -> list[Path]:
        """The files that hold CRLs."""
        return self._files(self.directory / "crl", "*.pem")

    def encode_certificate(self, cert: x509.Certificate) -> bytes:
        """A certificate file's bytes."""
        return cert.public_bytes(serialization.Encoding.PEM)

    def encode_crl(self, crl: x509.CertificateRevocationList) -> bytes:
        """A CRL file's bytes."""
        return crl.public_bytes(serialization.Encoding.PEM)

    def aliases(self, cert: x509.Certificate) -> tuple[str, ...]:
        """Other identifiers a selector may use for ``cert``."""
        return ()

    def crl_aliases(self, crl: x509.CertificateRevocationList) -> tuple[str, ...]:
        """Other identifiers a selector may use for ``crl``."""
        return ()

    # -- reading -------------------------------------------------------------------------------

    def certificates(self) -> list[StoredCertificate]:
        """Every certificate in the store, in file-name order (an absent store is empty)."""
        entries: list[StoredCertificate] = []
        seen: set[str] = set()
        for path in self.certificate_files():
            for cert in _read_certificates(path):
                fp = fingerprint(cert)
                if fp in seen:
                    continue
                seen.add(fp)
                key = self.existing_key_path(cert)
                entries.append(StoredCertificate(cert, path, key, self.aliases(cert)))
        return entries

    def crls(self) -> list[StoredCRL]:
        """Every CRL in the store."""
        return [
            StoredCRL(crl, path, self.crl_aliases(crl))
            for path in self.crl_files()
            for crl in _read_crls(path)
        ]

    def find(self, selector: str) -> StoredCertificate:
        """The one certificate ``selector`` names (fingerprint, unique prefix or unique CN)."""
        return select(self.certificates(), selector, f"store {self.label}")

    def find_crl(self, selector: str) -> StoredCRL:
        """The one CRL ``selector`` names (fingerprint, unique prefix or issuer CN)."""
        return select(self.crls(), selector, f"store {self.label}", "CRL")

    def __contains__(self, cert: object) -> bool:
        return isinstance(cert, x509.Certificate) and any(
            e.certificate == cert for e in self.certificates()
        )

    def load_key(self, entry: StoredCertificate) -> PrivateKey:
        """The private key stored for ``entry`` (``My`` only)."""
        if entry.key_path is None:
            raise StoreError(f"{entry.describe()}: no private key in store {self.label}")
        return load_private_key(entry.key_path)

    # -- changing ------------------------------------------------------------------------------

    def add(self, cert: x509.Certificate, key: PrivateKey | None = None) -> AddResult:
        """Add one certificate (with its key, in ``My``); a duplicate changes nothing."""
        return self.add_all([cert], key_for={fingerprint(cert): key} if key else None)[0]

    def add_all(
        self,
        certs: Sequence[x509.Certificate],
        *,
        key_for: dict[str, PrivateKey] | None = None,
    ) -> list[AddResult]:
        """Add several certificates as one step: all of them, or (on a failure) none.

        ``key_for`` maps a certificate's fingerprint to its private key (``My`` only).
        """
        keys = key_for or {}
        if keys and not self.name.holds_keys:
            raise StoreError(f"private keys belong in the My store, not {self.name.value}")
        for fp, key in keys.items():
            owner = next((c for c in certs if fingerprint(c) == fp), None)
            if owner is None or not key_matches_certificate(key, owner):
                raise StoreError("the private key does not belong to the certificate being added")
        present = {e.fingerprint: e for e in self.certificates()}
        planned: set[str] = set()
        plan: list[tuple[Path, bytes, int]] = []
        results: list[AddResult] = []
        for cert in certs:
            fp = fingerprint(cert)
            own_key = keys.get(fp)
            existing = present.get(fp)
            if existing is not None or fp in planned:
                if own_key is not None and existing is not None and existing.key_path is None:
                    plan.append((self.key_path(cert), private_key_pem(own_key), PRIVATE))
                    results.append(AddResult.KEY_ADDED)
                else:
                    results.append(AddResult.ALREADY_PRESENT)
                continue
            planned.add(fp)
            if own_key is not None:
                # The key goes first: a certificate in My never appears without its key.
                plan.append((self.key_path(cert), private_key_pem(own_key), PRIVATE))
            plan.append((self.certificate_path(cert), self.encode_certificate(cert), PUBLIC))
            results.append(AddResult.ADDED)
        self._write(plan)
        return results

    def remove(self, selector: str) -> StoredCertificate:
        """Remove the certificate ``selector`` names (and its key); return what was removed."""
        entry = self.find(selector)
        self._unlink(entry.path)
        if entry.key_path is not None:
            self._unlink(entry.key_path)
        return entry

    def add_crl(self, crl: x509.CertificateRevocationList) -> CRLAdded:
        """Add a CRL (``Trust`` and ``CA`` only), replacing the older ones of its issuer it
        supersedes (:mod:`mutls.store.crls`); a duplicate changes nothing, an older CRL is
        refused (:class:`StoreError`)."""
        self._require_crl_store()
        held = self.crls()
        if any(e.fingerprint == crl_fingerprint(crl) for e in held):
            return CRLAdded(AddResult.ALREADY_PRESENT)
        replaced = superseded_by(crl, held, self.name.value)
        # The new CRL first: a crash in between leaves one CRL too many, never one too few.
        self._write([(self.crl_path(crl), self.encode_crl(crl), PUBLIC)])
        for entry in replaced:
            self._unlink(entry.path)
        return CRLAdded(AddResult.ADDED, tuple(replaced))

    def remove_crl(self, selector: str) -> StoredCRL:
        """Remove the CRL ``selector`` names."""
        entry = self.find_crl(selector)
        self._unlink(entry.path)
        return entry

    # -- helpers -------------------------------------------------------------------------------

    def _require_crl_store(self) -> None:
        if not self.name.holds_crls:
            raise StoreError(
                f"CRLs belong in the Trust or CA store (with the CA that issued them), "
                f"not {self.name.value}"
            )

    def _files(self, directory: Path, pattern: str) -> list[Path]:
        if not directory.exists():
            return []
        if not directory.is_dir():
            raise StoreError(
                f"{directory}: is not a directory; the {self.name.value} store must be one "
                "(move the file away)"
            )
        try:
            # os.listdir, not Path.glob: glob hides an unreadable directory as an empty one.
            names = os.listdir(directory)
            return sorted(
                directory / n
                for n in names
                if fnmatch.fnmatchcase(n, pattern) and (directory / n).is_file()
            )
        except OSError as exc:
            raise StoreError(f"{directory}: cannot read the store: {exc.strerror}") from exc

    def _ensure_directory(self, directory: Path) -> None:
        if directory.exists() and not directory.is_dir():
            raise StoreError(
                f"{directory}: is not a directory, cannot write the {self.name.value} store "
                "(move the file away)"
            )
        # 0700 whatever the umask; a machine store's certificates are read by every user's
        # server, so its directories are 0755 (never writable by others), except My's keys.
        public = self.machine and not self.name.holds_keys
        try:
            if self.machine:
                make_directories(self.directory.parent, PUBLIC_DIR)
            make_directories(directory, PUBLIC_DIR if public else PRIVATE_DIR)
        except OSError as exc:
            raise StoreError(
                f"{directory}: cannot create the {self.name.value} store: {exc.strerror}"
            ) from exc

    def _write(self, plan: Iterable[tuple[Path, bytes, int]]) -> None:
        written: list[Path] = []
        try:
            for path, data, mode in plan:
                self._ensure_directory(path.parent)
                existed = path.exists()
                write_file(path, data, mode=mode, overwrite=True)
                if not existed:
                    written.append(path)
        except MutlsError as exc:
            for path in written:
                with contextlib.suppress(OSError):
                    path.unlink()
            raise StoreError(f"{exc} (store {self.name.value} left unchanged)") from exc

    def _unlink(self, path: Path) -> None:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StoreError(f"{path}: cannot remove from the store: {exc.strerror}") from exc


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise StoreError(f"{path}: cannot read store file: {exc.strerror}") from exc


def _read_certificates(path: Path) -> list[x509.Certificate]:
    try:
        return parse_certificates(_read(path), str(path))
    except StoreError:
        raise
    except MutlsError:
        raise StoreError(_corrupt(path, "certificate")) from None


def _read_crls(path: Path) -> list[x509.CertificateRevocationList]:
    try:
        return parse_crls(_read(path), str(path))
    except StoreError:
        raise
    except MutlsError:
        raise StoreError(_corrupt(path, "CRL")) from None


def _corrupt(path: Path, what: str) -> str:
    return f"{path}: corrupt {what} file in the store (delete the file, then add the {what} again)"
