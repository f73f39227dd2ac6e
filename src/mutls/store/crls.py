"""Which CRLs a store keeps: per issuer, the newest full CRL and the newest delta on it.

A store that kept every CRL ever added grew without end, and an older CRL beside a newer one
is at best noise (OpenSSL picks the newer) and at worst, alone in another store, a way to
forget a revocation. So adding a CRL replaces what it supersedes, and an older one is refused:

- full CRLs are ordered by CRL number, then thisUpdate (a CRL without a number, as Mono's
  are, by thisUpdate alone); a new full CRL replaces the older full ones of its issuer, and the
  deltas that no longer apply to it;
- a delta CRL is kept only when it applies to the full CRL kept (OpenSSL's rule: its base CRL
  number is at most the full CRL's number, and its own number is larger), and replaces the
  older deltas of its issuer.

One issuer is one name and, when the CRLs say it, one key (Authority Key Identifier): a
re-keyed CA with the same name has CRLs of its own.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Protocol, TypeVar

from cryptography import x509

from mutls.pki.crl import crl_label, crl_number, delta_base
from mutls.store.locations import StoreError


class HeldCRL(Protocol):
    """A CRL a store holds (:class:`mutls.store.StoredCRL`)."""

    @property
    def crl(self) -> x509.CertificateRevocationList: ...


Held = TypeVar("Held", bound=HeldCRL)


def _key_id(crl: x509.CertificateRevocationList) -> bytes | None:
    try:
        aki = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    except x509.ExtensionNotFound:
        return None
    return aki.key_identifier


def same_issuer(a: x509.CertificateRevocationList, b: x509.CertificateRevocationList) -> bool:
    """Whether two CRLs come from one CA: one name and, when both say, one key."""
    if a.issuer != b.issuer:
        return False
    ka, kb = _key_id(a), _key_id(b)
    return ka is None or kb is None or ka == kb


def _order(crl: x509.CertificateRevocationList, with_number: bool) -> tuple[int, dt.datetime]:
    return (crl_number(crl) or 0) if with_number else 0, crl.last_update_utc


def is_newer(new: x509.CertificateRevocationList, old: x509.CertificateRevocationList) -> bool:
    """``new`` comes after ``old``: a larger CRL number, or the same and a later thisUpdate."""
    numbered = crl_number(new) is not None and crl_number(old) is not None
    return _order(new, numbered) > _order(old, numbered)


def applies_to(delta: x509.CertificateRevocationList, full: x509.CertificateRevocationList) -> bool:
    """Whether OpenSSL applies ``delta`` to ``full`` (base <= full's number < delta's)."""
    base, number, full_number = delta_base(delta), crl_number(delta), crl_number(full)
    if base is None or number is None or full_number is None:
        return False
    return base <= full_number < number


def superseded_by(
    new: x509.CertificateRevocationList, held: Sequence[Held], where: str
) -> list[Held]:
    """What adding ``new`` to a store holding ``held`` replaces; raises :class:`StoreError`
    (one line naming both CRLs) when ``new`` is older than what the store keeps."""
    same = [h for h in held if same_issuer(h.crl, new)]
    fulls = [h for h in same if delta_base(h.crl) is None]
    deltas = [h for h in same if delta_base(h.crl) is not None]
    issuer = new.issuer.rfc4514_string()
    label = f"{crl_label(new)} of {issuer}"
    if delta_base(new) is None:
        for kept in fulls:
            if not is_newer(new, kept.crl):
                raise StoreError(
                    f"{label} is not newer than the {crl_label(kept.crl)} already in {where} "
                    "(by CRL number, then thisUpdate): nothing changed"
                )
        return [*fulls, *(d for d in deltas if not applies_to(d.crl, new))]
    if not fulls:
        raise StoreError(
            f"{label}: no full CRL of that issuer in {where} to apply it to; "
            f"add the full CRL #{delta_base(new)} or a newer one first"
        )
    full = max(fulls, key=lambda h: _order(h.crl, True)).crl
    if not applies_to(new, full):
        if (crl_number(new) or 0) <= (crl_number(full) or 0):
            raise StoreError(
                f"{label} is older than the {crl_label(full)} already in {where}, "
                "which includes it: nothing changed"
            )
        raise StoreError(
            f"{label} does not apply to the {crl_label(full)} in {where}: add the full "
            f"CRL #{delta_base(new)} or a newer one first"
        )
    for kept in deltas:
        if not is_newer(new, kept.crl):
            raise StoreError(
                f"{label} is not newer than the {crl_label(kept.crl)} already in {where}: "
                "nothing changed"
            )
    return deltas
