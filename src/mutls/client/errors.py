"""Failures of a client request, each with the exit code ``mutls get`` ends with."""

from __future__ import annotations

from mutls.errors import MutlsError


class TLSFailure(MutlsError):
    """The TLS handshake (or a TLS alert after it) ended the exchange: exit 3."""

    exit_code = 3


class ConnectFailure(MutlsError):
    """No TCP connection, a time-out, or the peer closed before answering: exit 4."""

    exit_code = 4
