"""The lifecycle of a served HTTP/1.1 connection: its states and the legal moves between them,
in one place (:class:`~mutls.server.protocol.ConnectionProtocol` holds the state and moves it
with ``_enter``, which raises :class:`IllegalTransition` for a move this table lacks)::

    OPENING ──► NEW ──► READING ──► RUNNING ──► IDLE ──► READING ──► ...
                 │         │           └──► READING (the next request, pipelined, waits)
                 │         └──► UPGRADED (a WebSocket has the connection)
                 └──► HANDED_OVER (ALPN chose HTTP/2: mutls.server.http2 has the socket)
    any state but the final two (HANDED_OVER, CLOSED) ──► CLOSED

A request already in the parser's hands (pipelined behind the last, queued for its turn, or
decrypted with the client's close) starts running from NEW or IDLE without passing READING,
which is entered only when a read brings the first bytes of a request.

What is not lifecycle stays a field of the connection: ``write_paused`` (flow control: the
socket's buffer is full, in any state), ``_closing`` (a graceful stop was asked: it can come in
any state and only makes the answer in flight the last), and the ``task`` that runs the app
(the handle to cancel, present only while RUNNING or UPGRADED).
"""

from __future__ import annotations

import enum


class Lifecycle(enum.Enum):
    """Where a served HTTP/1.1 connection is in its life."""

    #: accepted; its PROXY header or TLS handshake is still arriving: no request can start.
    OPENING = "opening"
    #: ready, and waiting for its first request (a graceful stop lets that request come: its
    #: client is about to send it and would not retry it).
    NEW = "new"
    #: a request's head or body is arriving (its deadline is the head's or the body's).
    READING = "reading"
    #: the app answers a request.
    RUNNING = "running"
    #: a response went out and the connection is kept alive for the next request (a graceful
    #: stop closes it now: a client reusing a connection expects it may close, RFC 9112 9.3.1).
    IDLE = "idle"
    #: a WebSocket has the connection.
    UPGRADED = "upgraded"
    #: final: ALPN chose HTTP/2, whose protocol took the socket over.
    HANDED_OVER = "handed over"
    #: final: closed by the server, or lost.
    CLOSED = "closed"

    #: the states this one may move to (set below from :data:`TRANSITIONS`); none: final.
    successors: tuple[Lifecycle, ...]


# The members as module names: ``Lifecycle.IDLE`` is a lookup on the enum's metaclass (~10
# times a global's cost), and a kept-alive request moves the state three times.
OPENING, NEW, READING, RUNNING, IDLE, UPGRADED, HANDED_OVER, CLOSED = Lifecycle

#: every legal move; a move not listed is a bug, and ``_enter`` raises for it.
TRANSITIONS: dict[Lifecycle, tuple[Lifecycle, ...]] = {
    OPENING: (NEW, CLOSED),
    NEW: (READING, RUNNING, UPGRADED, HANDED_OVER, CLOSED),
    READING: (RUNNING, UPGRADED, CLOSED),
    RUNNING: (IDLE, READING, CLOSED),
    IDLE: (READING, RUNNING, UPGRADED, CLOSED),
    UPGRADED: (CLOSED,),
    HANDED_OVER: (),
    CLOSED: (),
}

# A tuple on each member: the check is an attribute and a scan by identity (a set would hash
# the member, which an Enum does in Python, not C).
for _state, _successors in TRANSITIONS.items():
    _state.successors = _successors


class IllegalTransition(RuntimeError):
    """A connection was asked to move between two states the table does not link (a bug)."""

    def __init__(self, old: Lifecycle, new: Lifecycle) -> None:
        super().__init__(f"a connection cannot go from {old.value} to {new.value}")
        self.old = old
        self.new = new
