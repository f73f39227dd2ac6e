"""Errors that end a client request, each with the exit code ``mutls get`` ends with."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mutls.errors import MutlsError

if TYPE_CHECKING:
    from mutls.client.connection import HandshakeRecord


class ClientTLSError(MutlsError):
    """The TLS handshake (or a TLS alert after it) ended the exchange: exit 3.

    ``record`` is what the handshake got to, for ``-v``.
    """

    exit_code = 3

    def __init__(self, message: str, record: HandshakeRecord | None = None) -> None:
        super().__init__(message)
        self.record = record


class ConnectError(MutlsError):
    """No TCP connection, a time-out, or the peer closed before answering: exit 4."""

    exit_code = 4
