"""Picking one certificate or CRL out of a store by what a person types: a fingerprint or a name."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

from mutls.store.locations import StoreError

#: a fingerprint prefix shorter than this would match by accident (and looks like a name).
MIN_PREFIX = 4


class Selectable(Protocol):
    """What a selector is matched against."""

    @property
    def fingerprint(self) -> str:
        """Lower-case hex SHA-256 of the DER encoding."""

    @property
    def names(self) -> tuple[str, ...]:
        """Names a person may use: the subject CN (or issuer CN for a CRL)."""

    @property
    def aliases(self) -> tuple[str, ...]:
        """Other hex identifiers accepted whole or by prefix (Mono's unique hash)."""

    def describe(self) -> str:
        """One line: fingerprint prefix and subject."""


T = TypeVar("T", bound=Selectable)


def normalise_hex(text: str) -> str:
    """``AB:CD:ef`` -> ``abcdef``; anything that is not hex comes back as ``""``."""
    cleaned = text.strip().replace(":", "").replace(" ", "").lower()
    return cleaned if cleaned and all(c in "0123456789abcdef" for c in cleaned) else ""


def select(entries: Sequence[T], selector: str, where: str, what: str = "certificate") -> T:
    """The one entry that ``selector`` names: a fingerprint (or unique prefix) or a unique CN.

    A missing or ambiguous match is an error that lists the candidates, so the user can retry
    with a longer fingerprint prefix.
    """
    hexed = normalise_hex(selector)
    exact = [e for e in entries if hexed and hexed in (e.fingerprint, *e.aliases)]
    if len(exact) == 1:
        return exact[0]
    matches: list[T] = []
    for entry in entries:
        by_name = any(selector.strip().casefold() == n.casefold() for n in entry.names)
        by_prefix = len(hexed) >= MIN_PREFIX and any(
            h.startswith(hexed) for h in (entry.fingerprint, *entry.aliases)
        )
        if by_name or by_prefix:
            matches.append(entry)
    if len(matches) == 1:
        return matches[0]
    if not matches:
        if not entries:
            raise StoreError(f"no {what} matches {selector!r}: {where} is empty")
        listing = "; ".join(e.describe() for e in entries)
        raise StoreError(f"no {what} in {where} matches {selector!r} (it holds: {listing})")
    listing = "; ".join(e.describe() for e in matches)
    raise StoreError(
        f"{selector!r} matches {len(matches)} {what}s in {where}: {listing} "
        "(give a longer fingerprint prefix)"
    )
