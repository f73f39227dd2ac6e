"""A server on a background thread with its own event loop: for tests and for embedding.

``with serve_in_thread(config) as running: ... running.ports[0] ...`` starts the server, waits
(bounded) until it listens, and stops it on exit.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from mutls.errors import MutlsError
from mutls.server.config import ServerConfig
from mutls.server.server import Server, new_event_loop


class RunningServer:
    """A server running on its own thread."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.server = Server(config)
        self.loop = new_event_loop()
        self.error: BaseException | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="mutls-server", daemon=True)

    @property
    def ports(self) -> list[int]:
        """The ports listened on."""
        return self.server.ports

    def start(self, timeout: float = 30) -> None:
        """Start and wait until it listens (or re-raise why it could not)."""
        self._thread.start()
        if not self._ready.wait(timeout):
            raise MutlsError(f"server did not start within {timeout} s")
        if self.error is not None:
            raise self.error

    def stop(self, timeout: float = 30) -> None:
        """Stop gracefully and wait for the thread."""
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.server.request_stop)
            self._thread.join(timeout)

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._serve())
        except BaseException as exc:
            self.error = exc
        finally:
            self._ready.set()
            self.loop.close()

    async def _serve(self) -> None:
        try:
            await self.server.prepare(out=None)
        except BaseException as exc:
            self.error = exc
            self.server.close_metrics()
            return
        finally:
            self._ready.set()
        await self.server.wait_stopped()
        await self.server.shutdown()


@contextmanager
def serve_in_thread(config: ServerConfig, timeout: float = 30) -> Iterator[RunningServer]:
    """Run ``config`` on a thread for the duration of a ``with`` block."""
    running = RunningServer(config)
    running.start(timeout)
    try:
        yield running
    finally:
        running.stop(timeout)
