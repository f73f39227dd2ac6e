"""The app-facing side of one request: the :class:`~mutls.apps.base.ResponseChannel` an app
writes its response to, over the connection that carries it.

The connection (``server.protocol``) owns the socket and the request loop; a channel owns one
response: it holds the head back to send it with the first body bytes, waits while the client
is slow, drops what an app writes after the server gave up on it, and can put an error page in
place of a response that has not started.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from mutls.http.events import Headers, Request
from mutls.http.response import ResponseWriter


class ChannelConnection(Protocol):
    """What a channel needs of the connection it answers on."""

    loop: asyncio.AbstractEventLoop
    #: the task running the app (cancelled past --app-timeout).
    task: asyncio.Task[None] | None

    @property
    def write_paused(self) -> bool:
        """The socket's buffer is full: the next write waits in :meth:`drain`."""

    @property
    def lost(self) -> bool:
        """The connection (an HTTP/2 stream) is closed or closing: nothing more is sent."""

    @property
    def closing(self) -> bool:
        """A graceful stop is under way: the response in flight is the connection's last."""

    def write(self, data: bytes) -> None:
        """Send response bytes (through TLS when on)."""

    async def drain(self) -> None:
        """Wait while the socket's buffer is full."""

    def abort(self) -> None:
        """Drop the connection at once."""

    async def wait_lost(self) -> None:
        """Return once the socket is gone."""


class Channel:
    """The :class:`~mutls.apps.base.ResponseChannel` of one request."""

    def __init__(self, conn: ChannelConnection, writer: ResponseWriter) -> None:
        self.conn = conn
        self.writer = writer
        self.keep_alive = writer.keep_alive
        self.sent = 0
        # The head waits for the first body bytes: one write (one TLS record) instead of two.
        self._head = b""
        #: bytes of this response have reached the connection (no error page can replace it).
        self.committed = False
        #: the request is over for the app (failed, timed out): its output is dropped.
        self.detached = False
        #: the app went --app-timeout seconds without output (then it is cancelled/abandoned).
        self.overdue = False
        #: loop time of the app's last output, for --app-timeout (see server.watchdog).
        self.last_output = 0.0
        #: the app waits for a slow client to read, which is not the app's fault.
        self.waiting_for_client = False

    async def start(self, status: int, headers: Headers) -> None:
        """Send the status line and headers (with the first piece of body)."""
        if self.detached:
            return
        if self.writer.started:  # nothing sent yet (else head() refuses): an error page may
            self.writer = ResponseWriter(self.writer.request, keep_alive=self.keep_alive)
        if self.conn.closing:
            self.writer.keep_alive = False  # tell the client this connection ends here
        self._head = self.writer.head(status, headers)

    async def send(self, data: bytes) -> None:
        """Send a piece of body; waits while the client is slow."""
        if self.detached:
            return
        out = self.writer.body(data)
        self.sent += len(data)
        if self._head:
            out, self._head = self._head + out, b""
        self.committed = True
        self.conn.write(out)
        if self.conn.write_paused:
            self.waiting_for_client = True
            await self.conn.drain()
            self.waiting_for_client = False
        self.last_output = self.conn.loop.time()

    async def finish(self) -> None:
        """End the response."""
        if self.detached:
            return
        out = self.writer.end()
        if self._head:
            out, self._head = self._head + out, b""
        self.committed = True
        self.conn.write(out)

    def abort(self) -> None:
        """Drop the connection at once."""
        if not self.detached:  # an abandoned app must not cut the connection that moved on
            self.conn.abort()

    @property
    def disconnected(self) -> bool:
        """True once the client has gone (or the server stopped listening to the app)."""
        return self.conn.lost or self.detached

    async def wait_disconnected(self) -> None:
        """Return once the client has gone."""
        await self.conn.wait_lost()

    # -- the server's side ---------------------------------------------------------------------

    def fail(self, request: Request, status: int, text: str) -> None:
        """Answer ``status`` in place of the app's response; when part of that response has
        gone out already, it cannot be completed honestly, so the connection will close."""
        self.detached = True  # whatever the app still sends is dropped
        if self.committed:
            self.writer.keep_alive = False
            return
        writer = self.writer = ResponseWriter(request, keep_alive=self.keep_alive)
        body = text.encode("utf-8") + b"\n"
        head = writer.head(
            status,
            [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", b"%d" % len(body)),
            ],
        )
        self.sent = len(body)
        self.conn.write(head + writer.body(body) + writer.end())

    def time_out(self) -> None:
        """The app went --app-timeout seconds without output: stop listening to it and cancel
        its task (an ASGI app stops there; a WSGI thread is abandoned by its adapter)."""
        self.overdue = self.detached = True
        task = self.conn.task
        if task is not None:
            task.cancel()
