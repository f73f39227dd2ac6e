"""Run a WSGI app (PEP 3333) from the event loop, in a bounded thread pool.

The request body has been read by the server (within the body limit), so ``wsgi.input`` is an
in-memory file and the app never blocks the loop. The response goes back chunk by chunk: each
chunk waits for the loop to accept it, which is the backpressure a slow client exerts.
"""

from __future__ import annotations

import asyncio
import io
import logging
import sys
import time
from collections.abc import Callable, Coroutine, Iterable
from types import TracebackType
from typing import Any

from mutls.apps.base import ResponseChannel, send_text
from mutls.apps.facts import ConnectionFacts
from mutls.apps.threads import AppThreads
from mutls.http.events import Headers, Request

log = logging.getLogger("mutls.app")

#: seconds a client refused for lack of a thread is asked to wait (``Retry-After``).
RETRY_AFTER_S = b"1"

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
StartResponse = Callable[..., Callable[[bytes], None]]
WSGIApplication = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def wsgi_environ(request: Request, body: bytes, facts: ConnectionFacts) -> dict[str, Any]:
    """The PEP 3333 environ of one request; the TLS part is copied from the connection's."""
    env: dict[str, Any] = dict(facts.wsgi_environ)
    env["wsgi.url_scheme"] = facts.scheme  # a trusted proxy may have said (--proxy-headers)
    server_host, server_port = facts.server or ("localhost", 0)
    env.update(
        {
            "REQUEST_METHOD": request.method,
            "SCRIPT_NAME": "",
            "PATH_INFO": request.path,
            "QUERY_STRING": request.query.decode("latin-1"),
            "RAW_URI": request.target.decode("latin-1"),
            "SERVER_NAME": server_host,
            "SERVER_PORT": str(server_port),
            "SERVER_PROTOCOL": f"HTTP/{request.http_version}",
            "SERVER_SOFTWARE": "mutls",
            "wsgi.version": (1, 0),
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "CONTENT_LENGTH": str(len(body)) if body or request.content_length else "",
        }
    )
    if facts.client is not None:
        env["REMOTE_ADDR"], env["REMOTE_PORT"] = facts.client[0], str(facts.client[1])
    for name, value in request.headers:
        key = name.decode("latin-1").upper().replace("-", "_")
        text = value.decode("latin-1")
        if key == "CONTENT_TYPE":
            env["CONTENT_TYPE"] = text
            continue
        if key == "CONTENT_LENGTH" or key == "TRANSFER_ENCODING":
            continue
        key = "HTTP_" + key
        if key in env:  # repeated fields join with a comma, cookies with "; " (RFC 6265)
            text = f"{env[key]}{'; ' if key == 'HTTP_COOKIE' else ','}{text}"
        env[key] = text
    return env


class WSGIAdapter:
    """Serve a WSGI callable; at most ``threads`` requests run the app at once and
    ``thread_queue`` (default: as many) wait for a thread; more are answered 503."""

    def __init__(
        self, app: WSGIApplication, threads: int = 16, thread_queue: int | None = None
    ) -> None:
        self.app = app
        self.threads = threads
        self.thread_queue = threads if thread_queue is None else thread_queue
        self._pool: AppThreads | None = None
        self._busy_answers = 0
        self._busy_logged = 0.0

    async def startup(self) -> None:
        """Create the thread pool."""
        self._pool = AppThreads(self.threads, self.thread_queue)

    async def shutdown(self) -> None:
        """Let running requests finish, then drop the pool."""
        if self._pool is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._pool.shutdown)
            self._pool = None

    async def handle(
        self, request: Request, body: bytes, facts: ConnectionFacts, channel: ResponseChannel
    ) -> None:
        """Run the app in the pool; its output reaches ``channel`` through the loop."""
        if self._pool is None:
            await self.startup()
        assert self._pool is not None
        loop = asyncio.get_running_loop()
        environ = wsgi_environ(request, body, facts)
        run = _WSGIRun(self.app, environ, channel, loop)
        submitted = self._pool.submit(run)
        if submitted is None:
            await self._busy(channel)
            return
        job, future = submitted
        try:
            await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            # The server gave up (--app-timeout). A thread cannot be stopped: it runs on,
            # its output is dropped by the channel, and another thread takes its place.
            if self._pool.abandon(job):
                log.error(
                    "WSGI app %r still running after the app timeout: its thread is abandoned "
                    "(%d abandoned so far, %d still running)",
                    self.app,
                    self._pool.abandoned,
                    self._pool.stuck,
                )
            raise

    async def _busy(self, channel: ResponseChannel) -> None:
        """Every thread busy and the queue full: 503 at once, rather than a queue that grows
        until clients give up. Logged at most once a second (an overload is many of them)."""
        self._busy_answers += 1
        now = time.monotonic()
        if now - self._busy_logged >= 1.0:
            self._busy_logged = now
            log.warning(
                "WSGI threads all busy (%d running, %d waiting): answered 503 (%d so far)",
                self.threads,
                self.thread_queue,
                self._busy_answers,
            )
        text = b"server busy: try again shortly\n"
        await channel.start(
            503,
            [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(text)).encode("ascii")),
                (b"retry-after", RETRY_AFTER_S),
            ],
        )
        await channel.send(text)
        await channel.finish()


class _WSGIRun:
    """One call of the app, in a worker thread."""

    def __init__(
        self,
        app: WSGIApplication,
        environ: dict[str, Any],
        channel: ResponseChannel,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.app = app
        self.environ = environ
        self.channel = channel
        self.loop = loop
        self.status = 0
        self.headers: Headers = []
        self.head_sent = False

    def _call(self, coro: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def start_response(
        self,
        status: str,
        headers: list[tuple[str, str]],
        exc_info: ExcInfo | None = None,
    ) -> Callable[[bytes], None]:
        """PEP 3333's ``start_response``."""
        if exc_info is not None:
            try:
                if self.head_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status:
            raise AssertionError("start_response called twice without exc_info")
        code = int(status.split(" ", 1)[0])
        if not 100 <= code <= 999:
            raise ValueError(f"WSGI status {status!r} is not a three-digit code")
        self.status = code
        self.headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        return self.write

    def write(self, data: bytes) -> None:
        """PEP 3333's legacy ``write`` callable."""
        if not isinstance(data, bytes):  # checked before the head goes: a 500 is still possible
            raise TypeError(f"WSGI body chunks must be bytes, not {type(data).__name__}")
        self._send_head()
        if data:
            self._call(self.channel.send(data))

    def _send_head(self) -> None:
        if not self.head_sent:
            if not self.status:
                raise AssertionError("the app sent a body before calling start_response")
            self._call(self.channel.start(self.status, self.headers))
            self.head_sent = True  # only now: a head the channel refused still allows a 500

    def __call__(self) -> None:
        try:
            result = self.app(self.environ, self.start_response)
            try:
                for chunk in result:
                    if chunk:
                        self.write(chunk)
                    if self.channel.disconnected:
                        break
                self._send_head()
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
            self._call(self.channel.finish())
        except Exception:
            log.exception("WSGI app %r failed", self.app)
            if self.head_sent:
                self.loop.call_soon_threadsafe(self.channel.abort)
            else:
                self.head_sent = True
                self._call(_internal_error(self.channel))


async def _internal_error(channel: ResponseChannel) -> None:
    await send_text(channel, 500, "internal server error")
