"""The streams of an HTTP/2 connection, as the app sees them: each stream is the
:class:`~mutls.server.channel.ChannelConnection` of one request, and its
:class:`HTTP2Channel` the :class:`~mutls.apps.base.ResponseChannel` the app answers on, in
HEADERS and DATA frames within the client's windows (waits are the connection's:
:mod:`mutls.server.http2`).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from mutls.http.events import Headers, Request
from mutls.http.http2 import ErrorCodes
from mutls.http.response import ResponseWriter
from mutls.server.channel import Channel

if TYPE_CHECKING:
    from mutls.server.http2 import HTTP2Protocol


class HTTP2Stream:
    """One stream: the :class:`~mutls.server.channel.ChannelConnection` its channel answers
    on (waits are the connection's; a reset or closed stream is ``lost``)."""

    def __init__(self, conn: HTTP2Protocol, stream_id: int, request: Request) -> None:
        self.conn = conn
        self.loop = conn.loop
        self.stream_id = stream_id
        self.request = request
        #: when the request arrived (its duration in the access log and metrics).
        self.started = self.loop.time()
        self.task: asyncio.Task[None] | None = None
        self.refused = False
        self._lost = False
        self._gone: asyncio.Future[None] = self.loop.create_future()
        self.channel = HTTP2Channel(self, ResponseWriter(request, keep_alive=True))

    @property
    def lost(self) -> bool:
        """The stream was reset or the connection is gone."""
        return self._lost or self.conn.lost

    @property
    def write_paused(self) -> bool:
        """The socket's buffer is full."""
        return self.conn.write_paused

    @property
    def closing(self) -> bool:
        """A graceful stop is under way."""
        return self.conn.closing

    def write(self, data: bytes) -> None:
        """Not used: an HTTP/2 channel frames its own output."""
        raise NotImplementedError

    async def drain(self) -> None:
        """Wait while the socket's buffer is full."""
        await self.conn.drain()

    def abort(self) -> None:
        """The app failed mid-response: reset this stream only."""
        if not self.lost:
            self.conn.http.reset(self.stream_id, ErrorCodes.INTERNAL_ERROR)
            self.conn._flush()
        self.gone()

    async def wait_lost(self) -> None:
        """Return once the stream is reset or the connection gone."""
        await asyncio.shield(self._gone)

    def gone(self) -> None:
        """The stream is over for the app (reset, or the connection closed)."""
        self._lost = True
        if not self._gone.done():
            self._gone.set_result(None)


class HTTP2Channel(Channel):
    """The :class:`~mutls.apps.base.ResponseChannel` of one stream: HEADERS and DATA frames
    within the client's windows."""

    stream: HTTP2Stream

    def __init__(self, stream: HTTP2Stream, writer: ResponseWriter) -> None:
        super().__init__(stream, writer)
        self.stream = stream
        self.finished = False
        self._status = 0
        self._headers: Headers = []
        self._no_body = stream.request.method == "HEAD"

    async def start(self, status: int, headers: Headers) -> None:
        """Hold the head back for the first body bytes (or the end)."""
        if self.detached:
            return
        if self.committed:
            raise RuntimeError("response already started")
        self._status = self.writer.status = status
        self._headers = headers
        if status < 200 or status in (204, 304):
            self._no_body = True

    def _send_head(self, *, end: bool) -> bool:
        stream = self.stream
        if stream.lost or not self._status:
            return False
        if not self.committed:
            self.committed = True
            stream.conn.http.send_head(stream.stream_id, self._status, self._headers, end=end)
            if end:
                self.finished = True
            stream.conn.flush_soon()
        return True

    async def send(self, data: bytes) -> None:
        """Body bytes, a frame at a time as the windows allow; waits while the client is
        slow (its window closed, or the socket full)."""
        if self.detached:
            return
        if not self._send_head(end=False) or self._no_body:
            return
        stream, conn = self.stream, self.stream.conn
        self.sent += len(data)
        view = memoryview(data)
        while view and not stream.lost:
            window = conn.http.window(stream.stream_id)
            if window <= 0:
                self.waiting_for_client = True
                await conn.wait_window()
                self.waiting_for_client = False
                continue
            conn.http.send_data(stream.stream_id, bytes(view[:window]))
            view = view[window:]
            conn.flush_soon(window)
            if conn.write_paused:
                self.waiting_for_client = True
                await conn.drain()
                self.waiting_for_client = False
        self.last_output = self.loop_time()

    def loop_time(self) -> float:
        """The loop's clock (for --app-timeout)."""
        return self.stream.loop.time()

    async def finish(self) -> None:
        """End the response (END_STREAM)."""
        if self.detached or self.finished:
            return
        stream = self.stream
        if stream.lost:
            return
        if not self.committed:
            self._send_head(end=True)
            return
        self.finished = True
        with contextlib.suppress(Exception):
            stream.conn.http.end_stream(stream.stream_id)
        stream.conn.flush_soon()

    async def send_trailers(self, headers: Headers) -> None:
        """Response trailers (a HEADERS frame with END_STREAM): the end of the response."""
        if self.detached or self.finished:
            return
        stream = self.stream
        if stream.lost or not self._send_head(end=False):
            return
        self.finished = True
        stream.conn.http.send_trailers(stream.stream_id, headers)
        stream.conn.flush_soon()

    def fail(self, request: Request, status: int, text: str) -> None:
        """The server's answer in place of the app's: a reset when the app's response has
        begun, else a plain-text response (sent within the window, or a reset)."""
        self.detached = True
        stream = self.stream
        if stream.lost:
            return
        http = stream.conn.http
        body = text.encode("utf-8") + b"\n"
        if self.committed or http.window(stream.stream_id) < len(body):
            http.reset(stream.stream_id, ErrorCodes.INTERNAL_ERROR)
        else:
            self.committed = self.finished = True
            self.writer.status = status
            self.sent = len(body)
            http.send_head(
                stream.stream_id,
                status,
                [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", b"%d" % len(body)),
                ],
                end=False,
            )
            http.send_data(stream.stream_id, body, end=True)
        stream.conn.flush_soon()
