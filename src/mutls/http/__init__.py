"""Sans-I/O HTTP/1.1 on httptools: bytes in, request events out; responses to bytes."""

from mutls.http.connection import HTTPConnection, HTTPLimits
from mutls.http.events import (
    ConnectionClosed,
    Data,
    EndOfMessage,
    Event,
    Headers,
    ProtocolViolation,
    Request,
)
from mutls.http.response import ResponseWriter, simple_response

__all__ = [
    "ConnectionClosed",
    "Data",
    "EndOfMessage",
    "Event",
    "HTTPConnection",
    "HTTPLimits",
    "Headers",
    "ProtocolViolation",
    "Request",
    "ResponseWriter",
    "simple_response",
]
