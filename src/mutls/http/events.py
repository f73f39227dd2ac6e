"""What an HTTP/1.1 connection reports: a request head, body chunks, the end, or a protocol error.

Events are plain objects, not exceptions: a malformed request is something the peer did, answered
with the status the error carries (h11's split between "you" and "the peer"), and the hot path
never raises.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

Headers = list[tuple[bytes, bytes]]


@dataclass(slots=True)
class Request:
    """A request head: everything before the body.

    ``headers`` keep the order and case the client sent, less the fields no app may see (names
    with ``_``, client-certificate headers); ``path`` is percent-decoded (as ASGI and WSGI want
    it), ``raw_path`` and ``query`` are the bytes as sent. ``certificate_headers`` are the
    client-certificate headers set aside (names lower-case): read only when a trusted proxy
    sent them (:mod:`mutls.apps.forwarded_certificates`).
    """

    method: str
    target: bytes
    raw_path: bytes
    path: str
    query: bytes
    http_version: str
    headers: Headers
    keep_alive: bool
    expect_continue: bool = False
    content_length: int | None = None
    chunked: bool = False
    certificate_headers: Sequence[tuple[bytes, bytes]] = ()

    def header(self, name: bytes) -> bytes | None:
        """The first value of header ``name`` (lower-case), or ``None``."""
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None


@dataclass(slots=True)
class Data:
    """A piece of the request body, de-chunked."""

    data: bytes


@dataclass(slots=True)
class EndOfMessage:
    """The request body is complete."""


@dataclass(slots=True)
class ProtocolViolation:
    """The peer broke HTTP: answer ``status`` with ``reason`` as the body, then close.

    400 for malformed requests (including request smuggling attempts), 413 for a body over the
    limit, 431 for a head over the limits, 505 for an HTTP version other than 1.x.
    """

    status: int
    reason: str


@dataclass(slots=True)
class ConnectionClosed:
    """The peer closed its side (EOF) between requests."""


Event = Request | Data | EndOfMessage | ProtocolViolation | ConnectionClosed
