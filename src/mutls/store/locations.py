"""Store names and where each store lives: the user's, the machine's, and Mono's own layout."""

from __future__ import annotations

import enum
import os
from pathlib import Path

from mutls.errors import MutlsError

#: the machine store when ``MUTLS_MACHINE_STORE`` is not set.
DEFAULT_MACHINE_STORE = Path("/etc/mutls/certs")
MACHINE_STORE_ENV = "MUTLS_MACHINE_STORE"
#: Mono's machine stores: ``CommonApplicationData`` (``/usr/share`` on Linux) + ``.mono/certs``.
DEFAULT_MONO_MACHINE_STORE = Path("/usr/share/.mono/certs")
MONO_MACHINE_STORE_ENV = "MUTLS_MONO_MACHINE_STORE"


class StoreError(MutlsError):
    """A store cannot be opened, read or changed, or a selector names no single certificate."""


class StoreName(enum.Enum):
    """Mono's (and Windows') store names; the value is the directory name."""

    MY = "My"
    ADDRESS_BOOK = "AddressBook"
    CA = "CA"
    TRUST = "Trust"
    DISALLOWED = "Disallowed"

    @classmethod
    def parse(cls, text: str | StoreName) -> StoreName:
        """The store called ``text``, case-insensitive as Mono's (``Root`` means ``Trust``)."""
        if isinstance(text, StoreName):
            return text
        lowered = text.strip().lower()
        if lowered == "root":
            return cls.TRUST
        for name in cls:
            if name.value.lower() == lowered:
                return name
        known = ", ".join(n.value for n in cls)
        raise StoreError(f"unknown store {text!r}: use one of {known}")

    @property
    def holds_keys(self) -> bool:
        """Only ``My`` keeps private keys (your own identities)."""
        return self is StoreName.MY

    @property
    def holds_crls(self) -> bool:
        """CRLs belong with the CAs that issue them: ``Trust`` and ``CA`` (as in Mono)."""
        return self in (StoreName.TRUST, StoreName.CA)


def config_home() -> Path:
    """``$XDG_CONFIG_HOME``, or ``~/.config`` (where .NET/Mono's ApplicationData points too)."""
    configured = os.environ.get("XDG_CONFIG_HOME")
    if configured and os.path.isabs(configured):
        return Path(configured)
    return Path.home() / ".config"


def store_root(*, machine: bool = False, mono: bool = False) -> Path:
    """The directory that holds one sub-directory per store.

    user: ``$XDG_CONFIG_HOME/mutls/certs``; machine: ``$MUTLS_MACHINE_STORE`` or
    ``/etc/mutls/certs``; with ``mono``, Mono's ``~/.config/.mono/certs`` and
    ``/usr/share/.mono/certs`` (``$MUTLS_MONO_MACHINE_STORE``).
    """
    if mono:
        if machine:
            return Path(os.environ.get(MONO_MACHINE_STORE_ENV) or DEFAULT_MONO_MACHINE_STORE)
        return config_home() / ".mono" / "certs"
    if machine:
        return Path(os.environ.get(MACHINE_STORE_ENV) or DEFAULT_MACHINE_STORE)
    return config_home() / "mutls" / "certs"
