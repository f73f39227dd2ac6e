"""``--proxy-protocol``: the PROXY header a TCP load balancer (HAProxy ``send-proxy`` or
``send-proxy-v2``, AWS NLB, ...) sends first on each connection, read before TLS.

The listener belongs to the balancers: a peer that is not a trusted one is refused at once, as
the specification asks ("the receiver MUST be configured to only receive the protocol ... and
MUST not try to guess whether the protocol header is present", and SHOULD let only trusted
proxies use it); a trusted peer must send a valid header first (within --timeout-handshake),
else the connection is dropped with a log line. The header's source then is the connection's
client (and its destination the server address) for everything: the app, the logs, the proxy
headers' walk. mutls still terminates TLS; the client certificate is the one of its own
handshake.

A base class of the connection, as :mod:`mutls.server.intake`: the parser is
:mod:`mutls.http.proxy_protocol`; a connection without ``--proxy-protocol`` pays one attribute
test per read.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from mutls.apps.facts import Address, ConnectionFacts, connection_facts
from mutls.apps.peers import TrustedPeers
from mutls.http.proxy_protocol import ProxyHeaderError, ProxyHeaderReader
from mutls.server.lifecycle import CLOSED, Lifecycle
from mutls.server.log import log, peer, printable

if TYPE_CHECKING:
    from mutls.server.config import ServerConfig


def proxy_notes(config: ServerConfig) -> list[str]:
    """The start-up lines that say whose word about the client is believed."""
    peers = config.trusted_peers()
    notes = []
    if config.proxy_headers and peers is not None:
        notes.append(
            "the client address and scheme of X-Forwarded-For/-Proto and Forwarded are "
            f"believed from {peers} only (--proxy-headers)"
        )
    if config.proxy_protocol and peers is not None:
        notes.append(
            f"every connection must start with a PROXY header (v1 or v2) from {peers}; "
            "other peers are refused (--proxy-protocol)"
        )
    return notes


class ProxyHeaderIntake:
    """The PROXY header's side of a connection's input; the connection defines ``transport``,
    ``client``, ``server``, ``facts``, ``tls``, ``lost``, :meth:`_enter` and
    :meth:`_after_proxy_header`."""

    transport: asyncio.Transport | None
    client: Address | None
    server: Address | None
    facts: ConnectionFacts | None
    lost: bool
    #: reading the header (``None``: read, or not asked for).
    _proxy_reader: ProxyHeaderReader | None = None

    def _enter(self, new: Lifecycle) -> None:
        """Move the connection's lifecycle (see :mod:`mutls.server.lifecycle`)."""
        raise NotImplementedError

    def _after_proxy_header(self) -> None:
        """The header is read: the connection's next phase starts (its deadline)."""
        raise NotImplementedError

    def _expect_proxy_header(self, peers: TrustedPeers | None) -> bool:
        """A new connection: start reading its PROXY header, or refuse an untrusted peer (False:
        the connection is dropped)."""
        if self.client is None:  # gone before it was accepted (a health check's reset)
            self._drop()
            return False
        if peers is None or not peers.trusts(self.client):
            log.info(
                "%s is not a --trusted-proxy: connection refused (--proxy-protocol: only the "
                "load balancers may connect)",
                peer(self.client),
            )
            self._drop()
            return False
        self._proxy_reader = ProxyHeaderReader()
        return True

    def _take_proxy_header(self, data: bytes) -> bytes:
        """Feed the header reader; the bytes after the header once it is whole (else ``b""``)."""
        reader = self._proxy_reader
        assert reader is not None
        if self.lost:  # refused already: nothing more is read, nor reaches TLS
            return b""
        try:
            header = reader.receive_data(data)
        except ProxyHeaderError as exc:
            self._bad_proxy_header(str(exc))
            return b""
        if header is None:
            return b""
        self._proxy_reader = None
        if header.source is not None:
            self.client, self.server = header.source, header.destination
        if self.facts is not None:  # plain HTTP: the facts name the client
            self.facts = connection_facts(self.client, self.server)
        self._after_proxy_header()
        return b"" if self.lost else header.rest  # (held: the relayed client is over budget)

    def _proxy_header_cut(self) -> None:
        """The peer closed before the header was whole: a bad header if it began one; a TCP
        health check (connect, close) if it sent nothing, which is not worth a line."""
        assert self._proxy_reader is not None
        if self.lost:
            return
        if self._proxy_reader.pending:
            self._bad_proxy_header("connection closed before the end of the PROXY header")
        else:
            self._drop()

    def _bad_proxy_header(self, reason: str) -> None:
        """Drop a connection whose PROXY header is malformed or missing."""
        log.warning(
            "bad PROXY header from %s: %s: connection dropped", peer(self.client), printable(reason)
        )
        self._drop()  # the reader stays: whatever else arrives is not the client's TLS

    def _drop(self) -> None:
        if self.transport is not None:
            self.transport.abort()
        self._enter(CLOSED)
