"""``--reload-on-change``: notice that a file the server was started from changed.

By polling, not inotify: it works the same on every system and filesystem (NFS, a container's
bind mount, Kubernetes' secret volumes, whose files change by a swapped symlink), and a stat of
a dozen files a second costs nothing. A file is its ``(inode, size, mtime_ns, ctime_ns)``
through symlinks, so both ways tools write are seen: a new file renamed over the old one
(cert-manager, ``mv``, an editor's save) changes the inode; a rewrite in place changes the size
or the times. A folder (a certificate store) is every file under it, two levels deep.

A change is reported once the files have held still for ``settle`` seconds, so that a file
being written (a certificate now, its key a moment later) is read whole; a change that then
fails to load is reported again only when something changes again.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable

#: how often the files are looked at, and how long they must hold still before a reload.
POLL_S = 1.0
SETTLE_S = 1.0

Snapshot = tuple[tuple[str, tuple[int, ...] | None], ...]


def _stat(path: str) -> tuple[int, ...] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode)


def _folder(path: str, depth: int = 2) -> list[tuple[str, tuple[int, ...] | None]]:
    found: list[tuple[str, tuple[int, ...] | None]] = []
    try:
        entries = sorted(os.scandir(path), key=lambda entry: entry.name)
    except OSError:
        return found
    for entry in entries:
        if entry.is_dir(follow_symlinks=True):
            if depth > 1:
                found += _folder(entry.path, depth - 1)
        else:
            found.append((entry.path, _stat(entry.path)))
    return found


def snapshot(paths: Iterable[str]) -> Snapshot:
    """What the files and folders look like now (a missing one is ``None``)."""
    seen: list[tuple[str, tuple[int, ...] | None]] = []
    for path in paths:
        seen.append((path, _stat(path)))
        if os.path.isdir(path):
            seen += _folder(path)
    return tuple(seen)


class FileWatcher:
    """Polled with :meth:`poll`: ``True`` once per change, after it has settled."""

    def __init__(
        self,
        paths: Iterable[str],
        *,
        settle: float = SETTLE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.paths = tuple(paths)
        self.settle = settle
        self._clock = clock
        self._seen = snapshot(self.paths)
        self._changed_at: float | None = None

    def poll(self) -> bool:
        """Look at the files; ``True`` when they changed and have held still since."""
        now = self._clock()
        current = snapshot(self.paths)
        if current != self._seen:
            self._seen = current
            self._changed_at = now
            return False
        if self._changed_at is not None and now - self._changed_at >= self.settle:
            self._changed_at = None
            return True
        return False
