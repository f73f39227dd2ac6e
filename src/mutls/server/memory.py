"""Giving memory back to the system after a burst of connections.

Each TLS connection costs tens of kilobytes, most of it OpenSSL's buffers, allocated with
``malloc``. When a burst of connections ends (an attack that held hundreds of half-handshakes,
a traffic peak), glibc keeps the freed memory in its heap for reuse instead of returning it:
the server's RSS stays at the burst's level although nothing is leaked (measured with ``make
soak``: 43 MiB before 400 held connections, 69 MiB after them; with this, 47 MiB). So the
server samples its connection count, and when it has dropped by :data:`MIN_DROP` or more from
its peak, asks glibc to return free pages (``malloc_trim(0)``, a few milliseconds, at most every
:data:`MIN_INTERVAL_S`). A flood of short connections, one at a time, never makes a peak: so
the resident size is sampled too, and a growth of :data:`MIN_GROWTH` since the last trim trims
as well (measured with ``bench/flood.py``: 1,000 refused 96 KB chains left 49 MiB from 42).
Elsewhere than glibc, nothing is done.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import time
from collections.abc import Callable

#: seconds between samples of the connection count.
SAMPLE_S = 1.0
#: connections that must have gone since the peak before memory is trimmed.
MIN_DROP = 64
#: seconds between two trims at least.
MIN_INTERVAL_S = 5.0
#: resident bytes grown since the last trim (or the start) that make a trim worth its cost.
MIN_GROWTH = 2 * 1024 * 1024
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_bytes() -> int | None:
    """This process's resident size (Linux), or ``None`` where it cannot be read."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


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
        resident: Callable[[], int | None] = resident_bytes,
        min_growth: int = MIN_GROWTH,
    ) -> None:
        self.connections = connections
        self.trim = trim if trim is not None else malloc_trim()
        self.resident = resident
        self.min_growth = min_growth
        self._resident_after = resident()
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
        if self.trim is None or now - self._last < self.min_interval:
            return False
        if self.peak - count < self.min_drop and not self._grown():
            return False
        self.trim()
        self.trims += 1
        self.peak = count
        self._last = now
        self._resident_after = self.resident()
        return True

    def _grown(self) -> bool:
        """Whether the resident size grew by ``min_growth`` since the last trim."""
        now, then = self.resident(), self._resident_after
        return now is not None and then is not None and now - then >= self.min_growth

    async def run(self, sample_s: float = SAMPLE_S) -> None:
        """Sample for ever (cancel the task to stop)."""
        if self.trim is None:
            return
        while True:
            await asyncio.sleep(sample_s)
            self.tick()
