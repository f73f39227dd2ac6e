"""``--proxy-headers``: behind an HTTP proxy (nginx, a cloud load balancer), the app sees the
client's address and scheme the proxy reports, not the proxy's own.

Believed only when the TCP peer is a trusted proxy (:class:`~mutls.apps.peers.TrustedPeers`);
from anyone else the headers reach the app as they came and change nothing. What the headers
say is read by :mod:`mutls.http.proxy_headers`; here it becomes the request's facts: ASGI's
``client`` and ``scheme``, WSGI's ``REMOTE_ADDR``, ``REMOTE_PORT`` and ``wsgi.url_scheme``.
The TLS facts (this hop's, or a forwarded certificate's) are unchanged.
"""

from __future__ import annotations

from mutls.apps.facts import Address, ConnectionFacts
from mutls.apps.peers import TrustedPeers
from mutls.http.events import Request
from mutls.http.proxy_headers import Relayed, relayed


class ProxyHeaders:
    """Applies the proxy headers of trusted peers to a request's facts."""

    def __init__(self, peers: TrustedPeers) -> None:
        self.peers = peers

    def read(self, request: Request, peer: Address | None) -> Relayed:
        """What ``request``'s headers report, if ``peer`` is trusted (else nothing)."""
        if not self.peers.trusts(peer):
            return Relayed()
        return relayed(request.headers, self.peers.trusts_host)

    def request_facts(
        self, facts: ConnectionFacts, request: Request, peer: Address | None
    ) -> tuple[ConnectionFacts, Relayed]:
        """``facts`` with the client and scheme of ``request`` (from the headers when ``peer``
        is trusted, else ``peer`` and this hop's scheme), and what the headers said.

        Idempotent on a connection's successive requests: each starts again from ``peer``.
        """
        said = self.read(request, peer)
        client = said.client or peer
        if facts.client == client and facts.relayed_scheme == said.scheme:
            return facts, said
        # A shallow copy, through the instance's dict (the class is frozen), keeps what the
        # connection's facts rendered once (the WSGI variables, the ASGI extensions): neither
        # depends on the client or the scheme (the WSGI adapter sets wsgi.url_scheme itself).
        # dataclasses.replace would render them again.
        relayed_facts = object.__new__(type(facts))
        relayed_facts.__dict__.update(facts.__dict__, client=client, relayed_scheme=said.scheme)
        return relayed_facts, said
