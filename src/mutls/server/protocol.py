"""One ``asyncio.Protocol`` per connection: it shovels bytes between the socket, the TLS engine
and the HTTP connection, and runs one request at a time. No protocol rule lives here.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from mutls.apps.base import HTTPApp
from mutls.apps.facts import ConnectionFacts, connection_facts
from mutls.apps.forwarded_certificates import ForwardedCertificates
from mutls.apps.peers import TrustedPeers
from mutls.apps.proxy_headers import ProxyHeaders
from mutls.authz.access import admit
from mutls.http.connection import HTTPConnection
from mutls.http.events import (
    ConnectionClosed,
    Data,
    EndOfMessage,
    ProtocolViolation,
    Request,
)
from mutls.http.forwarded_certificates import ForwardedCertificateError
from mutls.http.response import simple_response
from mutls.server.channel import Channel
from mutls.server.config import ServerConfig
from mutls.server.deadlines import (
    BODY,
    HANDSHAKE,
    HEAD,
    NEXT_REQUEST,
    PROXY_HEADER,
    ConnectionDeadlines,
    Phase,
)
from mutls.server.http2 import speaks_http2, take_over
from mutls.server.intake import MAX_PENDING_EVENTS
from mutls.server.lifecycle import (
    CLOSED,
    IDLE,
    NEW,
    OPENING,
    READING,
    RUNNING,
    UPGRADED,
    IllegalTransition,
    Lifecycle,
)
from mutls.server.log import (
    HandshakeFailures,
    HeaderNotes,
    log,
    log_refusal,
    peer,
    printable,
    record_answer,
)
from mutls.server.metrics import MetricsRow
from mutls.server.proxy_protocol import ProxyHeaderIntake
from mutls.server.sources import SourceBudget
from mutls.server.watchdog import AppWatchdog
from mutls.server.websocket import WebSocketIntake, start_websocket
from mutls.tls.connection import PlainHTTPError, TLSConnection, TLSError
from mutls.tls.context import ServerContext
from mutls.ws.handshake import wants_websocket

PLAIN_HTTP_ON_TLS_PORT = "this is an HTTPS port: use https:// to talk to it"


class ServedConnection(Protocol):
    """What the server does with any open connection: stop it gracefully or at once."""

    def close_when_idle(self) -> None:
        """Graceful stop."""

    def abort(self) -> None:
        """Drop the connection at once."""


@dataclass
class ServerState:
    """What every connection of one server shares."""

    config: ServerConfig
    app: HTTPApp
    tls_context: ServerContext | None = None
    #: certificates forwarded by trusted proxies (``--trusted-proxy``), judged per request.
    forwarding: ForwardedCertificates | None = None
    #: open connections (HTTP/1.1 or, once ALPN chose h2, HTTP/2 ones).
    connections: set[ServedConnection] = field(default_factory=set)
    stopping: bool = False
    #: access lines are wanted (decided once at start: no per-request check of the logger).
    access_log: bool = True
    #: this process's metrics cells (``--metrics-address``), or None.
    metrics: MetricsRow | None = None
    #: failed handshakes, logged rate-limited per peer.
    handshake_failures: HandshakeFailures = field(default_factory=HandshakeFailures)
    #: the apps running, timed for --app-timeout.
    watchdog: AppWatchdog = field(init=False)
    #: the client-certificate headers set aside from every request (never shown to the app).
    certificate_names: frozenset[bytes] = field(init=False)
    #: --trusted-proxy / --forwarded-allow-ips, and what --proxy-headers makes of them.
    peers: TrustedPeers | None = field(init=False)
    proxy_headers: ProxyHeaders | None = field(init=False)
    #: --max-failures-per-source: the addresses whose connections keep failing (or None).
    sources: SourceBudget | None = field(init=False)

    def __post_init__(self) -> None:
        self.watchdog = AppWatchdog(self.config.timeouts.app)
        self.certificate_names = self.config.certificate_header_names
        self.peers = self.config.trusted_peers()
        relayed = self.config.proxy_headers and self.peers
        self.proxy_headers = ProxyHeaders(self.peers) if relayed and self.peers else None
        budget = self.config.max_failures_per_source
        self.sources = SourceBudget(budget, self.peers) if budget else None

    def failed(self, client: tuple[str, int] | None) -> None:
        """A connection of ``client`` ended by its own fault (mutls.server.sources says which
        count): one more against its address's failure budget."""
        if self.sources is not None:
            self.sources.failed(client)


class ConnectionProtocol(ConnectionDeadlines, WebSocketIntake, ProxyHeaderIntake, asyncio.Protocol):
    """Bytes in from the socket, through TLS and HTTP, to the app and back."""

    #: connection_lost was called: the socket is gone (a class default: one field fewer on
    #: every live connection).
    _gone = False

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.config = state.config
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.tls: TLSConnection | None = None
        self.http = HTTPConnection(self.config.limits, state.certificate_names)
        self.facts: ConnectionFacts | None = None
        self.client: tuple[str, int] | None = None
        self.server: tuple[str, int] | None = None
        self._request: Request | None = None
        #: when the request being answered was read (loop time), for its duration.
        self._started = 0.0
        self._counted = False  # in the open connections of --metrics-address
        self._body = bytearray()
        #: what was logged once for this connection (see _note_headers).
        #: what was logged once of the headers set aside (see HeaderNotes).
        self._header_notes = HeaderNotes()
        self._noted_relay_conflict = False
        #: the app's task (or a WebSocket's): present only while RUNNING or UPGRADED.
        self.task: asyncio.Task[None] | None = None
        #: where the connection is in its life (see mutls.server.lifecycle); moved by _enter.
        self.lifecycle = OPENING
        #: a graceful stop was asked (in any state): the answer in flight is the last.
        self._closing = False
        #: the lifecycle is final (CLOSED, or HANDED_OVER to HTTP/2): nothing more is read or
        #: written here. Set only by _enter; a field, not a property, as the hot path and the
        #: intake mixins read it per event.
        self.lost = False
        #: flow control, in any state: the socket's buffer is full (pause_writing).
        self.write_paused = False
        #: bytes the client had not read when the send clock started (--timeout-send).
        self._send_buffered = 0
        self._drain: asyncio.Future[None] | None = None
        #: made when someone waits for the socket to go (wait_lost), not on every connection.
        self._disconnected: asyncio.Future[None] | None = None

    def _enter(self, new: Lifecycle) -> None:
        """Move the lifecycle to ``new``: IllegalTransition if mutls.server.lifecycle's table
        has no such move."""
        old = self.lifecycle
        if new not in old.successors:
            raise IllegalTransition(old, new)
        self.lifecycle = new
        self.lost = not new.successors

    # -- asyncio callbacks ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Accept (or, over the connection limit, drop) a new connection."""
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self.transport = transport = cast(asyncio.Transport, transport)
        self.client = _address(transport.get_extra_info("peername"))
        self.server = _address(transport.get_extra_info("sockname"))
        # One accepted as a graceful stop began is served: its first answer closes it.
        if len(self.state.connections) >= self.config.max_connections:
            log.warning("connection limit reached: refusing %s", peer(self.client))
            transport.abort()
            self._enter(CLOSED)
            return
        if self._held_over_budget():
            return
        self.state.connections.add(self)
        if self.config.proxy_protocol and not self._expect_proxy_header(self.state.peers):
            return  # not a load balancer: refused before any TLS state is made
        if self.state.metrics is not None:
            self.state.metrics.connection_opened()
            self._counted = True
        if self.state.tls_context is not None:
            self.tls = TLSConnection(self.state.tls_context)
            self._arm(self.config.timeouts.handshake, HANDSHAKE)
        else:
            self.facts = connection_facts(self.client, self.server)
            self._arm(self.config.timeouts.header, HEAD)
            if self._proxy_reader is None:
                self._enter(NEW)
        if self._proxy_reader is not None:
            self._arm(self.config.timeouts.handshake, PROXY_HEADER)

    def data_received(self, data: bytes) -> None:
        """Bytes from the socket: through TLS (if any) into the HTTP connection."""
        if self._proxy_reader is not None:
            data = self._take_proxy_header(data)
            if not data:
                return
        if self.tls is not None:
            data = self._decrypt(data)
            if not data:
                return
        lifecycle = self.lifecycle
        if lifecycle is IDLE or lifecycle is NEW:  # the first bytes of a request
            self._enter(READING)
            self._arm(self.config.timeouts.header, HEAD)
        self._take(data)

    def eof_received(self) -> bool:
        """The client closed its side; finish what is in flight."""
        if self._proxy_reader is not None:
            self._proxy_header_cut()
            return False
        if self.tls is not None:
            data = self._decrypt(b"")
            if data:
                self._take(data)
        self._take_eof()
        return True  # keep our side open until the response in flight is written

    def connection_lost(self, exc: Exception | None) -> None:
        """The socket is gone: wake whoever waits on it."""
        if self.lifecycle is not CLOSED:
            self._enter(CLOSED)
        self.state.connections.discard(self)
        if self._counted and self.state.metrics is not None:
            self._counted = False
            self.state.metrics.connection_closed()
        self._stop_deadlines()
        self._stop_intake()
        self._gone = True
        if self._disconnected is not None and not self._disconnected.done():
            self._disconnected.set_result(None)
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    def pause_writing(self) -> None:
        """The socket buffer is full: senders wait in :meth:`drain`, and the send clock starts
        (--timeout-send): only calls when the client stops reading, never per request."""
        self.write_paused = True
        self._start_send_clock()

    def resume_writing(self) -> None:
        """The socket buffer has room again: the client is reading, the send clock stops."""
        self.write_paused = False
        self._disarm_send()
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    # -- TLS -----------------------------------------------------------------------------------

    def _decrypt(self, data: bytes) -> bytes:
        tls = self.tls
        assert tls is not None
        try:
            plain = tls.receive_data(data)
        except PlainHTTPError:
            log.info("plain HTTP on the TLS port from %s: answered 400", peer(self.client))
            self.state.failed(self.client)
            self._write_raw(simple_response(None, 400, PLAIN_HTTP_ON_TLS_PORT))
            self._shutdown()
            return b""
        except TLSError as exc:
            self._write_raw(tls.data_to_send())
            if tls.handshake_complete:
                log.info("TLS failure with %s: %s", peer(self.client), printable(exc))
            else:
                self.state.handshake_failures.report(self.client, exc)
                self.state.failed(self.client)
                if self.state.metrics is not None:
                    self.state.metrics.handshake_failed(exc.alert, exc.received_alert)
            self._shutdown(tls_close=False)
            return b""
        if self.facts is None and tls.handshake_complete:
            self._on_handshake(tls)
            if speaks_http2(self.config.http, tls.info):
                take_over(self, plain)  # mutls.server.http2 serves the connection from now on
                return b""
            if not plain:
                self._flush_tls()
            # else a request came with the client's Finished: the session tickets OpenSSL just
            # queued go out with the answer (one write and one TLS flight fewer per handshake)
        elif not plain:
            self._flush_tls()  # an alert, a close_notify's answer, a refused renegotiation
        # else request bytes: what OpenSSL queued while reading them (a KeyUpdate's answer)
        # goes out ahead of the next records sent, as RFC 8446 4.6.3 asks, and a keep-alive
        # request costs one flush, not two
        if tls.peer_closed and not plain:
            self._take_eof()
        return plain

    def _on_handshake(self, tls: TLSConnection) -> None:
        info = tls.info
        assert info is not None
        admission = admit(
            info.client_certificate, self.config.client_cert, self.config.verify, self.config.access
        )
        self.facts = connection_facts(self.client, self.server, info, admission)
        if self.state.metrics is not None:
            self.state.metrics.handshake(info.client_certificate, info.resumed)
        self._enter(NEW)
        self._arm(self.config.timeouts.header, HEAD)

    def _flush_tls(self) -> None:
        out = self.tls.data_to_send() if self.tls is not None else b""
        if out:
            self._write_raw(out)

    # -- requests ------------------------------------------------------------------------------

    def _pump(self) -> None:
        """Take events until a request is complete (then run it) or more bytes are needed."""
        while self.task is None and not self.lost:
            event = self.http.next_event()
            if event is None:
                return
            if isinstance(event, Data):
                self._body += event.data
                self._arm(self.config.timeouts.header, BODY)
            elif isinstance(event, Request):
                self._started = self.loop.time()
                if event.certificate_headers or self.http.dropped_name is not None:
                    self._note_headers(event)
                if self.state.forwarding is not None and not self._forwarded(event):
                    return
                if self.state.proxy_headers is not None:
                    self._relayed(event)
                assert self.facts is not None
                if self.facts.refusal is not None:
                    # Refused before the app runs: no need to read (or invite) the body.
                    self._refuse(event, self.facts.refusal)
                    return
                self._request = event
                self._body.clear()
                self._disarm()
                if event.expect_continue:
                    self.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            elif isinstance(event, EndOfMessage):
                request, self._request = self._request, None
                if request is not None:
                    body = bytes(self._body)
                    self._body.clear()
                    self._dispatch(request, body)
            elif isinstance(event, ProtocolViolation):
                log.info(
                    "bad request from %s: %d %s", peer(self.client), event.status, event.reason
                )
                self.write(simple_response(self._request, event.status, event.reason))
                self.state.failed(self.client)
                self._shutdown()
                return
            elif isinstance(event, ConnectionClosed):
                self._shutdown()
                return
        if self.task is not None and self.http.pending_events > MAX_PENDING_EVENTS:
            self._update_reading()

    def _note_headers(self, request: Request) -> None:
        self._header_notes.note(self.client, self.http.dropped_name, request, self.state.forwarding)

    def _forwarded(self, request: Request) -> bool:
        """This request's facts from a trusted proxy's header (a proxy carries many clients
        over one connection); a malformed header is answered 400 and False returned."""
        assert self.state.forwarding is not None
        try:
            self.facts = self.state.forwarding.request_facts(request, self.client, self.server)
        except ForwardedCertificateError as exc:
            log.info("bad request from %s: 400 %s", peer(self.client), exc)
            answer = simple_response(request, 400, str(exc))
            self.write(answer)
            self._record_answer(request, 400, _body_size(answer))
            self._shutdown()
            return False
        return True

    def _relayed(self, request: Request) -> None:
        """This request's client and scheme, from a trusted proxy's headers (--proxy-headers);
        when its two spellings disagree, neither is believed, and that is logged once."""
        assert self.state.proxy_headers is not None and self.facts is not None
        self.facts, said = self.state.proxy_headers.request_facts(self.facts, request, self.client)
        if said.conflict is not None and not self._noted_relay_conflict:
            self._noted_relay_conflict = True
            log.warning(
                "proxy headers from %s not believed: %s (make the proxy set one and remove "
                "the other)",
                peer(self.client),
                said.conflict,
            )

    def _after_proxy_header(self) -> None:
        """The PROXY header is read: the relayed client, when over its failure budget, is held
        as it would be at accept; else the handshake (or request head) deadline starts."""
        if self._held_over_budget():
            return
        if self.tls is not None:
            self._arm(self.config.timeouts.handshake, HANDSHAKE)
        else:
            self._enter(NEW)
            self._arm(self.config.timeouts.header, HEAD)

    def _held_over_budget(self) -> bool:
        """When the client's address is over its failure budget (--max-failures-per-source):
        the connection is held, nothing more read and no TLS work done, then closed; True.
        At accept, or once a PROXY header has named the relayed client."""
        sources = self.state.sources
        if sources is None or not sources.over(self.client):
            return False
        assert self.transport is not None
        self._stop_deadlines()
        self._enter(CLOSED)
        sources.hold(self.transport, self.client)
        if self.state.metrics is not None:
            self.state.metrics.connection_held()
        return True

    def _refuse(self, request: Request, reason: str) -> None:
        """The policy's 403, logged; the connection then closes (a new one may carry a
        certificate)."""
        log_refusal(self.client, self.facts, request, reason)
        answer = simple_response(request, 403, reason)
        self.write(answer)
        self._record_answer(request, 403, _body_size(answer))
        self._shutdown()

    def _dispatch(self, request: Request, body: bytes) -> None:
        if self.http.upgrade_data is not None and wants_websocket(request):
            self._enter(UPGRADED)
            start_websocket(self, request)  # the connection is the WebSocket's from here
            return
        channel = Channel(self, self.http.respond(request, closing=self.closing))
        self._enter(RUNNING)
        self.task = self.loop.create_task(self._run(request, body, channel))

    async def _run(self, request: Request, body: bytes, channel: Channel) -> None:
        facts = self.facts
        assert facts is not None
        try:
            await self.state.watchdog.serve(
                self.state.app, request, body, facts, channel, self.client
            )
        finally:
            self.task = None
        writer = channel.writer
        self._record_answer(request, writer.status, channel.sent)
        if self.lost:
            return
        if not writer.finished or not writer.keep_alive or self.state.stopping:
            self._shutdown()
            return
        self._resume_intake()
        idle = self.http.pending_events == 0
        self._enter(IDLE if idle else READING)
        self._arm(
            self.config.timeouts.keep_alive if idle else self.config.timeouts.header,
            NEXT_REQUEST if idle else HEAD,
        )
        self._pump()

    def _record_answer(self, request: Request, status: int, sent: int) -> None:
        """Count and log an answered request (nothing at all when both are off)."""
        state = self.state
        if state.access_log or state.metrics is not None:
            took = self.loop.time() - self._started
            record_answer(state, self.facts, self.client, request, status, sent, took)

    # -- output and closing --------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Send response bytes (through TLS when on)."""
        if self.lost or not data:
            return
        if self.tls is not None:
            self.tls.send(data)
            self._flush_tls()
        else:
            self._write_raw(data)

    def _write_raw(self, data: bytes) -> None:
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    @property
    def closing(self) -> bool:
        """A graceful stop is under way: the response in flight is the connection's last."""
        return self._closing or self.state.stopping

    async def wait_lost(self) -> None:
        """Return once the socket is gone."""
        if self._gone:
            return
        if self._disconnected is None:
            self._disconnected = self.loop.create_future()
        await asyncio.shield(self._disconnected)

    async def drain(self) -> None:
        """Wait while the socket's buffer is full."""
        if self.write_paused and not self.lost:
            self._drain = self.loop.create_future()
            await self._drain

    def close_when_idle(self) -> None:
        """Graceful stop: close now if idle between requests, else after the response to
        the request in flight. One whose handshake, head or body is still arriving counts,
        and so does a new connection's first request, which its client is about to send:
        closing either fails a request no client retries; a client reusing a kept-alive
        connection expects it may close (RFC 9112, 9.3.1)."""
        self._closing = True
        if self.websocket is not None:
            self.websocket.going_away()
        if self.lifecycle is IDLE and not self.http_busy:
            self._shutdown()

    @property
    def http_busy(self) -> bool:
        """Requests wait (pipelined)."""
        return self.http.pending_events > 0

    def _shutdown(self, *, tls_close: bool = True) -> None:
        self._release_deadlines()  # a close waits for the client to read: the send clock runs
        if self.transport is None or self.lost:
            return
        if self.transport.is_closing():  # aborted, or a write failed: lost at the next turn
            self._enter(CLOSED)  # (meanwhile no request queued for its turn runs)
            return
        if self.tls is not None and tls_close and self.facts is not None:
            with contextlib.suppress(Exception):  # close_notify is a courtesy
                self.tls.close()
                self._flush_tls()
        self.transport.close()
        self._enter(CLOSED)

    def abort(self) -> None:
        """Drop the connection at once."""
        self._stop_deadlines()
        if self.transport is not None:
            self.transport.abort()

    # -- deadlines (on the one timer of server.deadlines) ---------------------------------------

    def _send_due(self) -> None:
        """--timeout-send is up: drop a client that read nothing since the clock started; one
        that read some, even too slowly for the transport to resume writing, gets another
        period (nginx's send_timeout too counts any progress)."""
        assert self.transport is not None
        if self.transport.get_write_buffer_size() < self._send_buffered:
            self._start_send_clock()
            return
        log.info(
            "%s read nothing for %g s (--timeout-send): connection dropped",
            peer(self.client),
            self.config.timeouts.send,
        )
        self.abort()

    def _start_send_clock(self) -> None:
        """Give the client --timeout-send seconds to read; remember how much waits for it. Set
        only when the transport pauses writing, so a response that fits the buffer pays
        nothing for it."""
        assert self.transport is not None
        self._send_buffered = self.transport.get_write_buffer_size()
        self._arm_send(self.config.timeouts.send)

    def _phase_due(self, phase: Phase) -> None:
        """A phase ran out of time: close (408 for a request head begun)."""
        lifecycle = self.lifecycle
        if lifecycle is RUNNING or lifecycle is UPGRADED:
            return
        if phase is not NEXT_REQUEST and phase is not HANDSHAKE:
            log.info("%s from %s timed out", phase.value, peer(self.client))
        if phase is not NEXT_REQUEST and (phase is not HEAD or lifecycle is READING):
            self.state.failed(self.client)  # not a connection left idle, before or between
        if phase is HEAD and lifecycle is READING and self.facts is not None:
            self.write(simple_response(None, 408, "request timeout"))
        self._shutdown()


def _body_size(response: bytes) -> int:
    """The body bytes of a whole response (what the access log counts, as nginx's
    ``$body_bytes_sent``)."""
    return len(response) - response.find(b"\r\n\r\n") - 4


def _address(value: Any) -> tuple[str, int] | None:
    if isinstance(value, tuple) and len(value) >= 2:
        return (str(value[0]), int(value[1]))
    return None
