"""--app-timeout: a watchdog on an app's silence, not a deadline, so streaming apps and slow
clients pass (time an app spends waiting for the client to read is --timeout-send's, not its).

One sweep per server, not a timer per request: a timer's call_later + cancel would cost more on
the hot path than the set add + discard done here.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from mutls.server.channel import Channel
from mutls.server.log import log, peer, printable

if TYPE_CHECKING:
    from mutls.apps.base import HTTPApp
    from mutls.apps.facts import ConnectionFacts
    from mutls.http.events import Request


class AppWatchdog:
    """The running apps of one server, checked a few times per timeout (``None``: never)."""

    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        self.running: set[Channel] = set()

    def watch(self, channel: Channel) -> None:
        """Start timing the app answering on ``channel``."""
        if self.timeout is not None:
            channel.last_output = channel.conn.loop.time()
            self.running.add(channel)

    def unwatch(self, channel: Channel) -> None:
        """Stop timing it (its app returned)."""
        self.running.discard(channel)

    def check(self, now: float) -> None:
        """Time out every app silent for the timeout (waiting for the client does not count)."""
        timeout = self.timeout
        if timeout is None:
            return
        for channel in list(self.running):
            if not channel.waiting_for_client and now - channel.last_output >= timeout:
                self.running.discard(channel)
                channel.time_out()

    async def run(self) -> None:
        """Sweep until cancelled (once a second, or four times per timeout when shorter)."""
        if self.timeout is None:
            return
        interval = min(1.0, self.timeout / 4)
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval)
            self.check(loop.time())

    async def serve(
        self,
        app: HTTPApp,
        request: Request,
        body: bytes,
        facts: ConnectionFacts,
        channel: Channel,
        client: tuple[str, int] | None,
    ) -> None:
        """Run ``app`` for one request under the watch, whatever the HTTP version: an app
        that fails is a 500, one silent past the timeout a 504 (its cancellation, ours, is
        handled here); a cancellation from elsewhere goes on."""
        self.watch(channel)
        try:
            await app.handle(request, body, facts, channel)
        except asyncio.CancelledError:
            if not channel.overdue:
                raise
        except Exception:
            if not channel.overdue:
                log.exception("serving %s %s failed", request.method, printable(request.path))
                channel.fail(request, 500, "internal server error")
        finally:
            self.unwatch(channel)
        if channel.overdue:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                task.uncancel()  # the cancellation was ours, and it is handled
            log.error(
                "%s %s from %s: no output from the app for %g s (--app-timeout): 504",
                request.method,
                printable(request.path),
                peer(client),
                self.timeout,
            )
            channel.fail(request, 504, "the app did not answer in time")
