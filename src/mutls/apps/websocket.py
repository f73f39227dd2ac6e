"""The ASGI ``websocket`` scope (spec 2.4): what an ASGI app sees of a WebSocket.

The scope is the request's ``http`` scope (:func:`mutls.apps.asgi.http_scope`) with the
websocket fields: the same ``extensions`` (``tls`` and ``mutls``, rendered once per connection
from the connection's facts), so ``mutls.client_certificate(scope)`` and the verdict are the
very objects an HTTP request on that connection gets. The server has already refused, with a
403 and before the app runs, a connection its policy refuses.

The app drives a :class:`WebSocketChannel` (the server's side, ``mutls.server.websocket``):
``websocket.accept`` (headers, subprotocol), ``websocket.send``/``websocket.receive`` (text
or bytes), ``websocket.close`` (code, reason; before accept it is a 403), and the denial
response ``websocket.http.response.start``/``.body``. An app that returns without accepting
is answered 403 (500 when it raised); one that returns after accepting closes with 1000 (1011
when it raised). ``send`` after the connection closed raises :class:`ClientDisconnected`, an
``OSError`` (spec 2.4).
"""

from __future__ import annotations

import enum
import logging
from typing import Any, Protocol

from mutls.apps.asgi import ASGIApplication, Message, Scope, http_scope
from mutls.apps.base import ResponseChannel, send_text
from mutls.apps.facts import ConnectionFacts
from mutls.http.events import Headers, Request

log = logging.getLogger("mutls.app")

WEBSOCKET_ASGI = {"version": "3.0", "spec_version": "2.4"}
#: what the app is told when the connection ended without a close frame.
ABNORMAL = 1006


class ClientDisconnected(OSError):
    """``websocket.send`` on a WebSocket that is closed (ASGI spec 2.4)."""


class WebSocketChannel(Protocol):
    """The server's side of one WebSocket handshake and of the WebSocket after it."""

    async def accept(self, subprotocol: str | None, headers: Headers) -> None:
        """Send the ``101``; ValueError for a subprotocol the client did not offer."""

    async def receive(self) -> str | bytes | tuple[int, str]:
        """The next message, or ``(code, reason)`` once the WebSocket is closed."""

    async def send(self, data: str | bytes) -> None:
        """Send a message; raises :class:`ClientDisconnected` once closed."""

    async def close(self, code: int, reason: str) -> None:
        """Start the closing handshake."""

    def response(self) -> ResponseChannel:
        """An HTTP response in place of the ``101`` (a refusal or the app's denial)."""

    async def wait_closed(self) -> tuple[int, str]:
        """Return ``(code, reason)`` once the client has gone (before an accept)."""


def websocket_scope(
    request: Request, facts: ConnectionFacts, state: dict[str, Any], subprotocols: tuple[str, ...]
) -> Scope:
    """The ASGI ``websocket`` scope: the request's ``http`` scope (the same ``extensions``)
    with the websocket fields."""
    scope = http_scope(request, facts, state)
    del scope["method"]
    scope["type"] = "websocket"
    scope["asgi"] = WEBSOCKET_ASGI
    scope["scheme"] = "wss" if facts.tls is not None else "ws"
    scope["subprotocols"] = list(subprotocols)
    scope["extensions"]["websocket.http.response"] = {}
    return scope


class _State(enum.Enum):
    CONNECTING = 0
    ACCEPTED = 1
    DENYING = 2  # the app's own HTTP response is under way
    DONE = 3  # answered by HTTP (denied, refused) or closed


async def run_websocket(
    app: ASGIApplication,
    request: Request,
    facts: ConnectionFacts,
    state: dict[str, Any],
    subprotocols: tuple[str, ...],
    channel: WebSocketChannel,
) -> None:
    """Run the app for one WebSocket handshake, and the WebSocket if it accepts."""
    exchange = _WebSocketExchange(channel)
    scope = websocket_scope(request, facts, state, subprotocols)
    failed = False
    try:
        await app(scope, exchange.receive, exchange.send)
    except ClientDisconnected:  # the client left while the app spoke: its leaving, no app bug
        log.debug("ASGI app %r sent on a closed WebSocket", app)
    except Exception:
        log.exception("ASGI app %r failed on a WebSocket", app)
        failed = True
    await exchange.finish(failed)


class _WebSocketExchange:
    """``receive`` and ``send`` for one WebSocket."""

    def __init__(self, channel: WebSocketChannel) -> None:
        self.channel = channel
        self.state = _State.CONNECTING
        self.connected = False  # websocket.connect was handed out
        self.closed: tuple[int, str] | None = None
        self.denial: ResponseChannel | None = None
        self.denial_status = 0
        self.denial_headers: Headers = []

    async def receive(self) -> Message:
        if not self.connected:
            self.connected = True
            return {"type": "websocket.connect"}
        if self.state is _State.ACCEPTED and self.closed is None:
            got = await self.channel.receive()
            if isinstance(got, str):
                return {"type": "websocket.receive", "text": got}
            if isinstance(got, bytes):
                return {"type": "websocket.receive", "bytes": got}
            self.closed = got
        if self.closed is None:
            self.closed = await self.channel.wait_closed()
        code, reason = self.closed
        return {"type": "websocket.disconnect", "code": code, "reason": reason}

    async def send(self, message: Message) -> None:
        kind = message["type"]
        state = self.state
        if kind == "websocket.send":
            if state is _State.ACCEPTED and self.closed is None:
                await self.channel.send(_payload(message))
                return
            if state is _State.CONNECTING:
                raise RuntimeError("websocket.send before websocket.accept")
            raise ClientDisconnected("the WebSocket is closed")
        if kind == "websocket.accept":
            if state is not _State.CONNECTING:
                raise RuntimeError(f"websocket.accept in state {state.name.lower()}")
            headers = [(bytes(k), bytes(v)) for k, v in message.get("headers", [])]
            await self.channel.accept(message.get("subprotocol"), headers)
            self.state = _State.ACCEPTED
        elif kind == "websocket.close":
            if state is _State.CONNECTING:
                self.state = _State.DONE
                await send_text(self.channel.response(), 403, "the app refused the WebSocket")
            elif state is _State.ACCEPTED:
                self.state = _State.DONE
                if self.closed is None:
                    code = int(message.get("code") or 1000)
                    await self.channel.close(code, str(message.get("reason") or ""))
            # else: a close after the end changes nothing
        elif kind == "websocket.http.response.start":
            if state is not _State.CONNECTING:
                raise RuntimeError("websocket.http.response.start after the handshake")
            self.state = _State.DENYING
            self.denial_status = int(message["status"])
            self.denial_headers = [(bytes(k), bytes(v)) for k, v in message.get("headers", [])]
        elif kind == "websocket.http.response.body":
            await self._deny(message)
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} on a WebSocket")

    async def _deny(self, message: Message) -> None:
        if self.state is not _State.DENYING:
            raise RuntimeError("websocket.http.response.body without a response start")
        body = message.get("body", b"")
        if not isinstance(body, bytes | bytearray | memoryview):
            raise TypeError(f"websocket.http.response.body: body must be bytes, not {body!r}")
        if self.denial is None:
            self.denial = self.channel.response()
            await self.denial.start(self.denial_status, self.denial_headers)
        if body:
            await self.denial.send(bytes(body))
        if not message.get("more_body", False):
            self.state = _State.DONE
            await self.denial.finish()

    async def finish(self, failed: bool) -> None:
        """The app returned (or raised): end what it left open."""
        if self.state is _State.CONNECTING:
            if not failed:
                log.error("ASGI app returned without accepting the WebSocket: 403")
            status, text = (500, "internal server error") if failed else (403, "forbidden")
            await send_text(self.channel.response(), status, text)
        elif self.state is _State.ACCEPTED:
            if self.closed is None:
                await self.channel.close(1011 if failed else 1000, "")
        elif self.state is _State.DENYING:
            if self.denial is None:  # the head waits for the first body: it can still be 500
                await send_text(self.channel.response(), 500, "internal server error")
            else:
                self.denial.abort()  # a denial half sent cannot be completed honestly
        self.state = _State.DONE


def _payload(message: Message) -> str | bytes:
    """The one of ``text`` and ``bytes`` a ``websocket.send`` carries."""
    text, data = message.get("text"), message.get("bytes")
    if text is not None and data is None:
        if not isinstance(text, str):
            raise TypeError(f"websocket.send: text must be str, not {type(text).__name__}")
        return text
    if data is not None and text is None:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"websocket.send: bytes must be bytes, not {type(data).__name__}")
        return bytes(data)
    raise ValueError("websocket.send needs exactly one of 'text' and 'bytes'")
