"""The asyncio side of a WebSocket: after an HTTP/1.1 request asks to upgrade, the connection's
plaintext goes to a :class:`WebSocketLink` instead of the HTTP parser.

The request has come the HTTP way, so the policy's 403 (an invalid or missing certificate under
``strict``, ``--allow``) was sent before this module is reached, exactly as for any request.
Here: the handshake is checked (400, 426), an app that cannot take a WebSocket (WSGI, the test
page) gets a 400 saying so, and an ASGI app runs with the link as its
:class:`~mutls.apps.websocket.WebSocketChannel`. The protocol itself is
:class:`mutls.ws.WebSocketSession` (sans-I/O); this module adds the clocks (pings, the close
timeout), the receive queue (a full queue stops reading the socket) and the writes (a client
that reads nothing is dropped by ``--timeout-send``, as for any response).
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from typing import TYPE_CHECKING

from mutls.apps.websocket import ClientDisconnected
from mutls.http.events import Headers, Request
from mutls.http.response import simple_response
from mutls.server.channel import Channel
from mutls.server.intake import FEED_PER_TURN, PlaintextIntake
from mutls.server.log import log, log_access, peer, printable
from mutls.ws.handshake import Handshake, HandshakeError, accept_response, check_handshake
from mutls.ws.session import (
    ABNORMAL,
    GOING_AWAY,
    INTERNAL_ERROR,
    Closed,
    Message,
    Pong,
    WebSocketSession,
)

if TYPE_CHECKING:
    from mutls.server.protocol import ConnectionProtocol

#: what an app that cannot take a WebSocket answers to an upgrade.
NEEDS_ASGI = (
    "WebSocket needs an ASGI app: this server runs a WSGI app (or the test page), "
    "which cannot take a WebSocket"
)
#: bytes of the app's messages held back to leave together at the end of a turn.
COALESCE_BYTES = 64 * 1024
#: bytes a client may send after its handshake before the app accepts it.
MAX_EARLY_BYTES = 64 * 1024


class WebSocketIntake(PlaintextIntake):
    """The connection's plaintext, to the HTTP parser until a WebSocket takes over."""

    websocket: WebSocketLink | None = None

    def _take(self, data: bytes) -> None:
        if self.websocket is not None:
            self.websocket.receive_data(data)
        else:
            super()._take(data)

    def _take_eof(self) -> None:
        if self.websocket is not None:
            self.websocket.receive_data(b"")
        else:
            super()._take_eof()

    def _stop_intake(self) -> None:
        super()._stop_intake()
        if self.websocket is not None:
            self.websocket.connection_lost()

    def _hand_over(self) -> bytes:
        """Stop feeding the HTTP parser; the plaintext that followed the upgrading request
        (what the parser kept, then what waited for its turn), and the socket read again."""
        trailing = self.http.upgrade_data or b""
        if self._backlog:
            trailing += bytes(self._backlog)
        self._stop_intake()
        if self._reading_paused and self.transport is not None:  # paused for the backlog
            self._reading_paused = False
            self.transport.resume_reading()
        return trailing


def start_websocket(conn: ConnectionProtocol, request: Request) -> None:
    """Take over ``conn`` for the WebSocket ``request`` asks for (or refuse it by HTTP)."""
    trailing = conn._hand_over()
    if len(trailing) > MAX_EARLY_BYTES + FEED_PER_TURN:
        log.info("%s sent too much before its WebSocket was accepted", peer(conn.client))
        conn.abort()
        return
    try:
        handshake = check_handshake(request)
    except HandshakeError as exc:
        _refuse(conn, request, exc.status, exc.reason, exc.headers)
        return
    handler = getattr(conn.state.app, "handle_websocket", None)
    if handler is None:
        _refuse(conn, request, 400, NEEDS_ASGI)
        return
    link = WebSocketLink(conn, request, handshake, trailing)
    conn.websocket = link
    conn.task = conn.loop.create_task(link.run(handler))


def _refuse(
    conn: ConnectionProtocol,
    request: Request,
    status: int,
    text: str,
    headers: Headers | None = None,
) -> None:
    log.info("WebSocket from %s refused: %d %s", peer(conn.client), status, text)
    conn.write(simple_response(request, status, text, extra_headers=headers))
    log_access(conn.client, conn.facts, request, status, 0)
    conn._shutdown()


class WebSocketLink:
    """One WebSocket on its connection: the app's channel and the socket's intake."""

    def __init__(
        self, conn: ConnectionProtocol, request: Request, handshake: Handshake, trailing: bytes
    ) -> None:
        self.conn = conn
        self.request = request
        self.handshake = handshake
        self.limits = conn.config.websocket
        self.session: WebSocketSession | None = None
        self._early = bytearray(trailing)
        self._early_eof = False
        self.queue: deque[str | bytes] = deque()
        #: how the WebSocket ended (the client's close, ours answered, a lost connection).
        self.result: Closed | None = None
        self._wake: asyncio.Future[None] | None = None
        self._reading_paused = False
        #: the queue filled before the session's events were all taken.
        self._full = False
        self._ping: asyncio.TimerHandle | None = None
        self._ping_payload: bytes | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._http: Channel | None = None
        self._flush_handle: asyncio.Handle | None = None
        self.status = 0
        self.sent = 0

    # -- the socket's side -----------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Plaintext from the client (``b""``: it closed its side)."""
        session = self.session
        if session is None:  # before the app accepts: kept, bounded
            if not data:
                self._early_eof = True
                self._notify()
            elif len(self._early) + len(data) > MAX_EARLY_BYTES:
                log.info(
                    "%s sent too much before its WebSocket was accepted", peer(self.conn.client)
                )
                self.conn.abort()
            else:
                self._early += data
            return
        session.receive_data(data)
        self._pump()

    def connection_lost(self) -> None:
        """The socket is gone."""
        self._stop_clocks()
        if self.result is None:
            self.result = Closed(ABNORMAL, "connection lost")
        self._notify()

    def going_away(self) -> None:
        """The server stops gracefully: close an open WebSocket with 1001."""
        if self.session is not None and self.session.open:
            self._close(GOING_AWAY, "server shutting down")

    def _pump(self) -> None:
        """Take the session's events while the queue has room; send what it has to send."""
        session = self.session
        assert session is not None
        self._full = False
        while self.result is None:
            if len(self.queue) >= self.limits.max_queue and not session.closing:
                self._full = True  # (once closing, messages are dropped, not queued)
                break
            event = session.next_event()
            if event is None:
                break
            if isinstance(event, Message):
                self.queue.append(event.data)
            elif isinstance(event, Pong):
                if event.payload == self._ping_payload:
                    self._ping_payload = None
                    self._cancel_deadline()
            else:
                self.result = event
        if self.result is not None:
            self._flush()
            self._stop_clocks()
            if not self.conn.lost:
                self.conn._shutdown()  # the server closes TCP first (RFC 6455 section 7.1.1)
        elif session.pending_bytes:  # pongs: with the app's answers, at the end of the turn
            self._flush_soon()
        if self.queue or self.result is not None:
            self._notify()
        self._read(len(self.queue) < self.limits.max_queue or session.closing)

    def _read(self, on: bool) -> None:
        transport = self.conn.transport
        if on is not self._reading_paused or transport is None or self.conn.lost:
            return
        self._reading_paused = not on
        if on:
            transport.resume_reading()
            return
        transport.pause_reading()
        if self._ping_payload is not None:  # its pong waits unread behind the app's messages:
            self._ping_payload = None  # the app is the slow one, not the client
            self._cancel_deadline()

    def _flush_soon(self) -> None:
        if self._flush_handle is None:
            self._flush_handle = self.conn.loop.call_soon(self._flush)

    def _flush(self) -> None:
        assert self.session is not None
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        out = self.session.data_to_send()
        if out:
            self.conn.write(out)

    def _notify(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    async def _wait(self) -> None:
        self._wake = self.conn.loop.create_future()
        try:
            await self._wake
        finally:
            self._wake = None

    # -- the app's side (mutls.apps.websocket.WebSocketChannel) ----------------------------

    async def accept(self, subprotocol: str | None, headers: Headers) -> None:
        """Send the ``101`` and start the WebSocket."""
        head = accept_response(self.handshake, subprotocol, headers)
        self.status = 101
        self.conn.write(head)
        self.session = WebSocketSession(self.limits)
        early, self._early = bytes(self._early), bytearray()
        if early:
            self.session.receive_data(early)
        if self._early_eof:
            self.session.receive_data(b"")
        if self.conn.lost and self.result is None:
            self.result = Closed(ABNORMAL, "connection lost")
        self._schedule_ping()
        self._pump()

    async def receive(self) -> str | bytes | tuple[int, str]:
        """The next message, or ``(code, reason)`` once closed."""
        while not self.queue and self.result is None:
            await self._wait()
        if self.queue:
            data = self.queue.popleft()
            if (self._full or self._reading_paused) and self.result is None:
                self._pump()  # room in the queue: parse on, read on
            return data
        assert self.result is not None
        return self.result.code, self.result.reason

    async def send(self, data: str | bytes) -> None:
        """One message to the client; waits while it does not read.

        The frames an app sends in one turn of the event loop leave together, at its end (one
        TLS record and one write for a burst of echoes, not one per message); past
        :data:`COALESCE_BYTES` they leave at once, and the app waits while the client does not
        read them."""
        session = self.session
        if session is None or not session.open or self.result is not None or self.conn.lost:
            raise ClientDisconnected("the WebSocket is closed")
        session.send(data)
        self.sent += len(data)
        if session.pending_bytes < COALESCE_BYTES:
            self._flush_soon()
            return
        self._flush()
        if self.conn.write_paused:
            await self.conn.drain()

    async def close(self, code: int, reason: str) -> None:
        """The app closes: our close frame, then the client's within --ws-close-timeout."""
        self._close(code, reason)

    def _close(self, code: int, reason: str) -> None:
        session = self.session
        if session is None or not session.open:
            return
        session.close(code, reason)
        self._flush()
        self._stop_clocks()
        self._deadline = self.conn.loop.call_later(self.limits.close_timeout, self._close_due)
        if self._reading_paused:  # the client's close may wait behind a full queue: read on
            self._pump()  # (messages after our close are dropped, so the queue grows no more)

    def response(self) -> Channel:
        """The HTTP response in place of the ``101`` (the connection closes after it)."""
        if self._http is None:
            self._http = Channel(self.conn, self.conn.http.respond(self.request, closing=True))
        return self._http

    async def wait_closed(self) -> tuple[int, str]:
        """``(code, reason)`` once the client has gone (before an accept)."""
        while self.result is None and not self._early_eof and not self.conn.lost:
            await self._wait()
        result = self.result or Closed(ABNORMAL, "connection lost")
        return result.code, result.reason

    # -- clocks ----------------------------------------------------------------------------

    def _schedule_ping(self) -> None:
        interval = self.limits.ping_interval
        if interval is not None and self.result is None:
            self._ping = self.conn.loop.call_later(interval, self._send_ping)

    def _send_ping(self) -> None:
        self._ping = None
        session = self.session
        if session is None or not session.open or self.conn.lost:
            return
        if self._ping_payload is None and not self._reading_paused:
            self._ping_payload = os.urandom(4)
            session.ping(self._ping_payload)
            self._flush()
            self._deadline = self.conn.loop.call_later(
                self.limits.ping_timeout, self._ping_timed_out
            )
        self._schedule_ping()

    def _ping_timed_out(self) -> None:
        self._deadline = None
        log.info(
            "%s answered no ping for %g s (--ws-ping-timeout): WebSocket closed 1011",
            peer(self.conn.client),
            self.limits.ping_timeout,
        )
        self._fail(INTERNAL_ERROR, "keepalive ping timeout")

    def _close_due(self) -> None:
        self._deadline = None
        log.info(
            "%s did not answer the WebSocket close in %g s (--ws-close-timeout): dropped",
            peer(self.conn.client),
            self.limits.close_timeout,
        )
        self._fail(ABNORMAL, "no close from the client")

    def _fail(self, code: int, reason: str) -> None:
        """Give up on the client: our close if not sent yet, then the connection closes."""
        session = self.session
        if session is not None and session.open:
            session.close(code, reason)
            self._flush()
        self._stop_clocks()
        if self.result is None:
            self.result = Closed(code, reason)
        self.conn._shutdown()
        self._notify()

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _stop_clocks(self) -> None:
        self._cancel_deadline()
        self._ping_payload = None
        if self._ping is not None:
            self._ping.cancel()
            self._ping = None

    # -- the run ---------------------------------------------------------------------------

    async def run(self, handler: object) -> None:
        """Run the app's ``handle_websocket``, then end the WebSocket it leaves."""
        conn = self.conn
        try:
            await self._run_app(handler)
            if self.session is not None and self.result is None and not conn.lost:
                while self.result is None and not conn.lost:  # the close handshake, bounded
                    if self._deadline is None and self.session.open:
                        self._close(1000, "")
                    await self._wait()
        finally:
            conn.task = None
        http = self._http
        status = self.status or (http.writer.status if http is not None else 0)
        sent = self.sent if self.status == 101 else (http.sent if http is not None else 0)
        log_access(conn.client, conn.facts, self.request, status, sent)
        if not conn.lost:
            conn._shutdown()

    async def _run_app(self, handler: object) -> None:
        try:
            await handler(  # type: ignore[operator]
                self.request, self.handshake.subprotocols, self.conn.facts, self
            )
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("WebSocket %s failed", printable(self.request.path))
            if self.status == 0 and self._http is None:
                self.response().fail(self.request, 500, "internal server error")
