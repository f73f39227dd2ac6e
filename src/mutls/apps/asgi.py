"""Run an ASGI 3 app: the ``http`` scope per request, ``lifespan`` in uvicorn's "auto" sense.

"auto" lifespan: the app is offered the lifespan scope; if it raises or returns without
answering, it is taken not to support lifespan and still serves requests. An app that answers
``lifespan.startup.failed`` stops the server.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from mutls.apps.base import ResponseChannel, send_text
from mutls.apps.facts import ConnectionFacts
from mutls.errors import MutlsError
from mutls.http.events import Headers, Request

if TYPE_CHECKING:
    from mutls.apps.websocket import WebSocketChannel

log = logging.getLogger("mutls.app")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApplication = Callable[[Scope, Receive, Send], Awaitable[None]]

ASGI_VERSION = {"version": "3.0", "spec_version": "2.3"}


class LifespanFailed(MutlsError):
    """The app answered ``lifespan.startup.failed`` (or failed at shutdown)."""


def http_scope(request: Request, facts: ConnectionFacts, state: dict[str, Any]) -> Scope:
    """The ASGI ``http`` scope of one request; ``extensions`` come from the connection."""
    return {
        "type": "http",
        "asgi": ASGI_VERSION,
        "http_version": request.http_version,
        "method": request.method,
        "scheme": facts.scheme,
        "path": request.path.encode("latin-1").decode("utf-8", "replace"),
        "raw_path": request.raw_path,
        "query_string": request.query,
        "root_path": "",
        "headers": [(name.lower(), value) for name, value in request.headers],
        "client": facts.client,
        "server": facts.server,
        "extensions": (
            {**facts.asgi_extensions, "http.response.trailers": {}}
            if request.http_version == "2"  # (HTTP/2 carries trailers on every response)
            else dict(facts.asgi_extensions)
        ),
        "state": dict(state),
    }


class ASGIAdapter:
    """Serve an ASGI 3 callable."""

    def __init__(self, app: ASGIApplication) -> None:
        self.app = app
        self.state: dict[str, Any] = {}
        self._lifespan: asyncio.Task[None] | None = None
        self._to_app: asyncio.Queue[Message] = asyncio.Queue()
        self._from_app: asyncio.Queue[Message] = asyncio.Queue()
        self._supported = True

    # -- lifespan ----------------------------------------------------------------------------

    async def startup(self) -> None:
        """Offer the lifespan scope; wait for the app's answer (or its refusal to play)."""
        scope = {"type": "lifespan", "asgi": ASGI_VERSION, "state": self.state}
        self._lifespan = asyncio.create_task(self._run_lifespan(scope))
        await self._to_app.put({"type": "lifespan.startup"})
        answer = await self._from_app.get()
        if answer["type"] == "lifespan.startup.failed":
            raise LifespanFailed(f"the app refused to start: {answer.get('message', '')}")

    async def _run_lifespan(self, scope: Scope) -> None:
        try:
            await self.app(scope, self._to_app.get, self._from_app.put)
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                raise
            log.debug("ASGI lifespan not supported by the app (%s)", exc)
        finally:
            self._supported = False
            await self._from_app.put({"type": "lifespan.unsupported"})

    async def shutdown(self) -> None:
        """Tell the app to shut down, if it took part in lifespan."""
        if self._lifespan is None or not self._supported or self._lifespan.done():
            return
        await self._to_app.put({"type": "lifespan.shutdown"})
        try:
            answer = await asyncio.wait_for(self._from_app.get(), timeout=30)
        except TimeoutError:
            log.warning("the app did not finish its lifespan shutdown in 30 s")
            self._lifespan.cancel()
            return
        if answer["type"] == "lifespan.shutdown.failed":
            log.error("the app failed to shut down: %s", answer.get("message", ""))

    # -- http --------------------------------------------------------------------------------

    async def handle(
        self, request: Request, body: bytes, facts: ConnectionFacts, channel: ResponseChannel
    ) -> None:
        """Run the app for one request."""
        exchange = _Exchange(body, channel)
        try:
            await self.app(http_scope(request, facts, self.state), exchange.receive, exchange.send)
        except Exception:
            log.exception("ASGI app %r failed", self.app)
            exchange.failed = True
        if exchange.finished:
            return
        if exchange.head_sent:
            channel.abort()  # a response half sent cannot be completed honestly
        elif not channel.disconnected:
            if not exchange.failed:
                log.error("ASGI app %r returned without a response", self.app)
            await send_text(channel, 500, "internal server error")

    # -- websocket ---------------------------------------------------------------------------

    async def handle_websocket(
        self,
        request: Request,
        subprotocols: tuple[str, ...],
        facts: ConnectionFacts,
        channel: WebSocketChannel,
    ) -> None:
        """Run the app for one WebSocket handshake (see :mod:`mutls.apps.websocket`)."""
        from mutls.apps.websocket import run_websocket

        await run_websocket(self.app, request, facts, self.state, subprotocols, channel)


class _Exchange:
    """``receive`` and ``send`` for one request."""

    def __init__(self, body: bytes, channel: ResponseChannel) -> None:
        self.body: bytes | None = body
        self.channel = channel
        self.status = 0
        self.headers: Headers = []
        self.head_sent = False
        self.finished = False
        self.failed = False
        #: the app announced trailers (``http.response.trailers``): the body's end waits for
        #: them, and they are gathered here until the last.
        self.trailers: Headers | None = None
        self.body_done = False

    async def receive(self) -> Message:
        if self.body is not None:
            body, self.body = self.body, None
            return {"type": "http.request", "body": body, "more_body": False}
        if not self.finished:  # once the response is sent, the request is over for the app
            await self.channel.wait_disconnected()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            if self.status:
                raise RuntimeError("http.response.start sent twice")
            self.status = int(message["status"])
            self.headers = [(bytes(k), bytes(v)) for k, v in message.get("headers", [])]
            if message.get("trailers", False):
                self.trailers = []
            return
        if kind == "http.response.trailers":
            await self._send_trailers(message)
            return
        if kind != "http.response.body":
            raise RuntimeError(f"unexpected ASGI message {kind!r}")
        if not self.status:
            raise RuntimeError("http.response.body before http.response.start")
        if self.finished:
            raise RuntimeError("http.response.body after the response ended")
        data = message.get("body", b"")
        if not isinstance(data, bytes | bytearray | memoryview):  # before the head: 500 possible
            raise TypeError(f"http.response.body: body must be bytes, not {type(data).__name__}")
        if self.channel.disconnected:
            return
        if not self.head_sent:
            await self.channel.start(self.status, self.headers)
            self.head_sent = True  # only now: a head the channel refused still allows a 500
        if data:
            await self.channel.send(bytes(data))
        if not message.get("more_body", False):
            if self.trailers is not None:
                self.body_done = True  # the end goes with the trailers
                return
            self.finished = True
            await self.channel.finish()

    async def _send_trailers(self, message: Message) -> None:
        """The ASGI ``http.response.trailers`` extension (offered over HTTP/2)."""
        if self.trailers is None or not self.body_done or self.finished:
            raise RuntimeError("http.response.trailers without trailers announced, or early")
        self.trailers += [(bytes(k), bytes(v)) for k, v in message.get("headers", [])]
        if message.get("more_trailers", False):
            return
        self.finished = True
        send_trailers = getattr(self.channel, "send_trailers", None)
        if send_trailers is not None:
            await send_trailers(self.trailers)
        else:
            await self.channel.finish()
