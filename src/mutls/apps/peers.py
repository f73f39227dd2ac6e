"""The one list of trusted peers (``--trusted-proxy``, alias ``--forwarded-allow-ips``): the
proxies and load balancers whose word about the client is believed, whether it comes as a
forwarded certificate header, as ``X-Forwarded-*``/``Forwarded`` headers or as a PROXY
protocol header.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from mutls.errors import UsageError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
#: ``*`` in the list: every peer is trusted (uvicorn's spelling; for a listener only a proxy
#: can reach, such as a container network).
EVERYONE = "*"


def split_peers(values: Iterable[str]) -> tuple[str, ...]:
    """``--trusted-proxy``/``--forwarded-allow-ips`` values, each possibly comma-separated (as
    uvicorn takes them), as one tuple."""
    return tuple(part.strip() for value in values for part in value.split(",") if part.strip())


class TrustedPeers:
    """A set of IP networks; :meth:`trusts` answers for a peer's address."""

    #: answers kept per address text (the same peers come back); cleared when this many.
    CACHE_SIZE = 4096

    def __init__(self, networks: tuple[Network, ...]) -> None:
        self.networks = networks
        self._known: dict[str, bool] = {}

    @classmethod
    def parse(cls, addresses: Iterable[str]) -> TrustedPeers:
        """IPs, CIDRs or ``*``; raises :class:`UsageError` naming a bad value."""
        networks: list[Network] = []
        for text in addresses:
            text = text.strip()
            if text == EVERYONE:
                networks += [ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")]
                continue
            try:
                networks.append(ipaddress.ip_network(text, strict=False))
            except ValueError:
                raise UsageError(
                    f"--trusted-proxy {text}: not an IP address or network "
                    "(e.g. 127.0.0.1, 10.0.0.0/8, ::1, or * for every peer)"
                ) from None
        return cls(tuple(networks))

    def trusts_host(self, host: str) -> bool:
        """Whether the address ``host`` (text; an IPv6 zone and IPv4-mapped form allowed) is a
        trusted peer; anything that is not an IP address is not."""
        known = self._known.get(host)
        if known is None:
            if len(self._known) >= self.CACHE_SIZE:
                self._known.clear()
            known = self._known[host] = self._trusts(host)
        return known

    def _trusts(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)

    def trusts(self, peer: tuple[str, int] | None) -> bool:
        """Whether the peer ``(host, port)`` is trusted (``None``, a Unix socket's: no)."""
        return peer is not None and self.trusts_host(peer[0])

    def __str__(self) -> str:
        return ", ".join(map(str, self.networks))
