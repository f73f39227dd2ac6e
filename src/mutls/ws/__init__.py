"""WebSocket (RFC 6455), sans-I/O: the opening handshake over a parsed HTTP/1.1 request and
the framed conversation after it, on ``wsproto``. Nothing here knows asyncio or TLS: bytes go in,
events and bytes come out (as in :mod:`mutls.http`); ``mutls.server.websocket`` drives it.
"""

from __future__ import annotations

from mutls.ws.handshake import (
    Handshake,
    HandshakeError,
    accept_response,
    check_handshake,
    wants_websocket,
)
from mutls.ws.session import (
    Closed,
    Message,
    Pong,
    WebSocketLimits,
    WebSocketSession,
)

__all__ = [
    "Closed",
    "Handshake",
    "HandshakeError",
    "Message",
    "Pong",
    "WebSocketLimits",
    "WebSocketSession",
    "accept_response",
    "check_handshake",
    "wants_websocket",
]
