"""The client-certificate verdicts the TLS engine already reached, reused per trust generation.

A resumed session runs no verify callback, so its verdict must be found again (DESIGN.md); a
client reconnecting with the same chain need not pay for that each time. Reuse never goes
beyond what decided the verdict: see :class:`Verdicts`.
"""

from __future__ import annotations

import time
import weakref
from collections import OrderedDict
from collections.abc import Hashable, Sequence

from cryptography import x509

from mutls.tls.client_certificate import ClientCertificate
from mutls.tls.verify import ClientVerifier

#: verdicts kept per trust generation (one ClientVerifier), and how long one found by
#: verifying again (resumption, changed trust) is reused: at most this, and never past a
#: notAfter of the chain or of our authorities, or a CRL's nextUpdate.
VERDICTS_MAX = 1024
RECHECK_REUSE_S = 5.0


class Verdicts:
    """Verdicts already reached under one :class:`ClientVerifier` (one trust generation).

    The verifier is immutable and a trust change (reload, SIGHUP) makes a new one, hence a new
    cache: Disallowed and CRLs are always the current ones. Only inputs that decide the verdict
    are in the key (the DER chain, and the handshake callback's failure when it ran), so a
    verdict is never reused for another certificate.
    """

    def __init__(self, verifier: ClientVerifier) -> None:
        self._entries: OrderedDict[Hashable, tuple[ClientCertificate, float]] = OrderedDict()
        trust = verifier.trust
        # The earliest wall-clock time at which our own trust material changes its answer.
        ends = [c.not_valid_after_utc.timestamp() for c in (*trust.anchors, *trust.intermediates)]
        ends += [c.next_update_utc.timestamp() for c in trust.crls if c.next_update_utc]
        self._trust_ends = min(ends, default=float("inf"))

    def get(self, key: Hashable) -> ClientCertificate | None:
        """The verdict kept for ``key``, if still fresh."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[1] < time.monotonic():
            del self._entries[key]
            return None
        return entry[0]

    def put(
        self,
        key: Hashable,
        verdict: ClientCertificate,
        expiring: Sequence[x509.Certificate] | None,
    ) -> None:
        """Keep ``verdict``; ``expiring``: the certificates it was found for by a re-check
        (its lifetime is then bounded), ``None`` for a verdict from the handshake itself."""
        now = time.monotonic()
        if expiring is not None:
            wall = time.time()
            ends = min(self._trust_ends, *(c.not_valid_after_utc.timestamp() for c in expiring))
            deadline = now + min(RECHECK_REUSE_S, ends - wall)
            if deadline <= now:
                return
        else:
            deadline = float("inf")  # OpenSSL verified this very handshake: nothing to expire
        entries = self._entries
        entries[key] = (verdict, deadline)
        if len(entries) > VERDICTS_MAX:
            entries.popitem(last=False)


_VERDICTS: weakref.WeakKeyDictionary[ClientVerifier, Verdicts] = weakref.WeakKeyDictionary()


def verdicts_of(verifier: ClientVerifier) -> Verdicts:
    """The verdicts reached under ``verifier`` (made on first use, gone with it)."""
    verdicts = _VERDICTS.get(verifier)
    if verdicts is None:
        verdicts = _VERDICTS[verifier] = Verdicts(verifier)
    return verdicts
