"""Plaintext into the HTTP parser, a bounded amount per connection per turn of the event loop.

Parsing costs per chunk, not per byte: one read (up to 256 KiB) of a body in 1-byte chunks is
~40,000 parser callbacks. Fed whole, such a read kept every other connection waiting for as
long; so a read larger than :data:`FEED_PER_TURN` bytes, or holding more than
:data:`LINES_PER_TURN` line ends (a chunk is two, a header field one: the parser's work is per
line), is queued and fed that much a turn, with the socket not read meanwhile (the queue never
holds more than one read). Another connection's request is then served within one turn of each
busy connection, whatever they send, and a connection that sends costly input gets no more of
the server per turn than one that sends an ordinary request: ``make soak``'s 1-byte-chunk
uploader, refused after 1,092 chunks in one turn of ~2.5 ms, now takes three turns for them.

A base class of the connection, as :mod:`mutls.server.deadlines`: the hot path (a read that fits
one turn) is one comparison more than parsing at once, and a connection holds no queue until a
large read needs one.
"""

from __future__ import annotations

import asyncio

from mutls.http.connection import HTTPConnection

#: pipelined events waiting before the socket stops being read.
MAX_PENDING_EVENTS = 64
#: plaintext bytes one connection hands the HTTP parser per turn of the event loop: about 10 ms
#: of parsing in the worst case (1-byte chunks with the chunk limit off), microseconds for an
#: ordinary body.
FEED_PER_TURN = 64 * 1024
#: line ends one connection hands the parser per turn (512 one-byte chunks, ~1 ms of parsing;
#: an ordinary request head is 10 to 30).
LINES_PER_TURN = 1024


def turn_share(data: bytes | bytearray, lines: bool = True) -> int:
    """How many of the first bytes of ``data`` fit one turn: at most FEED_PER_TURN and, when
    ``lines`` (a head or a chunked body: parsed line by line), at most LINES_PER_TURN line ends.
    Counted with ``count`` (a C scan) over windows that double from 4 KiB, then halving in the
    window that holds the line end too many: a few KiB scanned for dense line ends, at most
    twice the data for sparse ones."""
    end = min(len(data), FEED_PER_TURN)
    if not lines:
        return end
    low, high = 0, min(end, 4 * LINES_PER_TURN)
    here = data.count(b"\n", 0, high)
    allowed = LINES_PER_TURN  # line ends still allowed from ``low`` on
    while here <= allowed:
        if high == end:
            return end
        allowed -= here
        low, high = high, min(end, 2 * high)
        here = data.count(b"\n", low, high)
    cut, over = low, high  # count(low, cut) <= allowed < count(low, over)
    while over - cut > 1:
        middle = (cut + over) // 2
        if data.count(b"\n", low, middle) <= allowed:
            cut = middle
        else:
            over = middle
    return cut


class PlaintextIntake:
    """The parser's side of a connection's input; the connection defines ``http``, ``task``,
    ``transport``, ``lost``, ``loop`` and :meth:`_pump`."""

    loop: asyncio.AbstractEventLoop
    http: HTTPConnection
    task: asyncio.Task[None] | None
    transport: asyncio.Transport | None
    lost: bool
    #: plaintext received and not yet parsed.
    _backlog: bytearray | None = None
    #: the next turn's share is scheduled.
    _turn: asyncio.Handle | None = None
    _eof_pending = False
    _reading_paused = False

    def _pump(self) -> None:
        """Take the events the parser has ready."""
        raise NotImplementedError

    def _take(self, data: bytes) -> None:
        """Plaintext from the client: parsed at once when it fits a turn and nothing waits,
        else queued and parsed a turn's share (:func:`turn_share`) a turn."""
        if (
            self._turn is None
            and not self._backlog
            and len(data) <= FEED_PER_TURN
            and (not self.http.reads_lines or data.count(b"\n") <= LINES_PER_TURN)
        ):
            self.http.receive_data(data)
            self._pump()
            return
        if self._backlog is None:
            self._backlog = bytearray()
        self._backlog += data
        if self._turn is None:
            self._feed_turn()

    def _take_eof(self) -> None:
        """The client closed its side: the parser hears it after the plaintext queued."""
        if self._backlog or self._turn is not None:
            self._eof_pending = True
            return
        self.http.receive_data(b"")
        self._pump()

    def _feed_turn(self) -> None:
        """One turn's share of the queued plaintext. A turn with nothing to feed follows the
        last share and only then lets the socket be read, so that a connection never feeds the
        parser twice in one turn."""
        self._turn = None
        if self.lost:
            return
        backlog = self._backlog
        if not backlog:
            self._update_reading()
            if self._eof_pending:
                self._eof_pending = False
                self._take_eof()
            return
        if self.task is not None and self.http.pending_events > MAX_PENDING_EVENTS:
            self._update_reading()
            return  # enough requests wait for the app: _resume_intake when it is done
        share = turn_share(backlog, self.http.reads_lines)
        data = bytes(backlog[:share])
        del backlog[:share]
        self._turn = self.loop.call_soon(self._feed_turn)
        self._update_reading()
        self.http.receive_data(data)
        self._pump()

    def _resume_intake(self) -> None:
        """The app is done: feed on (from the next turn) what waited for it."""
        if self._backlog and self._turn is None:
            self._turn = self.loop.call_soon(self._feed_turn)
        self._update_reading()

    def _update_reading(self) -> None:
        """Read the socket unless plaintext waits for its turn or enough requests wait for the
        app (MAX_PENDING_EVENTS)."""
        paused = (
            self._turn is not None
            or bool(self._backlog)
            or (self.task is not None and self.http.pending_events > MAX_PENDING_EVENTS)
        )
        if paused is self._reading_paused or self.transport is None or self.lost:
            return
        self._reading_paused = paused
        if paused:
            self.transport.pause_reading()
        else:
            self.transport.resume_reading()

    def _stop_intake(self) -> None:
        """The connection is gone: drop what waits."""
        self._backlog = None
        if self._turn is not None:
            self._turn.cancel()
            self._turn = None
