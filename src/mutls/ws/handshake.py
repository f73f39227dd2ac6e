"""The opening handshake (RFC 6455 section 4.2) on a request :mod:`mutls.http` has parsed.

The HTTP parser stops at a request that asks to switch protocols; :func:`check_handshake` says
whether it is a WebSocket handshake this server takes (else the status to refuse it with), and
:func:`accept_response` writes the ``101 Switching Protocols`` head once the app accepts.
Per-message deflate (RFC 7692) is never negotiated: an offer is ignored, so the client sends
every frame uncompressed and no frame can inflate to more than it weighs (see docs/server.md).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from wsproto.utilities import generate_accept_token

from mutls.http.events import Headers, Request
from mutls.http.response import SERVER_NAME, http_date

#: the only version of the protocol (RFC 6455 section 4.1); a client asking for another is
#: answered 426 with this one.
VERSION = b"13"
#: headers the server writes in a 101 itself: an app's own are dropped.
_OURS = frozenset(
    (b"upgrade", b"connection", b"sec-websocket-accept", b"sec-websocket-protocol",
     b"sec-websocket-extensions", b"content-length", b"transfer-encoding")
)  # fmt: skip


class HandshakeError(Exception):
    """Not a WebSocket handshake this server takes: answer ``status`` with ``reason``."""

    def __init__(self, status: int, reason: str, headers: Headers | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers: Headers = headers or []


@dataclass(frozen=True)
class Handshake:
    """A client's valid opening handshake: its key and the subprotocols it offers, in order."""

    key: bytes
    subprotocols: tuple[str, ...] = ()
    #: the extensions offered (``Sec-WebSocket-Extensions``), none of which is accepted.
    extensions: tuple[str, ...] = ()


def _tokens(request: Request, name: bytes) -> list[str]:
    """The comma-separated values of every ``name`` header, stripped, in order."""
    found: list[str] = []
    for key, value in request.headers:
        if key.lower() == name:
            found.extend(
                part.strip() for part in value.decode("latin-1").split(",") if part.strip()
            )
    return found


def wants_websocket(request: Request) -> bool:
    """Whether the request asks to upgrade to WebSocket (``Upgrade: websocket``)."""
    return any(token.lower() == "websocket" for token in _tokens(request, b"upgrade"))


def check_handshake(request: Request) -> Handshake:
    """The handshake of a request that :func:`wants_websocket`; raises :class:`HandshakeError`
    (400, or 426 naming version 13) when it breaks RFC 6455 section 4.2.1."""
    if request.method != "GET":
        raise HandshakeError(400, "a WebSocket handshake is a GET request")
    if request.http_version != "1.1":
        raise HandshakeError(400, "a WebSocket handshake needs HTTP/1.1")
    if request.chunked or request.content_length:
        raise HandshakeError(400, "a WebSocket handshake has no body")
    if not any(token.lower() == "upgrade" for token in _tokens(request, b"connection")):
        raise HandshakeError(400, "a WebSocket handshake needs 'Connection: Upgrade'")
    versions = _tokens(request, b"sec-websocket-version")
    if versions != [VERSION.decode()]:
        raise HandshakeError(
            426,
            "unsupported Sec-WebSocket-Version: this server speaks version 13",
            [(b"sec-websocket-version", VERSION)],
        )
    keys = [value for name, value in request.headers if name.lower() == b"sec-websocket-key"]
    if len(keys) != 1:
        raise HandshakeError(400, "a WebSocket handshake needs one Sec-WebSocket-Key")
    key = keys[0].strip()
    try:
        nonce = base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        nonce = b""
    if len(nonce) != 16:
        raise HandshakeError(400, "Sec-WebSocket-Key is not 16 bytes in base64")
    return Handshake(
        key=key,
        subprotocols=tuple(_tokens(request, b"sec-websocket-protocol")),
        extensions=tuple(_tokens(request, b"sec-websocket-extensions")),
    )


def accept_response(
    handshake: Handshake, subprotocol: str | None = None, headers: Headers | None = None
) -> bytes:
    """The ``101 Switching Protocols`` head accepting ``handshake``, with the app's chosen
    ``subprotocol`` (one the client offered) and its extra ``headers``; raises ValueError for a
    subprotocol not offered or a header holding a line break (the app's mistake)."""
    if subprotocol is not None and subprotocol not in handshake.subprotocols:
        raise ValueError(
            f"subprotocol {subprotocol!r} was not offered by the client "
            f"(offered: {', '.join(handshake.subprotocols) or 'none'})"
        )
    out = [
        b"HTTP/1.1 101 Switching Protocols\r\n",
        b"upgrade: websocket\r\n",
        b"connection: Upgrade\r\n",
        b"sec-websocket-accept: " + generate_accept_token(handshake.key) + b"\r\n",
    ]
    if subprotocol is not None:
        out.append(b"sec-websocket-protocol: " + subprotocol.encode("ascii") + b"\r\n")
    has_server = has_date = False
    for name, value in headers or ():
        if b"\r" in name or b"\n" in name or b"\r" in value or b"\n" in value or b":" in name:
            raise ValueError(f"header {name!r}: a name or value holds a line break or ':'")
        lname = name.lower()
        if lname in _OURS:
            continue
        has_server = has_server or lname == b"server"
        has_date = has_date or lname == b"date"
        out.append(b"%s: %s\r\n" % (name, value))
    if not has_server:
        out.append(b"server: " + SERVER_NAME + b"\r\n")
    if not has_date:
        out.append(b"date: " + http_date() + b"\r\n")
    out.append(b"\r\n")
    return b"".join(out)
