"""Giving memory back to the system after a burst of connections.

Each TLS connection costs tens of kilobytes, most of it OpenSSL's buffers, allocated with
``malloc``. When a burst of connections ends (an attack that held hundreds of half-handshakes,
a traffic peak), glibc keeps the freed memory in its heap for reuse instead of returning it:
the server's RSS stays at the burst's level although nothing is leaked (measured with ``make
soak``: 43 MiB before 400 held connections, 69 MiB after them; with this, 47 MiB). So the
server samples its connection count, and when it has dropped by :data:`MIN_DROP` or more from
its peak, asks glibc to return free pages (``malloc_trim(0)``, a few milliseconds, at most every
:data:`MIN_INTERVAL_S`). Elsewhere than glibc, nothing is done.
"""

from __future__ import annotations

import asyncio
import ctypes
import time
from collections.abc import Callable

#: seconds between samples of the connection count.
SAMPLE_S = 1.0
#: connections that must have gone since the peak before memory is trimmed.
MIN_DROP = 64
#: seconds between two trims at least.
MIN_INTERVAL_S = 5.0


def malloc_trim() -> Callable[[], object] | None:
    """glibc's ``malloc_trim(0)``, or ``None`` where there is no such function."""
    try:
        function = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_size_t]
    function.restype = ctypes.c_int
    return lambda: function(0)


class MemoryTrimmer:
    """Trims the heap once the connection count has fallen well below its peak."""

    def __init__(
        self,
        connections: Callable[[], int],
        trim: Callable[[], object] | None = None,
        *,
        min_drop: int = MIN_DROP,
        min_interval: float = MIN_INTERVAL_S,
    ) -> None:
        self.connections = connections
        self.trim = trim if trim is not None else malloc_trim()
        self.min_drop = min_drop
        self.min_interval = min_interval
        self.peak = 0
        self.trims = 0
        self._last = -min_interval

    def tick(self, now: float | None = None) -> bool:
        """Sample the count; trim when it dropped enough since the peak. True if trimmed."""
        count = self.connections()
        self.peak = max(self.peak, count)
        now = time.monotonic() if now is None else now
        if self.trim is None or self.peak - count < self.min_drop:
            return False
        if now - self._last < self.min_interval:
            return False
        self.trim()
        self.trims += 1
        self.peak = count
        self._last = now
        return True

    async def run(self, sample_s: float = SAMPLE_S) -> None:
        """Sample for ever (cancel the task to stop)."""
        if self.trim is None:
            return
        while True:
            await asyncio.sleep(sample_s)
            self.tick()
