"""The client-certificate verdicts the TLS engine already reached, reused per trust generation.

A client reconnecting with the same chain need not pay for its verdict each time. Reuse never
goes beyond what decided the verdict, and the cache is bounded in entries *and* bytes: see
:class:`Verdicts`.
"""

from __future__ import annotations

import hashlib
import time
import weakref
from collections.abc import Iterable, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mutls.tls.bounded import BoundedCache
from mutls.tls.client_certificate import ClientCertificate
from mutls.tls.verify import ClientVerifier

#: verdicts kept per trust generation (one ClientVerifier), and the bytes of certificates they
#: may hold in all; how long one found by verifying again (resumption, forwarded) is reused: at
#: most this, and never past a notAfter of the chain or of our authorities, or a CRL's
#: nextUpdate.
VERDICTS_MAX = 1024
VERDICTS_MAX_BYTES = 4 * 1024 * 1024
RECHECK_REUSE_S = 5.0


def key_of(*parts: bytes | Sequence[bytes]) -> bytes:
    """A 32-byte key for the inputs of a verdict (DERs, flags), never the DERs themselves."""
    h = hashlib.sha256()
    for part in parts:
        for item in [part] if isinstance(part, bytes) else part:
            h.update(len(item).to_bytes(4, "big"))
            h.update(item)
        h.update(b"|")
    return h.digest()


class Verdicts:
    """Verdicts already reached under one :class:`ClientVerifier` (one trust generation).

    The verifier is immutable and a trust change (reload, SIGHUP) makes a new one, hence a new
    cache: Disallowed and CRLs are always the current ones. Keys are digests of every input
    that decides the verdict (see :func:`key_of`), so a verdict is never reused for another
    chain, and a key costs 32 bytes whatever the chain's size.
    """

    def __init__(self, verifier: ClientVerifier) -> None:
        self._entries: BoundedCache[bytes, tuple[ClientCertificate, float]] = BoundedCache(
            VERDICTS_MAX_BYTES, max_item_bytes=VERDICTS_MAX_BYTES // 8, max_entries=VERDICTS_MAX
        )
        trust = verifier.trust
        # The earliest wall-clock time at which our own trust material changes its answer.
        ends = [c.not_valid_after_utc.timestamp() for c in (*trust.anchors, *trust.intermediates)]
        ends += [c.next_update_utc.timestamp() for c in trust.crls if c.next_update_utc]
        self._trust_ends = min(ends, default=float("inf"))

    @property
    def size(self) -> tuple[int, int]:
        """(entries, bytes of certificates held)."""
        return self._entries.size

    def get(self, key: bytes) -> ClientCertificate | None:
        """The verdict kept for ``key``, if still fresh."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[1] < time.monotonic():
            self._entries.pop(key)
            return None
        return entry[0]

    def put(
        self,
        key: bytes,
        verdict: ClientCertificate,
        expiring: Iterable[x509.Certificate] | None,
    ) -> None:
        """Keep ``verdict``; ``expiring``: the certificates it was found for by a check made
        now (its lifetime is then bounded), ``None`` for a verdict from the handshake itself."""
        now = time.monotonic()
        if expiring is not None:
            wall = time.time()
            ends = min(
                self._trust_ends,
                *(c.not_valid_after_utc.timestamp() for c in expiring),
                float("inf"),
            )
            deadline = now + min(RECHECK_REUSE_S, ends - wall)
            if deadline <= now:
                return
        else:
            deadline = float("inf")  # OpenSSL verified this very handshake: nothing to expire
        # The DER of the verified chain and of the chain the client sent (they share little
        # when the client pads its list), and about as much again for the parsed certificates.
        sent = sum(len(c.public_bytes(serialization.Encoding.DER)) for c in verdict.chain)
        size = 2 * (sum(map(len, verdict.verified_chain)) + sent) + 512
        self._entries.put(key, (verdict, deadline), size)


_VERDICTS: weakref.WeakKeyDictionary[ClientVerifier, Verdicts] = weakref.WeakKeyDictionary()


def verdicts_of(verifier: ClientVerifier) -> Verdicts:
    """The verdicts reached under ``verifier`` (made on first use, gone with it)."""
    verdicts = _VERDICTS.get(verifier)
    if verdicts is None:
        verdicts = _VERDICTS[verifier] = Verdicts(verifier)
    return verdicts
