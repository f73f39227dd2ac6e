"""Static files from ``--root``: never by default, never outside the root, never key material.

The article runs its server in the folder that holds ``root.key`` and the P12s, so serving the
current directory by default would publish the CA's key; even with ``--root``, files that hold
keys are refused whatever their folder.
"""

from __future__ import annotations

import asyncio
import mimetypes
import os
from pathlib import Path

from mutls.apps.base import ResponseChannel, send_text
from mutls.apps.facts import ConnectionFacts
from mutls.http.events import Request

#: suffixes of files that hold private keys; never served.
KEY_SUFFIXES = (".key", ".pvk", ".p12", ".pfx", ".p8", ".jks", ".keystore")
CHUNK = 64 * 1024


def is_key_material(path: Path) -> bool:
    """True for files whose name says they hold a private key."""
    return path.name.lower().endswith(KEY_SUFFIXES)


class StaticFiles:
    """Serve files under ``root`` with GET and HEAD."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()

    def resolve(self, url_path: str) -> Path | None:
        """The file ``url_path`` names, or ``None`` when it must not (or cannot) be served."""
        parts = [p for p in url_path.split("/") if p not in ("", ".")]
        if any(p == ".." or "\\" in p or "\x00" in p for p in parts):
            return None
        candidate = self.root.joinpath(*parts)
        try:
            resolved = candidate.resolve(strict=True)
        except (OSError, RuntimeError):
            return None
        if resolved != self.root and self.root not in resolved.parents:
            return None  # a symlink out of the root
        if resolved.is_dir():
            resolved = resolved / "index.html"
            if not resolved.is_file():
                return None
        if not resolved.is_file() or is_key_material(resolved) or is_key_material(candidate):
            return None
        return resolved

    async def handle(
        self, request: Request, body: bytes, facts: ConnectionFacts, channel: ResponseChannel
    ) -> None:
        """Send the file, or 404 (also for key material: its existence is not revealed)."""
        if request.method not in ("GET", "HEAD"):
            await send_text(channel, 405, "method not allowed")
            return
        path = self.resolve(request.path)
        if path is None:
            await send_text(channel, 404, "not found")
            return
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        loop = asyncio.get_running_loop()
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            await channel.start(
                200,
                [
                    (b"content-type", kind.encode("ascii")),
                    (b"content-length", str(size).encode("ascii")),
                ],
            )
            if request.method == "GET":
                while chunk := await loop.run_in_executor(None, handle.read, CHUNK):
                    await channel.send(chunk)
                    if channel.disconnected:
                        return
        await channel.finish()
