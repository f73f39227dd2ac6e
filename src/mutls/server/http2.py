"""HTTP/2 connections: once ALPN chose ``h2``, this protocol takes the socket over from the
HTTP/1.1 one and runs every stream's request as the HTTP/1.1 protocol runs one.

No protocol rule lives here (those are :mod:`mutls.http.http2`'s): this module shovels bytes
between the socket, the TLS engine and the HTTP/2 connection, runs an app per stream with the
connection's facts (one verdict, settled at the handshake, for every stream), and waits for
the client: a response is sent within the client's flow-control windows and the socket's
buffer, and a client that lets neither move for --timeout-send is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from mutls.apps.base import send_text
from mutls.apps.facts import ConnectionFacts
from mutls.http.events import Request
from mutls.http.h2events import (
    ConnectionEnded,
    H2Event,
    StreamCancelled,
    StreamOpened,
    StreamReady,
    StreamRefused,
    WindowOpened,
)
from mutls.http.http2 import ALPN_H2, ErrorCodes, HTTP2Connection
from mutls.server.deadlines import BODY, NEXT_REQUEST, ConnectionDeadlines, Phase
from mutls.server.intake import FEED_PER_TURN
from mutls.server.lifecycle import HANDED_OVER
from mutls.server.log import (
    HeaderNotes,
    log,
    log_refusal,
    peer,
    printable,
    record_answer,
)
from mutls.server.streams import HTTP2Stream
from mutls.tls.connection import TLSConnection, TLSError
from mutls.tls.info import TLSInfo
from mutls.tls.options import HTTPVersions

if TYPE_CHECKING:
    from mutls.server.protocol import ConnectionProtocol, ServerState

#: TLS 1.2 cipher suites HTTP/2 accepts (RFC 9113 9.2.2 and its appendix A): an ephemeral key
#: exchange and an AEAD; TLS 1.3's suites all qualify.
_EPHEMERAL = ("ECDHE-", "DHE-")
_AEAD = ("GCM", "CHACHA20", "CCM")
#: data bytes queued before they are written at once rather than at the end of the turn.
FLUSH_BYTES = 64 * 1024
#: seconds a closed connection still reads (and drops) what its client sends (see _close).
LINGER_S = 2.0
#: the HTTP/2 connection preface's first bytes (a client with prior knowledge sends them).
_PREFACE_START = b"PRI * HTTP/2.0"


def adequate_security(version: str, cipher: str) -> bool:
    """Whether a TLS connection may carry HTTP/2 (RFC 9113 9.2): TLS 1.3, or TLS 1.2 with an
    ephemeral key exchange and an AEAD cipher."""
    if version == "TLSv1.3":
        return True
    return (
        version == "TLSv1.2" and cipher.startswith(_EPHEMERAL) and any(a in cipher for a in _AEAD)
    )


def speaks_http2(versions: HTTPVersions, info: TLSInfo | None) -> bool:
    """Whether a connection whose handshake just completed is HTTP/2: ALPN chose ``h2``, or
    the server speaks only HTTP/2 and the client named no protocol (prior knowledge)."""
    if info is None:
        return False
    return info.alpn == ALPN_H2 or (info.alpn is None and versions is HTTPVersions.HTTP2)


def take_over(old: ConnectionProtocol, plain: bytes) -> None:
    """The handshake chose HTTP/2 (or, under ``--http 2``, no protocol): serve the connection
    with :class:`HTTP2Protocol` from now on, starting with the plaintext that came with the
    handshake."""
    assert old.transport is not None and old.tls is not None and old.facts is not None
    new = HTTP2Protocol(old.state, old.transport, old.tls, old.facts, old.client)
    old._stop_deadlines()
    old._enter(HANDED_OVER)  # nothing of the HTTP/1.1 side runs any more
    old.state.connections.discard(old)
    old.state.connections.add(new)
    new.counted, old._counted = old._counted, False  # one open connection, now this one
    old.transport.set_protocol(new)
    new.start(plain)


class HTTP2Protocol(ConnectionDeadlines, asyncio.Protocol):
    """One HTTP/2 connection: many streams, one TLS connection, one verdict."""

    def __init__(
        self,
        state: ServerState,
        transport: asyncio.Transport,
        tls: TLSConnection,
        facts: ConnectionFacts,
        client: tuple[str, int] | None,
    ) -> None:
        self.state = state
        self.config = config = state.config
        self.loop = asyncio.get_running_loop()
        self.transport = transport
        self.tls = tls
        self.facts = facts
        self.client = client
        self.http = HTTP2Connection(config.limits, config.h2_limits, state.certificate_names)
        self.streams: dict[int, HTTP2Stream] = {}
        self.lost = False
        #: counted in the open connections of ``--metrics-address`` (see take_over).
        self.counted = False
        #: the end of a lingering close (see _close).
        self._linger: asyncio.TimerHandle | None = None
        self.write_paused = False
        self._closing = False
        self._sniffing = tls.info is not None and tls.info.alpn is None
        self._header_notes = HeaderNotes()
        #: streams waiting for the socket to drain, or for the client to open a window.
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._window_waiters: list[asyncio.Future[None]] = []
        #: streams waiting for the client to open a window (the send clock runs meanwhile).
        self._stalled = 0
        self._send_progress = 0
        #: a flush scheduled for the end of this turn, and the data bytes queued since one.
        self._flush_handle: asyncio.Handle | None = None
        self._unflushed = 0
        #: streams whose app (or the server's own answer) runs.
        self._running = 0
        #: plaintext waiting for its turn (see data_received_plain).
        self._backlog: bytearray | None = None
        self._eof_pending = False

    # -- the start -------------------------------------------------------------------------

    def start(self, plain: bytes) -> None:
        """Send our SETTINGS, check RFC 9113 9.2's TLS requirements, take the first bytes."""
        info = self.tls.info
        assert info is not None
        if not adequate_security(info.version, info.cipher):
            # RFC 9113 9.2.2: a connection error INADEQUATE_SECURITY, after our preface.
            self.http.fail(
                ErrorCodes.INADEQUATE_SECURITY,
                f"HTTP/2 needs TLS 1.3 or TLS 1.2 with an ECDHE AEAD suite, not {info.cipher}",
            )
            log.info(
                "HTTP/2 refused to %s: %s with %s (INADEQUATE_SECURITY)",
                peer(self.client),
                info.version,
                info.cipher,
            )
            self._flush()
            self._close()
            return
        if not self._sniffing:  # (else the client must first show it speaks HTTP/2)
            self._flush()
        self._arm(self.config.timeouts.keep_alive, NEXT_REQUEST)
        if plain:
            self.data_received_plain(plain)

    # -- asyncio callbacks -----------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        """Ciphertext from the socket."""
        if self.lost:
            return
        try:
            plain = self.tls.receive_data(data)
        except TLSError as exc:
            self._write_raw(self.tls.data_to_send())
            log.info("TLS failure with %s: %s", peer(self.client), printable(exc))
            self.abort()
            return
        self._write_raw(self.tls.data_to_send())
        if plain:
            self.data_received_plain(plain)
        if self.tls.peer_closed and not self.lost:
            self._peer_closed()

    def eof_received(self) -> bool:
        """The client closed its side: nothing more will be read."""
        if not self.lost:
            self._peer_closed()
        return False  # asyncio closes the transport (ends a lingering close at once)

    def _peer_closed(self) -> None:
        if self._backlog is not None:
            self._eof_pending = True  # heard after the input queued before it
            return
        self._events(self.http.receive_data(b"", self.loop.time()))

    def connection_lost(self, exc: Exception | None) -> None:
        """The socket is gone: every stream's app hears it."""
        self.lost = True
        if self._linger is not None:
            self._linger.cancel()
        self.state.connections.discard(self)
        if self.counted and self.state.metrics is not None:
            self.counted = False
            self.state.metrics.connection_closed()
        self._stop_deadlines()
        for stream in list(self.streams.values()):
            stream.gone()
        self._wake_writers()

    def pause_writing(self) -> None:
        """The socket's buffer is full: writers wait, and the send clock starts."""
        self.write_paused = True
        self._start_send_clock()

    def resume_writing(self) -> None:
        """The client reads again."""
        self.write_paused = False
        if not self._stalled:
            self._disarm_send()
        self._wake(self._drain_waiters)

    # -- input -----------------------------------------------------------------------------

    def data_received_plain(self, plain: bytes) -> None:
        """Plaintext: HTTP/2 frames."""
        if self._sniffing:
            # --http 2 and a client without ALPN: HTTP/2 if it says so, else a plain answer.
            self._sniffing = False
            if not _PREFACE_START.startswith(plain[:14]):
                self._http11_refusal()
                return
            self._flush()
        if self._backlog is not None:
            self._backlog += plain
            return
        if len(plain) > FEED_PER_TURN:
            # As for HTTP/1.1 (mutls.server.intake): a turn of the loop parses at most this
            # much of one connection's input, the socket unread meanwhile, so a read full of
            # small frames never holds the other connections for long.
            self._backlog = bytearray(plain[FEED_PER_TURN:])
            plain = plain[:FEED_PER_TURN]
            self.transport.pause_reading()
            self.loop.call_soon(self._feed_backlog)
        self._parse(plain)

    def _feed_backlog(self) -> None:
        backlog = self._backlog
        if backlog is None or self.lost:
            self._backlog = None
            return
        plain = bytes(backlog[:FEED_PER_TURN])
        del backlog[:FEED_PER_TURN]
        if backlog:
            self.loop.call_soon(self._feed_backlog)
        else:
            self._backlog = None
            self.transport.resume_reading()
        self._parse(plain)
        if self._backlog is None and self._eof_pending:
            self._eof_pending = False
            self._peer_closed()

    def _parse(self, plain: bytes) -> None:
        if self.lost:
            return
        now = self.loop.time()
        self._events(self.http.receive_data(plain, now))
        if self.streams:
            if len(self.streams) > self._running:  # a request still coming in
                self._arm(self.config.timeouts.header, BODY)
            else:
                self._disarm()
        elif not self.lost:
            self._arm(self.config.timeouts.keep_alive, NEXT_REQUEST)

    def _events(self, events: Sequence[H2Event]) -> None:
        for event in events:
            if isinstance(event, StreamOpened):
                self._opened(event.stream_id, event.request)
            elif isinstance(event, StreamReady):
                stream = self.streams.get(event.stream_id)
                if stream is not None and stream.task is None and not stream.refused:
                    self._run(stream, event.body)
            elif isinstance(event, StreamRefused):
                self._refused(event)
            elif isinstance(event, StreamCancelled):
                stream = self.streams.get(event.stream_id)
                if stream is not None:
                    stream.gone()
                    if stream.task is None:
                        del self.streams[event.stream_id]
            elif isinstance(event, WindowOpened):
                self._window_opened()
            elif isinstance(event, ConnectionEnded):
                self._ended(event)
                break
        self._flush()

    def _opened(self, stream_id: int, request: Request) -> None:
        self._note_headers(request)
        if len(self.streams) >= self.config.h2_limits.max_concurrent_streams:
            # SETTINGS_MAX_CONCURRENT_STREAMS, counted by the server: streams receiving or
            # running, and streams the client reset whose app still runs (they keep their
            # place, so rapid reset's cost stays bounded).
            self.http.reset(stream_id, ErrorCodes.REFUSED_STREAM)
            self._count_reset()
            return
        stream = self.streams[stream_id] = HTTP2Stream(self, stream_id, request)
        if self.facts.refusal is not None:
            # The policy's refusal, decided once at the handshake: a 403 before the app.
            stream.refused = True
            log_refusal(self.client, self.facts, request, self.facts.refusal)
            # The connection ends after the 403 is out, not before: a GOAWAY ahead of the
            # answer makes some clients (Java 17's HttpClient) fail the stream unanswered.
            self._answer(stream, 403, self.facts.refusal, then_close=True)
        elif request.expect_continue and self.http.stream_open(stream_id):
            # As over HTTP/1.1: invited once the request is known to be served.
            self.http.send_continue(stream_id)

    def _refused(self, event: StreamRefused) -> None:
        log.info(
            "bad request from %s on HTTP/2 stream %d: %d %s",
            peer(self.client),
            event.stream_id,
            event.status,
            event.reason,
        )
        request = event.request or Request("GET", b"/", b"/", "/", b"", "2", [], True)
        stream = self.streams.get(event.stream_id)
        if stream is None:
            stream = self.streams[event.stream_id] = HTTP2Stream(self, event.stream_id, request)
        stream.refused = True
        self._answer(stream, event.status, event.reason)
        self._count_reset()

    def _answer(
        self, stream: HTTP2Stream, status: int, text: str, *, then_close: bool = False
    ) -> None:
        """A plain-text answer by the server, then the stream is done (and the rest of its
        upload refused with RST_STREAM NO_ERROR, RFC 9113 8.1); ``then_close``: the
        connection ends gracefully once it is out."""

        async def answer() -> None:
            try:
                await send_text(stream.channel, status, text)
            finally:
                record_answer(
                    self.state,
                    self.facts,
                    self.client,
                    stream.request,
                    status,
                    stream.channel.sent,
                    self.loop.time() - stream.started,
                )
                if self.http.stream_open(stream.stream_id):
                    self.http.reset(stream.stream_id, ErrorCodes.NO_ERROR)
                self._done(stream)
                if then_close:
                    self.close_when_idle()

        stream.task = self.loop.create_task(answer())
        self._running += 1

    def _note_headers(self, request: Request) -> None:
        self._header_notes.note(self.client, self.http.dropped_name, request, self.state.forwarding)

    def _count_reset(self) -> None:
        ended = self.http.note_reset(self.loop.time())
        if ended is not None:
            self._ended(ended)

    def _ended(self, event: ConnectionEnded) -> None:
        if not event.by_peer:
            log.info("HTTP/2 connection with %s closed: %s", peer(self.client), event.reason)
            self.state.failed(self.client)
        for stream in list(self.streams.values()):
            stream.gone()
        self._flush()
        self._close()

    def _http11_refusal(self) -> None:
        from mutls.http.response import simple_response

        log.info("HTTP/1.1 request from %s to an HTTP/2-only server: 505", peer(self.client))
        self._send_plain(simple_response(None, 505, "this server speaks HTTP/2 only (--http 2)"))
        self._close()

    # -- running apps ----------------------------------------------------------------------

    def _run(self, stream: HTTP2Stream, body: bytes) -> None:
        stream.task = self.loop.create_task(self._serve(stream, body))
        self._running += 1

    async def _serve(self, stream: HTTP2Stream, body: bytes) -> None:
        channel = stream.channel
        request = stream.request
        await self.state.watchdog.serve(
            self.state.app, request, body, self.facts, channel, self.client
        )
        record_answer(
            self.state,
            self.facts,
            self.client,
            request,
            channel.writer.status,
            channel.sent,
            self.loop.time() - stream.started,
        )
        if not channel.finished and not stream.lost and self.http.stream_open(stream.stream_id):
            self.http.reset(stream.stream_id, ErrorCodes.INTERNAL_ERROR)
        self._done(stream)

    def _done(self, stream: HTTP2Stream) -> None:
        self.streams.pop(stream.stream_id, None)
        self._running -= 1
        if self.lost:
            return
        if self._closing and not self.streams:
            self._flush()
            self._close()
        elif not self.streams:
            self._arm(self.config.timeouts.keep_alive, NEXT_REQUEST)

    # -- output ----------------------------------------------------------------------------

    def flush_soon(self, size: int = 0) -> None:
        """Write what streams queued at the end of this turn of the loop: the answers of every
        stream that finished in it go out in one TLS write (a write is a system call, which
        costs more than the frames). ``size`` bytes of data were queued: past FLUSH_BYTES
        they go at once, so a response is never held back whole and write_paused is seen."""
        self._unflushed += size
        if self._unflushed >= FLUSH_BYTES:
            self._flush()
        elif self._flush_handle is None:
            self._flush_handle = self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        """Encrypt and write what the HTTP/2 connection has to send."""
        self._unflushed = 0
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        out = self.http.data_to_send()
        if out and not self.lost:
            self._send_plain(out)

    def _send_plain(self, data: bytes) -> None:
        try:
            self.tls.send(data)
        except TLSError:
            self.abort()
            return
        self._write_raw(self.tls.data_to_send())

    def _write_raw(self, data: bytes) -> None:
        if data and not self.transport.is_closing():
            self.transport.write(data)

    async def drain(self) -> None:
        """Wait while the socket's buffer is full (any number of streams may wait)."""
        while self.write_paused and not self.lost:
            await self._wait(self._drain_waiters)

    async def wait_window(self) -> None:
        """Wait until the client opens a window (or goes): the send clock runs meanwhile."""
        if self.lost:
            return
        self._stalled += 1
        if self._stalled == 1:
            self._start_send_clock()
        try:
            await self._wait(self._window_waiters)
        finally:
            self._stalled -= 1
            if not self._stalled and not self.write_paused:
                self._disarm_send()

    async def _wait(self, waiters: list[asyncio.Future[None]]) -> None:
        """One waiter's own future among ``waiters`` (all woken at once by :meth:`_wake`)."""
        future: asyncio.Future[None] = self.loop.create_future()
        waiters.append(future)
        try:
            await future
        finally:
            if future in waiters:
                waiters.remove(future)

    @staticmethod
    def _wake(waiters: list[asyncio.Future[None]]) -> None:
        for future in waiters:
            if not future.done():
                future.set_result(None)
        waiters.clear()

    def _window_opened(self) -> None:
        self._send_progress += 1
        self._wake(self._window_waiters)

    def _wake_writers(self) -> None:
        self._wake(self._drain_waiters)
        self._wake(self._window_waiters)

    # -- closing ---------------------------------------------------------------------------

    @property
    def closing(self) -> bool:
        """A graceful stop is under way."""
        return self._closing or self.state.stopping

    def close_when_idle(self) -> None:
        """Graceful stop: GOAWAY (the streams received so far are served to their end),
        then close once none runs."""
        self._closing = True
        if self.lost:
            return
        self.http.goaway("server shutting down")
        self._flush()
        if not self.streams:
            self._close()

    def _close(self) -> None:
        self._release_deadlines()
        if self.lost:
            return
        with contextlib.suppress(Exception):  # close_notify is a courtesy
            self.tls.close()
            self._write_raw(self.tls.data_to_send())
        if self.transport.can_write_eof():
            # A lingering close (nginx's lingering_close): our side ends now, and what the
            # client still sends (a SETTINGS ack, a WINDOW_UPDATE) is read and dropped until it
            # closes too, or LINGER_S. Closing with its bytes unread makes the kernel send a
            # reset, which can reach the client before the answer it has not read yet (Java's
            # HttpClient then reports "Connection reset" instead of the 403).
            self.transport.write_eof()
            self._linger = self.loop.call_later(LINGER_S, self.transport.close)
        else:
            self.transport.close()
        self.lost = True
        for stream in list(self.streams.values()):
            stream.gone()
        self._wake_writers()

    def abort(self) -> None:
        """Drop the connection at once."""
        self._stop_deadlines()
        self.transport.abort()

    # -- deadlines -------------------------------------------------------------------------

    def _start_send_clock(self) -> None:
        self._send_progress = 0
        self._send_buffered = self.transport.get_write_buffer_size()
        self._arm_send(self.config.timeouts.send)

    def _send_due(self) -> None:
        """--timeout-send: a client that read nothing and opened no window is dropped."""
        moved = self._send_progress or (
            self.write_paused and self.transport.get_write_buffer_size() < self._send_buffered
        )
        if moved and (self.write_paused or self._stalled):
            self._start_send_clock()
            return
        if not self.write_paused and not self._stalled:
            return
        log.info(
            "%s read nothing and opened no HTTP/2 window for %g s (--timeout-send): "
            "connection dropped",
            peer(self.client),
            self.config.timeouts.send,
        )
        self.abort()

    def _phase_due(self, phase: Phase) -> None:
        if phase is NEXT_REQUEST:
            self.close_when_idle()
            return
        log.info("%s from %s timed out", phase.value, peer(self.client))
        self.state.failed(self.client)
        self.http.fail(ErrorCodes.NO_ERROR, f"{phase.value} timed out")
        self._flush()
        self._close()
