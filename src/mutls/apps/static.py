"""Static files from ``--root``: never by default, never outside the root, never key material.

The article runs its server in the folder that holds ``root.key``, the P12s and ``poupou.pem``
(certificate and key, from ``pkcs12 -nodes``), so serving the current directory by default would
publish the CA's key; even with ``--root``, these are refused (docs/server.md says the same):

- a path that leads outside the root at any step: ``..``, a symlink to a file or directory
  outside, a directory whose ``index.html`` is such a symlink. Every step is resolved and
  checked, then the file actually opened is checked again (``/proc/self/fd``), so a symlink
  swapped in between does not lead out either;
- dot-files and dot-directories, by name or through a symlink (``.git``, ``.env``,
  ``.config/mutls``'s stores, editors' ``.swp`` copies): they are where tools keep what is not
  meant to be published, and no exception is made (``.well-known`` included);
- a file named like a key (``.key``, ``.p12`` ...), and, whatever its name, a file whose content
  is key material (:mod:`mutls.pki.sniff`): its first bytes are read from the open file and
  sniffed once, then sent as the body's first piece. A text file (no NUL byte in those first
  bytes: PEM bundles, key logs, pages) is scanned on as it is sent, and a private key further
  on (after a long certificate chain) ends the response before the key's block leaves.

A refusal is answered 404, as a missing file, so it does not reveal what exists, and logged
with the path and the reason (a warning for key material: a key sits in the served folder).
"""

from __future__ import annotations

import asyncio
import logging
import mimetypes
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from mutls.apps.base import ResponseChannel, send_text
from mutls.apps.facts import ConnectionFacts
from mutls.http.events import Request
from mutls.pki.sniff import SNIFF_BYTES, key_material, secret_text
from mutls.server.log import printable

log = logging.getLogger("mutls.static")

#: suffixes of files that hold private keys; never served, whatever they hold.
KEY_SUFFIXES = (".key", ".pvk", ".p12", ".pfx", ".p8", ".jks", ".keystore")
CHUNK = 64 * 1024
#: bytes of one piece scanned again with the next, so a PEM header or key log line split between
#: two is seen.
_OVERLAP = 256


def named_like_a_key(path: Path) -> bool:
    """True for files whose name says they hold a private key."""
    return path.name.lower().endswith(KEY_SUFFIXES)


class Refused(Exception):
    """A path answered 404: ``reason`` says why for the log, ``None`` for a plain miss."""

    def __init__(self, where: str, reason: str | None = None, *, secret: bool = False) -> None:
        super().__init__(f"{where}: {reason}")
        self.where = where
        self.reason = reason
        #: the file holds, or is named like, key material.
        self.secret = secret


@dataclass
class OpenedFile:
    """A file checked and open, with the bytes already read to check it."""

    handle: BinaryIO
    path: Path
    size: int
    head: bytes
    #: a text file, whose rest is scanned for key material as it is sent.
    text: bool


class StaticFiles:
    """Serve files under ``root`` with GET and HEAD."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()

    def resolve(self, url_path: str) -> Path | None:
        """The file ``url_path`` names, or ``None`` when there is none or its path or name may
        not be served (its content is checked by :meth:`open`)."""
        try:
            return self._locate(url_path)
        except Refused:
            return None

    def open(self, url_path: str) -> OpenedFile | None:
        """Open and check the file ``url_path`` names, or ``None`` (a refusal is logged).

        Blocking (a read, and maybe a key parse): run it in an executor.
        """
        try:
            return self._open(self._locate(url_path))
        except Refused as refusal:
            if refusal.reason is not None:
                level = logging.WARNING if refusal.secret else logging.INFO
                log.log(level, "static file %s refused (404): %s", refusal.where, refusal.reason)
            return None

    def _locate(self, url_path: str) -> Path:
        parts = [p for p in url_path.split("/") if p not in ("", ".")]
        where = printable("/".join(parts)) or "."
        for part in parts:
            if "\\" in part or "\x00" in part:
                raise Refused(where, "a backslash or NUL in the path")
            if part.startswith("."):  # ".." too
                raise Refused(where, "a dot-file, a dot-directory or '..'")
        path = self._inside(self.root.joinpath(*parts), where)
        if path.is_dir():
            path = self._inside(path / "index.html", where)
        if not path.is_file():
            raise Refused(where)
        if named_like_a_key(path) or (parts and named_like_a_key(Path(parts[-1]))):
            raise Refused(where, "named like a key file", secret=True)
        return path

    def _inside(self, candidate: Path, where: str) -> Path:
        """``candidate`` with every symlink resolved, when that stays in the root."""
        try:
            resolved = candidate.resolve(strict=True)
        except (OSError, RuntimeError):
            raise Refused(where) from None
        try:
            inner = resolved.relative_to(self.root)
        except ValueError:
            raise Refused(where, f"leads outside the root (to {printable(resolved)})") from None
        if any(part.startswith(".") for part in inner.parts):
            raise Refused(where, f"leads to a dot-file or dot-directory ({printable(inner)})")
        return resolved

    def _open(self, path: Path) -> OpenedFile:
        where = printable(path.relative_to(self.root))
        try:
            # O_NOFOLLOW: the last step was resolved, a symlink there now is a swap; O_NONBLOCK:
            # a FIFO swapped in cannot hang the open.
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
            fd = os.open(path, flags)
        except OSError:
            raise Refused(where) from None
        handle = os.fdopen(fd, "rb")
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise Refused(where, "not a regular file")
            if not _opened_at(fd, path):
                raise Refused(where, "changed while being opened (a symlink swapped in?)")
            head = handle.read(SNIFF_BYTES)
            reason = key_material(head, whole=info.st_size <= len(head))
            if reason is not None:
                raise Refused(where, f"key material: {reason}", secret=True)
            return OpenedFile(handle, path, info.st_size, head, text=b"\x00" not in head)
        except BaseException:
            handle.close()
            raise

    async def handle(
        self, request: Request, body: bytes, facts: ConnectionFacts, channel: ResponseChannel
    ) -> None:
        """Send the file, or 404 (also for key material: its existence is not revealed)."""
        if request.method not in ("GET", "HEAD"):
            await send_text(channel, 405, "method not allowed")
            return
        loop = asyncio.get_running_loop()
        opened = await loop.run_in_executor(None, self.open, request.path)
        if opened is None:
            await send_text(channel, 404, "not found")
            return
        kind = mimetypes.guess_type(opened.path.name)[0] or "application/octet-stream"
        with opened.handle as handle:
            await channel.start(
                200,
                [
                    (b"content-type", kind.encode("ascii")),
                    (b"content-length", str(opened.size).encode("ascii")),
                ],
            )
            if request.method == "GET":
                chunk, tail = opened.head, b""
                while chunk:
                    if opened.text and tail and (reason := secret_text(tail + chunk)):
                        log.warning(
                            "static file %s cut off: key material further on: %s",
                            printable(opened.path.relative_to(self.root)),
                            reason,
                        )
                        channel.abort()
                        return
                    await channel.send(chunk)
                    if channel.disconnected:
                        return
                    tail = chunk[-_OVERLAP:]
                    chunk = await loop.run_in_executor(None, handle.read, CHUNK)
        await channel.finish()


def _opened_at(fd: int, path: Path) -> bool:
    """True when ``fd`` is the file at ``path`` (Linux says which file an fd is; elsewhere the
    path was checked just before)."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}") == str(path)
    except OSError:
        return True
