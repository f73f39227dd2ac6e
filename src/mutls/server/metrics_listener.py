"""The ``--metrics-address`` listener: plain HTTP on a thread of the process that holds the
metrics table (the supervisor, or the one serving process), answering ``GET /metrics`` and
``GET /health`` and nothing else; one request per connection, bounded in size and time.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from typing import TYPE_CHECKING

from mutls.server.log import log, startup_log
from mutls.server.metrics import CONTENT_TYPE, MetricsTable, exposition_lines

if TYPE_CHECKING:
    from mutls.server.config import ServerConfig
    from mutls.tls.context import ServerContext


#: connections the listener holds at once (a new one beyond closes the oldest).
MAX_CONNECTIONS = 32
#: seconds a client has to send its request head, and to read the answer.
TIMEOUT = 10.0


class MetricsService:
    """The table and the plain-HTTP listener of ``--metrics-address`` (in the supervisor, or
    in the one serving process)."""

    def __init__(self, config: ServerConfig, context: ServerContext | None, slots: int) -> None:
        where = config.metrics_listen
        assert where is not None
        host, port = where
        self.table = MetricsTable(slots)
        self.table.trust_generation = 1
        self.context = context
        self.stopping = False
        #: the connections being answered, oldest first.
        self._open: dict[asyncio.Task[None], None] = {}
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            self.sock = socket.create_server((host, port), family=family, backlog=64)
        except OSError as exc:
            from mutls.server.server import ServerStartError

            raise ServerStartError(
                f"cannot listen on --metrics-address {host}:{port}: {exc.strerror}"
            ) from None
        self.sock.setblocking(False)
        self.address = self.sock.getsockname()[:2]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._main, name="mutls-metrics", daemon=True)
        self._started = threading.Event()

    def start(self) -> None:
        """Serve ``/metrics`` and ``/health`` on a thread of this process."""
        self._thread.start()
        self._started.wait(10)
        host, port = self.address
        shown = f"[{host}]" if ":" in host else host
        startup_log.info("metrics on http://%s:%d/metrics, health on /health", shown, port)

    def stop(self) -> None:
        """Stop the listener (bounded wait)."""
        self.stopping = True
        loop = self._loop
        if loop is not None and self._thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            self._thread.join(5)
        with contextlib.suppress(OSError):
            self.sock.close()

    def _main(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            server = loop.run_until_complete(
                asyncio.start_server(self._answer, sock=self.sock, limit=8192)
            )
            self._started.set()
            loop.run_forever()
            server.close()
            # connections still open (a scraper mid-request, an idle one) end here, while
            # the loop can still close their transports
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        except Exception:  # the listener must never take the server down
            log.exception("the metrics listener stopped")
        finally:
            self._started.set()
            loop.close()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._open) >= MAX_CONNECTIONS:
            # full (clients that send nothing, say): the oldest makes room, so a load
            # balancer's check still gets through
            next(iter(self._open)).cancel()
        self._open[task] = None
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
            method, target = _request_line(head)
            status, body = self.page(method, target)
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: "
                f"{CONTENT_TYPE if target == '/metrics' else 'text/plain; charset=utf-8'}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode("ascii")
                + (b"" if method == "HEAD" else body)
            )
            await asyncio.wait_for(writer.drain(), TIMEOUT)
        except (
            OSError,
            TimeoutError,
            asyncio.CancelledError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
        ):
            pass  # the client is gone, too slow, or made room: nothing to answer
        finally:
            self._open.pop(task, None)
            writer.close()

    def page(self, method: str, target: str) -> tuple[str, bytes]:
        """(status line, body) for one request."""
        path = target.split("?", 1)[0]
        if path not in ("/metrics", "/health"):
            return "404 Not Found", b"not found: /metrics and /health are served here\n"
        if method not in ("GET", "HEAD"):
            return "405 Method Not Allowed", b"GET or HEAD\n"
        if path == "/health":
            _totals, ready = self.table.totals()
            if ready and not self.stopping:
                return "200 OK", b"ok\n"
            return "503 Service Unavailable", b"not serving\n"
        return "200 OK", self.exposition().encode("utf-8")

    def exposition(self) -> str:
        """Every metric in Prometheus's text format."""
        return "".join(exposition_lines(self.table, self.context))


def _request_line(head: bytes) -> tuple[str, str]:
    parts = head.split(b"\r\n", 1)[0].split(b" ")
    if len(parts) != 3:
        return "", ""
    return parts[0].decode("latin-1"), parts[1].decode("latin-1")
