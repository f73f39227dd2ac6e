"""The one shape the server drives every app through, whatever the app's own interface.

The server owns the socket; an app adapter (WSGI, ASGI, the built-in pages) gets a request whose
body has been read, the connection's facts, and a :class:`ResponseChannel` to answer on.
"""

from __future__ import annotations

from typing import Protocol

from mutls.apps.facts import ConnectionFacts
from mutls.http.events import Headers, Request


class ResponseChannel(Protocol):
    """Where an adapter writes its response; every method waits while the client is slow."""

    async def start(self, status: int, headers: Headers) -> None:
        """Send the status line and headers."""

    async def send(self, data: bytes) -> None:
        """Send a piece of body."""

    async def finish(self) -> None:
        """End the response."""

    def abort(self) -> None:
        """Close the connection at once (an app failed after the head was sent)."""

    @property
    def disconnected(self) -> bool:
        """True once the client has gone."""

    async def wait_disconnected(self) -> None:
        """Return once the client has gone (ASGI's ``http.disconnect``)."""


class HTTPApp(Protocol):
    """An app as the server sees it."""

    async def startup(self) -> None:
        """Run before the first connection is accepted (ASGI lifespan startup)."""

    async def shutdown(self) -> None:
        """Run after the last connection is closed (ASGI lifespan shutdown)."""

    async def handle(
        self, request: Request, body: bytes, facts: ConnectionFacts, channel: ResponseChannel
    ) -> None:
        """Answer one request on ``channel``."""


async def send_text(channel: ResponseChannel, status: int, text: str) -> None:
    """A whole plain-text response."""
    body = text.encode("utf-8") + b"\n"
    await channel.start(
        status,
        [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode("ascii")),
        ],
    )
    await channel.send(body)
    await channel.finish()
