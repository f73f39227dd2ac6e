"""``ResponseWriter``: one response turned into bytes, with the framing HTTP/1.1 needs.

The writer chooses the framing once, from the head: the app's ``Content-Length`` when it gives
one, else chunked for HTTP/1.1 clients, else (HTTP/1.0) the end of the connection. It never lets
an app send more than it declared, sends no body for HEAD, 1xx, 204 and 304, and says
``Connection: close`` whenever the connection will not be kept.
"""

from __future__ import annotations

import time
from email.utils import formatdate
from http import HTTPStatus

from mutls.http.events import Headers, Request

SERVER_NAME = b"mutls"
_REASONS = {s.value: s.phrase.encode("ascii") for s in HTTPStatus}
_date_cache: tuple[int, bytes] = (0, b"")


def http_date() -> bytes:
    """The ``Date`` header value, recomputed at most once a second."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True).encode("ascii"))
    return _date_cache[1]


def reason_phrase(status: int) -> bytes:
    """The standard reason phrase of ``status`` (b"" for unknown codes)."""
    return _REASONS.get(status, b"")


_STATUS_LINES = {code: b"HTTP/1.1 %d %s\r\n" % (code, phrase) for code, phrase in _REASONS.items()}
#: lengths of the header names the writer acts on (date, server, connection, content-length,
#: transfer-encoding).
_SPECIAL_LENGTHS = frozenset(
    len(n) for n in (b"date", b"server", b"connection", b"content-length", b"transfer-encoding")
)


def _status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    return line if line is not None else b"HTTP/1.1 %d %s\r\n" % (status, reason_phrase(status))


def _check_line(name: bytes, value: bytes) -> None:
    if b"\n" in value or b"\r" in value or b"\n" in name or b"\r" in name:
        raise ValueError(f"response header {name!r} contains a line break")


class ResponseWriter:
    """Serialises the response to one request; methods return the bytes to send."""

    def __init__(self, request: Request, *, keep_alive: bool) -> None:
        self.request = request
        #: whether the connection may carry another request after this response.
        self.keep_alive = keep_alive
        self.status = 0
        self.started = False
        self.finished = False
        self._chunked = False
        self._no_body = request.method == "HEAD"
        self._remaining: int | None = None

    def head(self, status: int, headers: Headers) -> bytes:
        """The status line and headers; picks the body framing."""
        if self.started:
            raise RuntimeError("response already started")
        self.started = True
        self.status = status
        out = [_status_line(status)]
        has_server = has_date = False
        length: int | None = None
        for name, value in headers:
            # Only the names we act on are lowered (by length first: most names are other ones).
            if len(name) in _SPECIAL_LENGTHS:
                lname = name.lower()
                if lname == b"content-length":
                    _check_line(name, value)
                    length = int(value)
                    continue  # written once below, when the status allows a body
                elif lname == b"transfer-encoding" or lname == b"connection":
                    _check_line(name, value)
                    continue  # framing and persistence are ours to decide
                elif lname == b"server":
                    has_server = True
                elif lname == b"date":
                    has_date = True
            out.append(b"%s: %s\r\n" % (name, value))
        # One scan for line breaks in what the app gave: every line written so far ends in
        # exactly one CRLF, so any other CR or LF came from a header (response splitting).
        written = b"".join(out)
        if written.count(b"\n") != len(out) or written.count(b"\r") != len(out):
            for name, value in headers:
                _check_line(name, value)
        out = [written]
        if status < 200 or status in (204, 304):
            self._no_body = True
        elif length is not None:
            out.append(b"content-length: %d\r\n" % length)
            self._remaining = length
        elif self._no_body:
            pass  # HEAD without a length: nothing to frame
        elif self.request.http_version == "1.1":
            out.append(b"transfer-encoding: chunked\r\n")
            self._chunked = True
        else:
            self.keep_alive = False  # HTTP/1.0 body without a length ends with the connection
        if self._no_body and length is not None:
            self._remaining = 0
        if not has_server:
            out.append(b"server: " + SERVER_NAME + b"\r\n")
        if not has_date:
            out.append(b"date: " + http_date() + b"\r\n")
        if not self.keep_alive:
            out.append(b"connection: close\r\n")
        elif self.request.http_version == "1.0":
            out.append(b"connection: keep-alive\r\n")
        out.append(b"\r\n")
        return b"".join(out)

    def body(self, data: bytes) -> bytes:
        """A piece of body, framed (empty for HEAD and bodiless statuses)."""
        if not data or self._no_body:
            return b""
        if self._chunked:
            return b"%x\r\n%s\r\n" % (len(data), data)
        if self._remaining is not None:
            if len(data) > self._remaining:
                # Body beyond its Content-Length: cut, and the connection closed after this
                # response (the client cannot know where the next one would start).
                self.keep_alive = False
                data = data[: self._remaining]
            self._remaining -= len(data)
        return data

    def end(self) -> bytes:
        """The end of the body; a body shorter than its Content-Length closes the connection."""
        self.finished = True
        if self._chunked:
            return b"0\r\n\r\n"
        if self._remaining:
            self.keep_alive = False
        return b""


def simple_response(
    request: Request | None,
    status: int,
    text: str,
    *,
    keep_alive: bool = False,
    extra_headers: Headers | None = None,
) -> bytes:
    """A complete plain-text response (errors, refusals): head and body in one piece."""
    body = text.encode("utf-8") + b"\n"
    headers: Headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode("ascii")),
        *(extra_headers or []),
    ]
    req = request or Request("GET", b"/", b"/", "/", b"", "1.1", [], keep_alive=False)
    writer = ResponseWriter(req, keep_alive=keep_alive and req.keep_alive)
    return writer.head(status, headers) + writer.body(body) + writer.end()
