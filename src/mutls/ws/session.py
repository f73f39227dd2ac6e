"""``WebSocketSession``: the server side of an open WebSocket, sans-I/O, on ``wsproto``.

Bytes go in with :meth:`~WebSocketSession.receive_data`; whole messages, pongs and the close
come out of :meth:`~WebSocketSession.next_event`, one at a time and only when asked for, so
that the bytes a client sends wait as bytes (one read at most, as the caller stops reading
while its queue is full) rather than as a queue of parsed messages. What the server sends
(messages, pings, the pong to every ping, the close) is taken from
:meth:`~WebSocketSession.data_to_send`.

The rules ``wsproto`` enforces (RFC 6455 section 5): a client's frames are masked; control
frames carry at most 125 bytes and are never fragmented; reserved bits and opcodes are refused
(1002); text is valid UTF-8, checked as it arrives (1007); close codes are valid. Added here:
a message larger than :attr:`WebSocketLimits.max_message_bytes` is refused (1009) as soon as
its frames pass the limit, not once it is whole; data after the server's close is dropped.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Event, TextMessage
from wsproto.events import Ping as PingEvent
from wsproto.events import Pong as PongEvent

#: close codes (RFC 6455 section 7.4.1).
NORMAL = 1000
GOING_AWAY = 1001
PROTOCOL_ERROR = 1002
NO_STATUS = 1005
ABNORMAL = 1006
MESSAGE_TOO_BIG = 1009
INTERNAL_ERROR = 1011


@dataclass(frozen=True)
class WebSocketLimits:
    """What one WebSocket may cost: a message's size in bytes (larger: closed 1009), the
    messages received and not yet taken by the app (then the socket is not read), seconds
    between the server's pings (``None``: no pings) and for the pong to come back (else the
    connection closes 1011), and how long a close waits for the client's own."""

    max_message_bytes: int = 1024 * 1024
    max_queue: int = 16
    ping_interval: float | None = 20.0
    ping_timeout: float = 20.0
    close_timeout: float = 10.0


@dataclass(frozen=True, slots=True)
class Message:
    """A whole message: ``str`` for a text message, ``bytes`` for a binary one."""

    data: str | bytes


@dataclass(frozen=True, slots=True)
class Pong:
    """The client answered a ping (or sent an unsolicited pong)."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class Closed:
    """The WebSocket is over: the client's close (``by_client``), or the server's answer to
    a broken rule or a lost connection (1006). The caller sends what is left and closes."""

    code: int
    reason: str = ""
    by_client: bool = False


SessionEvent = Message | Pong | Closed


class WebSocketSession:
    """One open WebSocket, after the ``101``; ``trailing`` are bytes the client sent after its
    handshake, in the same read."""

    def __init__(self, limits: WebSocketLimits | None = None, trailing: bytes = b"") -> None:
        self.limits = limits or WebSocketLimits()
        self._ws = Connection(ConnectionType.SERVER)
        self._out = bytearray()
        self._ready: deque[SessionEvent] = deque()
        self._source: Iterator[Event] | None = None
        self._parts: list[str | bytes] = []
        self._size = 0
        self._eof = False
        #: the server sent its close (and waits for the client's).
        self.closing = False
        #: the conversation is over (a :class:`Closed` was or is about to be handed out).
        self.closed = False
        if trailing:
            self.receive_data(trailing)

    # -- input -----------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the client; ``b""`` means it closed its side (then 1006, unless a
        close was received first)."""
        if self.closed or self._eof:
            return
        if not data:
            self._eof = True
            return
        self._ws.receive_data(data)

    def next_event(self) -> SessionEvent | None:
        """The next message, pong or close; ``None`` when more bytes are needed."""
        while not self._ready:
            if self.closed:
                return None
            if self._source is None:
                self._source = self._ws.events()
            event = next(self._source, None)
            if event is None:
                self._source = None
                if self._eof:
                    self._finish(Closed(ABNORMAL, "connection lost"))
                    continue
                return None
            self._take(event)
        return self._ready.popleft()

    def _take(self, event: Event) -> None:
        if isinstance(event, TextMessage | BytesMessage):
            if self.closing:
                return  # data after our close is dropped (RFC 6455 section 1.4)
            piece = event.data if isinstance(event.data, str) else bytes(event.data)
            self._size += _weight(piece, self.limits.max_message_bytes - self._size)
            if self._size > self.limits.max_message_bytes:
                self._fail(MESSAGE_TOO_BIG, "message too big")
                return
            if not event.message_finished:
                self._parts.append(piece)
                return
            if self._parts:
                self._parts.append(piece)
                parts, self._parts = self._parts, []
                piece = (
                    "".join(parts)  # type: ignore[arg-type]
                    if isinstance(piece, str)
                    else b"".join(parts)  # type: ignore[arg-type]
                )
            self._size = 0
            self._ready.append(Message(piece))
        elif isinstance(event, PingEvent):
            if not self.closing:
                self._out += self._ws.send(event.response())
        elif isinstance(event, PongEvent):
            self._ready.append(Pong(bytes(event.payload)))
        elif isinstance(event, CloseConnection):
            self._on_close(event)

    def _on_close(self, event: CloseConnection) -> None:
        state = self._ws.state
        if state is ConnectionState.REMOTE_CLOSING:  # the client's close: echo its code
            self._out += self._ws.send(event.response())
            self._finish(Closed(int(event.code), event.reason or "", by_client=True))
        elif state is ConnectionState.CLOSED:  # the client's answer to our close
            self._finish(Closed(int(event.code), event.reason or "", by_client=True))
        else:  # still OPEN: wsproto found a broken rule (its code: 1002, 1007)
            self._fail(int(event.code), event.reason or "protocol error")

    def _fail(self, code: int, reason: str) -> None:
        """Fail the connection (RFC 6455 section 7.1.7): our close, then the end."""
        if not self.closing and self._ws.state is ConnectionState.OPEN:
            self._out += self._ws.send(CloseConnection(code=code, reason=reason))
        self._finish(Closed(code, reason))

    def _finish(self, closed: Closed) -> None:
        self.closed = self.closing = True
        self._parts = []
        self._source = None
        self._ready.append(closed)

    # -- output ----------------------------------------------------------------------------

    @property
    def open(self) -> bool:
        """Messages may be sent (neither side has closed)."""
        return not self.closing and not self.closed

    def send(self, data: str | bytes) -> None:
        """Queue one whole message (text for ``str``); raises RuntimeError once closing."""
        if not self.open:
            raise RuntimeError("the WebSocket is closed")
        event = TextMessage(data) if isinstance(data, str) else BytesMessage(bytes(data))
        self._out += self._ws.send(event)

    def ping(self, payload: bytes) -> None:
        """Queue a ping (payload of at most 125 bytes)."""
        if self.open:
            self._out += self._ws.send(PingEvent(payload))

    def close(self, code: int = NORMAL, reason: str = "") -> None:
        """Queue the server's close; the client's answer comes as :class:`Closed`."""
        if self.closing or self.closed:
            return
        self.closing = True
        self._out += self._ws.send(CloseConnection(code=code, reason=reason or None))

    @property
    def pending_bytes(self) -> int:
        """Bytes queued for the client and not yet taken."""
        return len(self._out)

    def data_to_send(self) -> bytes:
        """The bytes queued for the client since the last call."""
        out = bytes(self._out)
        self._out.clear()
        return out


def _weight(data: str | bytes, room: int) -> int:
    """The bytes a piece of message weighs on the wire; for text, exact only when it could
    matter (a ``str`` of n characters is n to 4n bytes of UTF-8)."""
    if isinstance(data, str):
        if len(data) * 4 <= room or len(data) > room:
            return len(data)
        return len(data.encode("utf-8"))
    return len(data)
