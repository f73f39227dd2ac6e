"""A failure budget per peer address: a client whose connections keep failing is slowed down
before it costs the server another handshake.

Every server-side refusal of a misbehaving client costs work before it is made: a TLS
handshake refused for an oversized certificate list has already cost the server its
signature; a body refused for 1-byte chunks has cost a whole handshake and the reading. An
attacker that reconnects at once can keep doing that, and on one event loop its share is
taken from everyone else. So each peer address (IPv4, or an IPv6 /64: one host's usual
allocation) has a budget of ``--max-failures-per-source`` failed connections per
:data:`WINDOW_S` seconds, kept as a leaky bucket. An address over it has its new connections
held unread for :data:`HOLD_S` (no TLS state is made, nothing is read) and then closed; once
its bucket drains under the budget, it is served again. As HAProxy's per-source stick-table
rules or fail2ban do, in process and short-lived.

What counts as a failure: a TLS handshake that failed or timed out, plain HTTP on the TLS
port, a request refused as malformed or over a limit (the HTTP layer's 4xx: 400, 413, 431,
...), a request head or body that timed out, and an HTTP/2 connection ended for a protocol
error or a flood. Not a failure: a 403 from the policy, an idle keep-alive connection closed,
a client that left.

Bounded: :data:`MAX_SOURCES` addresses are remembered (the least recently failed are
forgotten first), and at most :data:`MAX_HELD_PER_SOURCE` connections of one address and
:data:`MAX_HELD` in all are held; past those, a connection of an address over its budget is
closed at once. Trusted proxies (``--trusted-proxy``) are exempt: they carry many clients.
The budget is per process: with ``--workers N`` each worker keeps its own.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

from mutls.server.log import PeerThrottle, log, peer

if TYPE_CHECKING:
    from mutls.apps.peers import TrustedPeers

#: the budget is this many seconds' worth of failures.
WINDOW_S = 10.0
#: how long a connection of an address over its budget is held (unread) before it is closed.
HOLD_S = 1.0
MAX_SOURCES = 4096
MAX_HELD_PER_SOURCE = 64
MAX_HELD = 256
#: an address over its budget is logged at most once per this many seconds.
LOG_INTERVAL_S = 10.0


def source_key(host: str) -> str:
    """The address a budget belongs to: an IPv4 address as is, an IPv6 one by its /64 (an
    IPv4-mapped one as the IPv4 address)."""
    if ":" not in host:
        return host
    try:
        address = ipaddress.IPv6Address(host.split("%", 1)[0])
    except ValueError:
        return host
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(ipaddress.IPv6Network((address, 64), strict=False))


class _Source:
    __slots__ = ("held", "level", "updated")

    def __init__(self, now: float) -> None:
        self.level = 0.0
        self.updated = now
        self.held = 0


class SourceBudget:
    """The failure budgets of one serving process (see the module's text)."""

    def __init__(
        self,
        budget: int,
        exempt: TrustedPeers | None = None,
        *,
        window: float = WINDOW_S,
        hold: float = HOLD_S,
        max_sources: int = MAX_SOURCES,
        max_held_per_source: int = MAX_HELD_PER_SOURCE,
        max_held: int = MAX_HELD,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if budget < 1:
            raise ValueError("a failure budget is at least 1 (0 is no budget: no SourceBudget)")
        self.budget = budget
        self.rate = budget / window
        self.window = window
        self.hold_s = hold
        self.max_sources = max_sources
        self.max_held_per_source = max_held_per_source
        self.max_held = max_held
        self._exempt = exempt
        self._clock = clock
        self._sources: OrderedDict[str, _Source] = OrderedDict()
        self._logged = PeerThrottle(LOG_INTERVAL_S, max_sources, clock)
        self._held: set[asyncio.Transport] = set()
        #: connections held, and closed at once, since start (for tests and logs).
        self.held_total = 0
        self.dropped_total = 0

    def _level(self, source: _Source, now: float) -> float:
        level = max(0.0, source.level - (now - source.updated) * self.rate)
        source.level, source.updated = level, now
        return level

    def failed(self, client: tuple[str, int] | None) -> None:
        """A connection of ``client`` failed (see the module's text for what counts)."""
        if client is None:
            return
        host = client[0]
        if self._exempt is not None and self._exempt.trusts_host(host):
            return
        key = source_key(host)
        now = self._clock()
        source = self._sources.get(key)
        if source is None:
            source = self._sources[key] = _Source(now)
            while len(self._sources) > self.max_sources:
                self._forget_one()
        else:
            self._sources.move_to_end(key)
        source.level = self._level(source, now) + 1.0

    def _forget_one(self) -> None:
        """Forget the least recently failed address that has nothing held."""
        for key, source in self._sources.items():
            if not source.held:
                del self._sources[key]
                return
        self._sources.popitem(last=False)  # every one holds something: bounded all the same

    def over(self, client: tuple[str, int] | None) -> bool:
        """Whether ``client``'s address is over its budget now: more failures than the
        budget, less what drained since (the budget's worth per window)."""
        if client is None or not self._sources:
            return False
        source = self._sources.get(source_key(client[0]))
        return source is not None and self._level(source, self._clock()) > self.budget

    def hold(self, transport: asyncio.Transport, client: tuple[str, int] | None) -> None:
        """A new connection of an address :meth:`over` its budget: read nothing, close it
        after :data:`HOLD_S` (at once when the holding caps are reached)."""
        assert client is not None
        key = source_key(client[0])
        source = self._sources[key]
        self._log(client, key)
        if source.held >= self.max_held_per_source or len(self._held) >= self.max_held:
            self.dropped_total += 1
            transport.abort()
            return
        self.held_total += 1
        source.held += 1
        self._held.add(transport)
        transport.pause_reading()
        asyncio.get_running_loop().call_later(self.hold_s, self._release, transport, key)

    def _release(self, transport: asyncio.Transport, key: str) -> None:
        if transport in self._held:
            self._held.discard(transport)
            source = self._sources.get(key)
            if source is not None:
                source.held -= 1
            transport.abort()

    def _log(self, client: tuple[str, int], key: str) -> None:
        held_back = self._logged.admit(key)
        if held_back is None:
            return
        more = f"; {held_back} more held or closed since" if held_back else ""
        log.warning(
            "%s: its address had more than %d failed connections in %g s "
            "(--max-failures-per-source): new ones are held %g s unread, then closed%s",
            peer(client),
            self.budget,
            self.window,
            self.hold_s,
            more,
        )

    def close(self) -> None:
        """The server stops: close every connection held."""
        held, self._held = self._held, set()
        for transport in held:
            transport.abort()
        for source in self._sources.values():
            source.held = 0
