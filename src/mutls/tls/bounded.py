"""A cache bounded in entries and in bytes, oldest out: what resumption keeps per process.

The chain hints and the verdicts (:mod:`mutls.tls.context`, :mod:`mutls.tls.verdicts`) hold
what clients sent; a client that never repeats itself must not grow them, so both count the
bytes they hold, not only their entries, through this one piece of bookkeeping.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class BoundedCache(Generic[K, V]):
    """Entries in insertion order; past ``max_entries`` or ``max_bytes`` the oldest go. An
    entry larger than ``max_item_bytes`` is never kept (it would push everything else out)."""

    def __init__(
        self, max_bytes: int, *, max_item_bytes: int, max_entries: int | None = None
    ) -> None:
        self._entries: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._bytes = 0
        self.max_bytes = max_bytes
        self.max_item_bytes = max_item_bytes
        self.max_entries = max_entries

    @property
    def size(self) -> tuple[int, int]:
        """(entries, bytes held)."""
        return len(self._entries), self._bytes

    def __contains__(self, key: K) -> bool:
        return key in self._entries

    def get(self, key: K) -> V | None:
        """The value kept for ``key``, or ``None``."""
        entry = self._entries.get(key)
        return entry[0] if entry is not None else None

    def touch(self, key: K) -> None:
        """Count ``key`` as the newest entry."""
        self._entries.move_to_end(key)

    def put(self, key: K, value: V, size: int) -> bool:
        """Keep ``value`` (``size`` bytes) for ``key``, the newest; False when too large."""
        if size > self.max_item_bytes:
            return False
        self.pop(key)
        self._entries[key] = (value, size)
        self._bytes += size
        limit = self.max_entries
        while self._bytes > self.max_bytes or (limit is not None and len(self._entries) > limit):
            self.pop(next(iter(self._entries)))
        return True

    def pop(self, key: K) -> None:
        """Forget ``key`` (nothing when it is not kept)."""
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= entry[1]

    def clear(self) -> None:
        """Forget everything."""
        self._entries.clear()
        self._bytes = 0
