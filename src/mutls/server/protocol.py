"""One ``asyncio.Protocol`` per connection: it shovels bytes between the socket, the TLS engine
and the HTTP connection, and runs one request at a time. No protocol rule lives here.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any, cast

from mutls.apps.base import HTTPApp
from mutls.apps.facts import ConnectionFacts, connection_facts
from mutls.apps.forwarded import ForwardedCertificates
from mutls.http.connection import HTTPConnection
from mutls.http.events import (
    ConnectionClosed,
    Data,
    EndOfMessage,
    Headers,
    ProtocolError,
    Request,
)
from mutls.http.forwarded import ForwardedCertificateError
from mutls.http.response import ResponseWriter, simple_response
from mutls.server.config import ServerConfig
from mutls.server.log import access_log, log, printable
from mutls.tls.connection import PlainHTTPError, TLSConnection, TLSError
from mutls.tls.context import ServerContext
from mutls.tls.policy import refusal_reason

#: pipelined events waiting before the socket stops being read.
MAX_PENDING_EVENTS = 64
#: a timer may fire this early (libuv counts milliseconds) and still count as due.
TIMER_SLACK_S = 0.002
PLAIN_HTTP_ON_TLS_PORT = "this is an HTTPS port: use https:// to talk to it"


@dataclass
class ServerState:
    """What every connection of one server shares."""

    config: ServerConfig
    app: HTTPApp
    tls_context: ServerContext | None = None
    #: certificates forwarded by trusted proxies (``--trusted-proxy``), judged per request.
    forwarding: ForwardedCertificates | None = None
    connections: set[ConnectionProtocol] = field(default_factory=set)
    #: responses whose app is running, for the --app-timeout sweep (see :func:`watch_apps`).
    running: set[Channel] = field(default_factory=set)
    stopping: bool = False


class ConnectionProtocol(asyncio.Protocol):
    """Bytes in from the socket, through TLS and HTTP, to the app and back."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.config = state.config
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.tls: TLSConnection | None = None
        self.http = HTTPConnection(self.config.limits)
        self.facts: ConnectionFacts | None = None
        self.client: tuple[str, int] | None = None
        self.server: tuple[str, int] | None = None
        self._request: Request | None = None
        self._body: list[bytes] = []
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._deadline: float | None = None
        self._deadline_what = ""
        self._idle = True
        self._closing = False
        self._lost = False
        self._write_paused = False
        #: when a write stalled by a client that does not read is given up (--timeout-send).
        self._send_deadline: float | None = None
        self._send_buffered = 0
        self._drain: asyncio.Future[None] | None = None
        self._disconnected: asyncio.Future[None] = self.loop.create_future()

    # -- asyncio callbacks ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Accept (or, over the connection limit, drop) a new connection."""
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self.transport = transport = cast(asyncio.Transport, transport)
        self.client = _address(transport.get_extra_info("peername"))
        self.server = _address(transport.get_extra_info("sockname"))
        if len(self.state.connections) >= self.config.max_connections or self.state.stopping:
            log.warning("connection limit reached: refusing %s", _peer(self.client))
            transport.abort()
            self._lost = True
            return
        self.state.connections.add(self)
        if self.state.tls_context is not None:
            self.tls = TLSConnection(self.state.tls_context)
            self._arm(self.config.timeouts.handshake, "TLS handshake")
        else:
            self.facts = connection_facts(self.client, self.server)
            self._arm(self.config.timeouts.header, "request head")

    def data_received(self, data: bytes) -> None:
        """Bytes from the socket: through TLS (if any) into the HTTP connection."""
        if self.tls is not None:
            data = self._decrypt(data)
            if not data:
                return
        if self._idle and self._task is None:
            self._idle = False
            self._arm(self.config.timeouts.header, "request head")
        self.http.receive_data(data)
        self._pump()

    def eof_received(self) -> bool:
        """The client closed its side; finish what is in flight."""
        if self.tls is not None:
            data = self._decrypt(b"")
            if data:
                self.http.receive_data(data)
        self.http.receive_data(b"")
        self._pump()
        return True  # keep our side open until the response in flight is written

    def connection_lost(self, exc: Exception | None) -> None:
        """The socket is gone: wake whoever waits on it."""
        self._lost = True
        self.state.connections.discard(self)
        self._disarm()
        self._send_deadline = None
        self._stop_timer()
        if not self._disconnected.done():
            self._disconnected.set_result(None)
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    def pause_writing(self) -> None:
        """The socket buffer is full: senders wait in :meth:`drain`, and the send clock starts
        (--timeout-send): only calls when the client stops reading, never per request."""
        self._write_paused = True
        deadline = self._start_send_clock()
        if self._timer is None or self._timer_at > deadline:
            self._wake_at(deadline)

    def resume_writing(self) -> None:
        """The socket buffer has room again: the client is reading, the send clock stops."""
        self._write_paused = False
        self._send_deadline = None  # the timer, when it fires, finds nothing due
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    # -- TLS -----------------------------------------------------------------------------------

    def _decrypt(self, data: bytes) -> bytes:
        tls = self.tls
        assert tls is not None
        try:
            plain = tls.receive_data(data)
        except PlainHTTPError:
            log.info("plain HTTP on the TLS port from %s: answered 400", _peer(self.client))
            self._write_raw(simple_response(None, 400, PLAIN_HTTP_ON_TLS_PORT))
            self._shutdown()
            return b""
        except TLSError as exc:
            self._write_raw(tls.data_to_send())
            log.info("TLS failure with %s: %s", _peer(self.client), printable(exc))
            self._shutdown(tls_close=False)
            return b""
        if self.facts is None and tls.handshake_complete:
            self._on_handshake(tls)
            if not plain:
                self._flush_tls()
            # else a request came with the client's Finished: the session tickets OpenSSL just
            # queued go out with the answer (one write and one TLS flight fewer per handshake)
        else:
            self._flush_tls()
        if tls.peer_closed and not plain:
            self.http.receive_data(b"")
            self._pump()
        return plain

    def _on_handshake(self, tls: TLSConnection) -> None:
        info = tls.info
        assert info is not None
        reason = refusal_reason(
            info.client_certificate, self.config.client_cert, self.config.verify
        )
        self.facts = connection_facts(self.client, self.server, info, reason)
        self._idle = True
        self._arm(self.config.timeouts.header, "request head")

    def _flush_tls(self) -> None:
        out = self.tls.data_to_send() if self.tls is not None else b""
        if out:
            self._write_raw(out)

    # -- requests ------------------------------------------------------------------------------

    def _pump(self) -> None:
        """Take events until a request is complete (then run it) or more bytes are needed."""
        while self._task is None and not self._lost:
            event = self.http.next_event()
            if event is None:
                return
            if isinstance(event, Data):
                self._body.append(event.data)
                self._arm(self.config.timeouts.header, "request body")
            elif isinstance(event, Request):
                if self.state.forwarding is not None and not self._forwarded(event):
                    return
                assert self.facts is not None
                if self.facts.refusal is not None:
                    # Refused before the app runs: no need to read (or invite) the body.
                    self._refuse(event, self.facts.refusal)
                    return
                self._request = event
                self._body = []
                self._disarm()
                if event.expect_continue:
                    self._write(b"HTTP/1.1 100 Continue\r\n\r\n")
            elif isinstance(event, EndOfMessage):
                request, self._request = self._request, None
                if request is not None:
                    self._dispatch(request, b"".join(self._body))
                    self._body = []
            elif isinstance(event, ProtocolError):
                log.info(
                    "bad request from %s: %d %s", _peer(self.client), event.status, event.reason
                )
                self._write(simple_response(self._request, event.status, event.reason))
                self._shutdown()
                return
            elif isinstance(event, ConnectionClosed):
                self._shutdown()
                return
        if self._task is not None and self.http.pending_events > MAX_PENDING_EVENTS:
            assert self.transport is not None
            self.transport.pause_reading()

    def _forwarded(self, request: Request) -> bool:
        """This request's facts from a trusted proxy's header (a proxy carries many clients
        over one connection); a malformed header is answered 400 and False returned."""
        assert self.state.forwarding is not None
        try:
            self.facts = self.state.forwarding.request_facts(request, self.client, self.server)
        except ForwardedCertificateError as exc:
            log.info("bad request from %s: 400 %s", _peer(self.client), exc)
            self._write(simple_response(request, 400, str(exc)))
            self._shutdown()
            return False
        return True

    def _refuse(self, request: Request, reason: str) -> None:
        """The policy's 403, logged; the connection then closes (a new one may carry a
        certificate)."""
        cert = self.facts.client_certificate if self.facts is not None else None
        log.warning(
            "refused %s %s from %s (%s): 403 %s",
            request.method,
            printable(request.path),
            _peer(self.client),
            printable(cert.subject if cert is not None and cert.present else "no certificate"),
            printable(reason),
        )
        self._write(simple_response(request, 403, reason))
        self._shutdown()

    def _dispatch(self, request: Request, body: bytes) -> None:
        closing = self._closing or self.state.stopping
        channel = Channel(self, self.http.respond(request, closing=closing))
        self._task = self.loop.create_task(self._run(request, body, channel))

    async def _run(self, request: Request, body: bytes, channel: Channel) -> None:
        facts = self.facts
        assert facts is not None
        channel.watch_app()
        try:
            await self.state.app.handle(request, body, facts, channel)
        except asyncio.CancelledError:
            if not channel.overdue:
                raise
        except Exception:
            if not channel.overdue:
                log.exception("serving %s %s failed", request.method, printable(request.path))
                self._fail(request, channel, 500, "internal server error")
        finally:
            channel.unwatch_app()
            self._task = None
        if channel.overdue:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                task.uncancel()  # the cancellation was ours, and it is handled
            log.error(
                "%s %s from %s: no output from the app for %g s (--app-timeout): 504",
                request.method,
                printable(request.path),
                _peer(self.client),
                self.config.timeouts.app,
            )
            self._fail(request, channel, 504, "the app did not answer in time")
        writer = channel.writer
        self._log_access(request, writer, channel.sent)
        if self._lost:
            return
        if not writer.finished or not writer.keep_alive or self.state.stopping:
            self._shutdown()
            return
        assert self.transport is not None
        self.transport.resume_reading()
        self._idle = self.http.pending_events == 0
        self._arm(
            self.config.timeouts.keep_alive if self._idle else self.config.timeouts.header,
            "next request" if self._idle else "request head",
        )
        self._pump()

    def _fail(self, request: Request, channel: Channel, status: int, text: str) -> None:
        """Answer ``status`` in place of the app's response; when part of that response has
        gone out already, it cannot be completed honestly, so the connection will close."""
        channel.detached = True  # whatever the app still sends is dropped
        if channel.committed:
            channel.writer.keep_alive = False
            return
        writer = channel.writer = ResponseWriter(request, keep_alive=channel.keep_alive)
        body = text.encode("utf-8") + b"\n"
        head = writer.head(
            status,
            [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", b"%d" % len(body)),
            ],
        )
        channel.sent = len(body)
        self._write(head + writer.body(body) + writer.end())

    def _log_access(self, request: Request, writer: ResponseWriter, sent: int) -> None:
        if not access_log.isEnabledFor(20):
            return
        cert = self.facts.client_certificate if self.facts is not None else None
        who = cert.subject if cert is not None and cert.present else "-"
        verdict = cert.verify_status if cert is not None else "-"
        access_log.info(
            '%s "%s %s HTTP/%s" %d %d %s %s',
            _peer(self.client),
            request.method,
            printable(request.target.decode("latin-1")),
            request.http_version,
            writer.status,
            sent,
            printable(who),
            printable(verdict),
        )

    # -- output and closing --------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if self._lost or not data:
            return
        if self.tls is not None:
            self.tls.send(data)
            self._flush_tls()
        else:
            self._write_raw(data)

    def _write_raw(self, data: bytes) -> None:
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    async def drain(self) -> None:
        """Wait while the socket's buffer is full."""
        if self._write_paused and not self._lost:
            self._drain = self.loop.create_future()
            await self._drain

    def close_when_idle(self) -> None:
        """Graceful stop: close now if no request runs, else after its response."""
        self._closing = True
        if self._task is None:
            self._shutdown()

    def _shutdown(self, *, tls_close: bool = True) -> None:
        self._disarm()
        if self._send_deadline is None:
            self._stop_timer()
        # else the transport's close waits for its buffer to be read: the send clock still runs
        if self.transport is None or self._lost or self.transport.is_closing():
            return
        if self.tls is not None and tls_close and self.facts is not None:
            with contextlib.suppress(Exception):  # close_notify is a courtesy
                self.tls.close()
                self._flush_tls()
        self.transport.close()
        self._lost = True

    def abort(self) -> None:
        """Drop the connection at once."""
        self._disarm()
        self._send_deadline = None
        self._stop_timer()
        if self.transport is not None:
            self.transport.abort()

    # -- timers --------------------------------------------------------------------------------

    # A deadline, not a timer per phase: re-arming for every request (call_later + cancel,
    # ~1.9 us a pair on uvloop, two pairs per keep-alive request) cost ~10% of a request. One
    # timer per connection fires at the earliest deadline set and follows a later one. The
    # send deadline lives beside the phase deadline (a response stalls in any phase, and a
    # close waits for the buffer too) on the same timer.

    def _arm(self, seconds: float, what: str) -> None:
        deadline = self.loop.time() + seconds
        self._deadline = deadline
        self._deadline_what = what
        if self._timer is None or self._timer_at > deadline:
            self._wake_at(deadline)

    def _wake_at(self, when: float) -> None:
        self._stop_timer()
        self._timer_at = when
        self._timer = self.loop.call_at(when, self._on_timer)

    def _disarm(self) -> None:
        self._deadline = None  # a pending timer then finds nothing due

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self) -> None:
        self._timer = None
        now = self.loop.time() + TIMER_SLACK_S
        if self._send_deadline is not None and now >= self._send_deadline:
            if not self._client_read_some():
                log.info(
                    "%s read nothing for %g s (--timeout-send): connection dropped",
                    _peer(self.client),
                    self.config.timeouts.send,
                )
                self.abort()
                return
            self._start_send_clock()
        deadline = self._deadline
        if deadline is not None and now >= deadline:
            self._deadline = None
            self._timed_out(self._deadline_what)
        # this timer served every deadline: follow the earliest still ahead
        ahead = [at for at in (self._deadline, self._send_deadline) if at is not None]
        if ahead:
            self._wake_at(min(ahead))

    # -- --timeout-send: set only when the transport pauses writing (the client stopped reading),
    # so a request that fits the socket buffer pays nothing for it.

    def _start_send_clock(self) -> float:
        """Give the client --timeout-send seconds to read; remember how much waits for it."""
        assert self.transport is not None
        self._send_buffered = self.transport.get_write_buffer_size()
        self._send_deadline = deadline = self.loop.time() + self.config.timeouts.send
        return deadline

    def _client_read_some(self) -> bool:
        """Whether the client took bytes since the send clock started: it may read too slowly
        for the transport to resume writing and still be reading (nginx's send_timeout too
        counts any progress)."""
        assert self.transport is not None
        return self.transport.get_write_buffer_size() < self._send_buffered

    def _timed_out(self, what: str) -> None:
        self._timer = None
        if self._task is not None:
            return
        if what not in ("next request", "TLS handshake"):
            log.info("%s from %s timed out", what, _peer(self.client))
        if what == "request head" and not self._idle and self.facts is not None:
            self._write(simple_response(None, 408, "request timeout"))
        self._shutdown()


class Channel:
    """The :class:`~mutls.apps.base.ResponseChannel` of one request."""

    def __init__(self, conn: ConnectionProtocol, writer: ResponseWriter) -> None:
        self.conn = conn
        self.writer = writer
        self.keep_alive = writer.keep_alive
        self.sent = 0
        # The head waits for the first body bytes: one write (one TLS record) instead of two.
        self._head = b""
        #: bytes of this response have reached the connection (no error page can replace it).
        self.committed = False
        #: the request is over for the app (failed, timed out): its output is dropped.
        self.detached = False
        #: the app went --app-timeout seconds without output (then it is cancelled/abandoned).
        self.overdue = False
        self._last_output = 0.0
        self._waiting_for_client = False

    async def start(self, status: int, headers: Headers) -> None:
        """Send the status line and headers (with the first piece of body)."""
        if self.detached:
            return
        if self.writer.started:  # nothing sent yet (else head() refuses): an error page may
            self.writer = ResponseWriter(self.writer.request, keep_alive=self.keep_alive)
        if self.conn.state.stopping or self.conn._closing:
            self.writer.keep_alive = False  # tell the client this connection ends here
        self._head = self.writer.head(status, headers)

    async def send(self, data: bytes) -> None:
        """Send a piece of body; waits while the client is slow."""
        if self.detached:
            return
        out = self.writer.body(data)
        self.sent += len(data)
        if self._head:
            out, self._head = self._head + out, b""
        self.committed = True
        self.conn._write(out)
        if self.conn._write_paused:
            self._waiting_for_client = True  # a slow client is not the app's fault
            await self.conn.drain()
            self._waiting_for_client = False
        self._last_output = self.conn.loop.time()

    async def finish(self) -> None:
        """End the response."""
        if self.detached:
            return
        out = self.writer.end()
        if self._head:
            out, self._head = self._head + out, b""
        self.committed = True
        self.conn._write(out)

    def abort(self) -> None:
        """Drop the connection at once."""
        if not self.detached:  # an abandoned app must not cut the connection that moved on
            self.conn.abort()

    @property
    def disconnected(self) -> bool:
        """True once the client has gone (or the server stopped listening to the app)."""
        return self.conn._lost or self.detached

    # -- --app-timeout: a watchdog on silence, not a deadline, so streaming apps and slow
    # clients pass. One sweep per server (watch_apps), not a timer per request: a timer's
    # call_later + cancel would cost more than the set add + discard done here.

    def watch_app(self) -> None:
        """Start timing the app (no-op without --app-timeout)."""
        if self.conn.config.timeouts.app is not None:
            self._last_output = self.conn.loop.time()
            self.conn.state.running.add(self)

    def unwatch_app(self) -> None:
        """Stop timing the app."""
        self.conn.state.running.discard(self)

    def check_app(self, now: float, timeout: float) -> None:
        """Cancel the app if it has been silent for ``timeout`` seconds (waiting for a slow
        client to read does not count)."""
        if self._waiting_for_client or now - self._last_output < timeout:
            return
        self.conn.state.running.discard(self)
        self.overdue = self.detached = True
        task = self.conn._task
        if task is not None:
            task.cancel()  # an ASGI app stops here; a WSGI thread is abandoned by its adapter

    async def wait_disconnected(self) -> None:
        """Return once the client has gone."""
        await asyncio.shield(self.conn._disconnected)


async def watch_apps(state: ServerState) -> None:
    """The --app-timeout sweep of one server: a few times per timeout, every running app is
    checked (cancel the task to stop)."""
    timeout = state.config.timeouts.app
    if timeout is None:
        return
    interval = min(1.0, timeout / 4)
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(interval)
        now = loop.time()
        for channel in list(state.running):
            channel.check_app(now, timeout)


def _address(value: Any) -> tuple[str, int] | None:
    if isinstance(value, tuple) and len(value) >= 2:
        return (str(value[0]), int(value[1]))
    return None


def _peer(address: tuple[str, int] | None) -> str:
    if address is None:
        return "?"
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
