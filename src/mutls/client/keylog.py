"""TLS secrets in the NSS key-log format, so that Wireshark can decrypt a capture.

Each line is ``LABEL CLIENT_RANDOM_HEX SECRET_HEX`` (``CLIENT_RANDOM`` for TLS 1.2,
``CLIENT_HANDSHAKE_TRAFFIC_SECRET``, ``SERVER_TRAFFIC_SECRET_0``, … for TLS 1.3), exactly as
OpenSSL produces them. The file holds secrets: it is created 0600 and appended to, as browsers do
with ``SSLKEYLOGFILE``.
"""

from __future__ import annotations

import os
from pathlib import Path

from mutls.errors import UsageError

ENV_VAR = "SSLKEYLOGFILE"


def keylog_path(explicit: str | os.PathLike[str] | None) -> Path | None:
    """Where to write secrets: ``--keylog FILE``, else ``$SSLKEYLOGFILE``, else nowhere."""
    if explicit is not None:
        return Path(explicit)
    from_env = os.environ.get(ENV_VAR)
    return Path(from_env) if from_env else None


class KeyLog:
    """An append-only NSS key-log file, mode 0600."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            # An existing file may have been made readable by others: the secrets let anyone
            # with a capture read the traffic, so tighten it.
            os.fchmod(self._fd, 0o600)
        except OSError as exc:
            raise UsageError(
                f"{self.path}: cannot write the key log (--keylog): {exc.strerror}"
            ) from None

    def write(self, line: bytes) -> None:
        """Append one secret line (OpenSSL gives it without the newline)."""
        os.write(self._fd, line.rstrip(b"\n") + b"\n")

    def close(self) -> None:
        """Close the file."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
