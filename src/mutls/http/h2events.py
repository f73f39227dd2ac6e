"""What an HTTP/2 connection reports (:class:`~mutls.http.http2.HTTP2Connection`): a request
head on a stream, its body complete, a stream refused or cancelled, a window opened, the end of
the connection. Plain objects, as HTTP/1.1's events are (:mod:`mutls.http.events`)."""

from __future__ import annotations

from dataclasses import dataclass

from mutls.http.events import Request


@dataclass(slots=True)
class StreamOpened:
    """A request head on ``stream_id``, checked and screened; its body follows."""

    stream_id: int
    request: Request


@dataclass(slots=True)
class StreamReady:
    """The request on ``stream_id`` is complete: ``body`` is all of it."""

    stream_id: int
    body: bytes


@dataclass(slots=True)
class StreamRefused:
    """The request on ``stream_id`` broke a limit: answer ``status`` with ``reason``
    (``request`` is ``None`` when its head was never accepted)."""

    stream_id: int
    status: int
    reason: str
    request: Request | None = None


@dataclass(slots=True)
class StreamCancelled:
    """The client reset ``stream_id`` (or it was reset for the client's fault)."""

    stream_id: int


@dataclass(slots=True)
class WindowOpened:
    """The client let more response data through on ``stream_id`` (0: the connection)."""

    stream_id: int


@dataclass(slots=True)
class ConnectionEnded:
    """The connection is over: by the client's GOAWAY (``by_peer``) or a connection error
    (the GOAWAY is in ``data_to_send()``)."""

    reason: str
    error_code: int = 0
    by_peer: bool = False


H2Event = (
    StreamOpened | StreamReady | StreamRefused | StreamCancelled | WindowOpened | ConnectionEnded
)
