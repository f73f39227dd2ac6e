"""``HTTPConnection``: the server side of HTTP/1.1, sans-I/O, on httptools (llhttp).

Bytes go in with :meth:`HTTPConnection.receive_data`, events come out of
:meth:`HTTPConnection.next_event`; a response is turned into bytes by the
:class:`~mutls.http.response.ResponseWriter` that :meth:`HTTPConnection.respond` returns. Nothing
here touches a socket, so every rule is tested by feeding bytes.

Requests may be pipelined: every request the bytes complete is queued, in order. The limits
(head size, header count, body size) are checked as bytes arrive, so a client cannot make the
server buffer more than a limit plus one read. A chunked body is bounded by its work as well as
its size: each chunk's declared size is checked before its data is read, and a body cut into
many tiny chunks is refused (see :class:`HTTPLimits`); the pieces of body one read brings are
handed out as one :class:`Data`, however many chunks carried them.

What the app sees of the head is decided here, once, for WSGI and ASGI alike: a header whose
name holds ``_`` is dropped (nginx's ``underscores_in_headers off``: WSGI spells ``-`` as ``_``,
so ``X_Client_Cert`` would pass for ``X-Client-Cert``), and client-certificate headers are set
aside in :attr:`Request.certificate_headers`, never in :attr:`Request.headers`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

import httptools

from mutls.http.events import (
    ConnectionClosed,
    Data,
    EndOfMessage,
    Event,
    Headers,
    ProtocolViolation,
    Request,
)
from mutls.http.forwarded_certificates import KNOWN_NAMES, KNOWN_PREFIXES
from mutls.http.framing import Framing, InputSlicer
from mutls.http.response import ResponseWriter

#: bytes kept after a request that switches protocols, for the protocol it switches to; past
#: this much, what follows is dropped (and the WebSocket side refuses the connection).
MAX_UPGRADE_DATA = 64 * 1024
_UNDERSCORE = ord("_")  # an int: `in` is then one memchr (a 1-byte bytes needle is slower)


def _prefix_range(prefix: bytes) -> tuple[bytes, bytes]:
    """``(low, high)``: a name starts with ``prefix`` when ``low <= name < high`` (two
    comparisons cost half of ``bytes.startswith``, which parses its arguments first)."""
    return prefix, prefix[:-1] + bytes([prefix[-1] + 1])


(_X_SSL, _X_SSL_END), (_SSL, _SSL_END) = map(_prefix_range, KNOWN_PREFIXES)


def underscore_name(name: bytes) -> bool:
    """Whether a header name holds ``_``: such a field never reaches the app (nginx's
    ``underscores_in_headers off``), in HTTP/1.1 and HTTP/2 alike."""
    return _UNDERSCORE in name


def certificate_header(lname: bytes, certificate_names: frozenset[bytes]) -> bool:
    """Whether a (lower-case) header name carries a client certificate or its parts: such a
    field is set aside, never shown to the app, in HTTP/1.1 and HTTP/2 alike."""
    return lname in certificate_names or _SSL <= lname < _SSL_END or _X_SSL <= lname < _X_SSL_END


@dataclass(frozen=True)
class HTTPLimits:
    """How much a client may send: head bytes (431), header count (431), body bytes (413).

    ``min_chunk_average``: a chunked body may have :data:`~mutls.http.framing.FREE_CHUNKS`
    chunks, plus one per that many bytes of body (400 past it; 0: no limit). Every chunk costs
    the server a parser callback and a step of its walk whatever its size: 16 MiB in 1-byte
    chunks cost seconds of CPU where the same body with a Content-Length costs milliseconds.
    Clients cut bodies at their buffer sizes (kilobytes), or at worst at lines or writes; not
    into a few bytes each, past a thousand chunks.
    """

    max_head_bytes: int = 16 * 1024
    max_headers: int = 100
    max_body_bytes: int = 16 * 1024 * 1024
    min_chunk_average: int = 16


class ParseState(enum.Enum):
    """Where the parser is in the client's byte stream. ``FAILED`` and ``UPGRADED`` are final:
    after a refused request nothing more is parsed, and after a request that switches protocols
    the bytes are another protocol's (kept in :attr:`HTTPConnection.upgrade_data`)."""

    #: between requests (none begun, or the last one's body complete).
    IDLE = enum.auto()
    #: inside a request head (its bytes counted against the head limit).
    HEAD = enum.auto()
    #: inside a request body (header fields now are trailers).
    BODY = enum.auto()
    #: a request was refused (a ProtocolError queued): final.
    FAILED = enum.auto()
    #: a request switched protocols (a WebSocket's): final.
    UPGRADED = enum.auto()


# The members as module names: an attribute of the enum class is a metaclass lookup (~10 times a
# global's), and the parser's callbacks set the state three times a request.
_IDLE, _HEAD, _BODY, _FAILED, _UPGRADED = ParseState


class _Refused(Exception):
    """Raised inside a parser callback to stop parsing; carries the answer (error path only)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class HTTPConnection:
    """One client's HTTP/1.1 conversation with the server, as a state machine fed with bytes.

    ``certificate_names``: the lower-case names of the headers set aside as certificate-carrying
    (besides those starting with ``X-SSL-Client-`` or ``SSL-Client-``): the known ones and a
    server's configured forwarded-certificate header.
    """

    def __init__(
        self, limits: HTTPLimits | None = None, certificate_names: frozenset[bytes] = KNOWN_NAMES
    ) -> None:
        self.limits = limits or HTTPLimits()
        self._certificate_names = certificate_names
        self._parser = httptools.HttpRequestParser(self)
        self._slicer = InputSlicer()
        # A list, not a deque: an empty deque is ~600 bytes (one block) on every idle
        # connection; the events waiting are few (a turn parses at most 1,024 lines)
        self._events: list[Event] = []
        self._url = b""
        self._headers: Headers = []
        self._certificate_headers: Headers | None = None
        self._head_bytes = 0
        self._state = _IDLE
        self._begun = 0
        self._pending_head_bytes = 0
        self._body_bytes = 0
        self._body: list[bytes] = []
        self._content_length: int | None = None
        self._chunked = False
        self._expect_continue = False
        self._has_host = False
        #: after a request that switches protocols: the bytes that followed its head in the
        #: read that held it (a WebSocket's first frames), else ``None``.
        self.upgrade_data: bytes | None = None
        #: the bytes being fed when they hold another protocol's name (see :meth:`on_url`).
        self._alien: bytes | None = None
        #: the read being parsed may hold a header name with '_'.
        self._underscores = True
        #: True once the peer sent EOF.
        self.peer_closed = False
        #: the first header name dropped for its ``_`` on this connection (for one log line).
        self.dropped_name: bytes | None = None

    # -- input -----------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the client; ``b""`` means the client closed its side."""
        state = self._state
        if state is _FAILED or state is _UPGRADED:
            upgrade_data = self.upgrade_data
            if upgrade_data is not None and data and len(upgrade_data) <= MAX_UPGRADE_DATA:
                self.upgrade_data = upgrade_data + data  # (an earlier request still runs)
            return
        if not data:
            self.peer_closed = True
            if state is _HEAD or state is _BODY:
                self._fail(400, "connection closed in the middle of a request")
            else:
                self._events.append(ConnectionClosed())
            return
        began_in_head, begun = state is _HEAD, self._begun
        # llhttp also accepts RTSP and ICE request lines and reports only their version
        # number; two substring scans per read find the rare bytes that need a closer look
        # (find, not `in`: the operator costs twice as much on bytes).
        self._alien = data if (data.find(b"RTSP/") >= 0 or data.find(b"ICE/") >= 0) else None
        # Names with '_' are looked for header by header only in a read that holds a '_' or
        # continues a head (a name may have begun in the read before): one memchr per read.
        self._underscores = began_in_head or _UNDERSCORE in data
        slicer = self._slicer
        try:
            if slicer.whole_head(data):
                self._parser.feed_data(data)
            else:
                self._feed_pieces(data)
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, _Refused):
                self._fail(cause.status, cause.reason)
            else:  # pragma: no cover - a bug in a callback, answered rather than crashing
                self._fail(400, "malformed request")
        except httptools.HttpParserUpgrade as exc:
            # No other request follows on this connection: the server answers this one (a
            # WebSocket takes the bytes after it, see mutls.server.websocket), then closes.
            self._state = _UPGRADED
            self.upgrade_data = bytes(data[exc.args[0] :]) if exc.args else b""
            self._mark_last_request_closing()
        except httptools.HttpParserInvalidMethodError:
            self._fail(400, "malformed request: invalid method")
        except httptools.HttpParserError as exc:
            self._fail(400, f"malformed request: {_describe(exc)}")
        if self._body:
            self._flush_body()
        if self._state is _HEAD:
            # Still inside a head: bound what llhttp buffers for us before it calls back.
            # A head that began in this read is not counted until the next one (so memory
            # stays under the limit plus one read, and pipelined requests never over-count).
            if began_in_head and begun == self._begun:
                self._pending_head_bytes += len(data)
            if self._pending_head_bytes > self.limits.max_head_bytes:
                self._fail(431, "request header fields too large")

    def _feed_pieces(self, data: bytes) -> None:
        """Feed ``data`` piece by piece, each cut where its framing ends (see
        :mod:`mutls.http.framing`); the parser's errors go to the caller."""
        slicer = self._slicer
        feed = self._parser.feed_data
        view = memoryview(data)
        pos, end = 0, len(data)
        try:
            while pos < end:
                stop = slicer.cut(data, pos)
                if stop > pos:
                    try:
                        feed(view[pos:stop])
                    except httptools.HttpParserUpgrade as exc:  # its offset is in the piece
                        raise httptools.HttpParserUpgrade(pos + exc.args[0]) from None
                if slicer.refusal is not None:
                    self._fail(*slicer.refusal)
                    return
                pos = stop if stop > pos else end  # (never stuck: llhttp judges the rest)
        finally:
            slicer.read_done(data)

    @property
    def parse_state(self) -> ParseState:
        """Where the parser is (see :class:`ParseState`)."""
        return self._state

    def next_event(self) -> Event | None:
        """The next event, or ``None`` when more bytes are needed."""
        return self._events.pop(0) if self._events else None

    @property
    def reads_lines(self) -> bool:
        """Whether the next bytes are parsed line by line (a head, a chunked body), where the
        work is per line; a Content-Length body is parsed in pieces whatever it holds."""
        return self._slicer.framing is not Framing.LENGTH

    @property
    def pending_events(self) -> int:
        """Events parsed but not yet taken (pipelined requests waiting)."""
        return len(self._events)

    def respond(self, request: Request, *, closing: bool = False) -> ResponseWriter:
        """A writer for the response to ``request``; ``closing`` forces ``Connection: close``."""
        keep_alive = request.keep_alive and not closing and self._state is not _FAILED
        return ResponseWriter(request, keep_alive=keep_alive)

    # -- httptools callbacks (the parser calls these while feed_data runs) --------------------

    def on_message_begin(self) -> None:
        """A new request starts."""
        self._url = b""
        self._headers = []
        self._certificate_headers = None
        self._head_bytes = 0
        self._pending_head_bytes = 0
        self._begun += 1
        self._state = _HEAD
        self._body_bytes = 0
        self._content_length = None
        self._chunked = False
        self._expect_continue = False
        self._has_host = False

    def on_url(self, url: bytes) -> None:
        """A piece of the request target (llhttp may split it across reads)."""
        self._url += url
        if self._alien is not None and (
            url + b" RTSP/" in self._alien or url + b" ICE/" in self._alien
        ):
            raise _Refused(400, "malformed request: not an HTTP request line")
        self._head_bytes += len(url)
        if self._head_bytes > self.limits.max_head_bytes:
            raise _Refused(414, "request target too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        """One complete header field (or trailer field, after a chunked body)."""
        self._head_bytes += len(name) + len(value) + 4
        if self._head_bytes > self.limits.max_head_bytes:
            raise _Refused(431, "request header fields too large")
        if self._state is _BODY:
            return  # a trailer: counted, never shown (no app interface has request trailers)
        if len(self._headers) >= self.limits.max_headers:
            raise _Refused(431, "too many request header fields")
        lname = name.lower()
        if lname == b"content-length":
            if self._content_length is not None:
                raise _Refused(400, "malformed request: duplicate Content-Length")
            self._content_length = int(value)  # llhttp has checked the digits
        elif lname == b"transfer-encoding":
            self._chunked = True
        elif lname == b"host":
            if self._has_host:
                raise _Refused(400, "malformed request: more than one Host header")
            self._has_host = True
        elif lname == b"expect" and value.lower() == b"100-continue":
            self._expect_continue = True
        elif self._underscores and underscore_name(name):
            if self.dropped_name is None:
                self.dropped_name = name
            return
        elif certificate_header(lname, self._certificate_names):
            if self._certificate_headers is None:
                self._certificate_headers = []
            self._certificate_headers.append((lname, value))
            return
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        """The head is complete: check it and queue the :class:`Request`."""
        self._state = _BODY
        if self._chunked and self._content_length is not None:
            raise _Refused(400, "malformed request: both Content-Length and Transfer-Encoding")
        if self._content_length is not None and self._content_length > self.limits.max_body_bytes:
            raise _Refused(413, "request body too large")
        version = self._parser.get_http_version()
        if not version.startswith("1."):
            raise _Refused(505, "HTTP version not supported")
        if version == "1.1" and not self._has_host:
            raise _Refused(400, "malformed request: HTTP/1.1 without a Host header")
        if self._chunked:
            limits = self.limits
            self._slicer.expect(
                Framing.CHUNK_LINE,
                allowed=limits.max_body_bytes,
                average=limits.min_chunk_average,
            )
        elif self._content_length:
            self._slicer.expect(Framing.LENGTH, self._content_length)
        target = self._url
        raw_path, _, query = target.partition(b"?")
        if raw_path.startswith((b"http://", b"https://")):
            # absolute-form: keep the path part only (RFC 9112 3.2.2).
            raw_path = b"/" + raw_path.split(b"/", 3)[3] if raw_path.count(b"/") >= 3 else b"/"
        path = (unquote_to_bytes(raw_path) if b"%" in raw_path else raw_path).decode("latin-1")
        self._events.append(
            Request(
                method=self._parser.get_method().decode("ascii"),
                target=target,
                raw_path=raw_path,
                path=path,
                query=query,
                http_version=version,
                headers=self._headers,
                keep_alive=bool(self._parser.should_keep_alive()),
                expect_continue=self._expect_continue,
                content_length=self._content_length,
                chunked=self._chunked,
                certificate_headers=self._certificate_headers or (),
            )
        )

    def on_body(self, body: bytes) -> None:
        """A piece of body, already de-chunked by llhttp."""
        self._body_bytes += len(body)
        if self._body_bytes > self.limits.max_body_bytes:
            raise _Refused(413, "request body too large")
        self._body.append(body)

    def on_message_complete(self) -> None:
        """The request's body is complete."""
        self._state = _IDLE
        self._content_length = None
        self._chunked = False
        if self._body:
            self._flush_body()
        self._events.append(EndOfMessage())

    # -- helpers -----------------------------------------------------------------------------

    def _flush_body(self) -> None:
        """The body pieces parsed so far as one event: a read full of tiny chunks makes one
        object, not one per chunk."""
        body = self._body
        self._events.append(Data(body[0] if len(body) == 1 else b"".join(body)))
        body.clear()

    def _fail(self, status: int, reason: str) -> None:
        self._state = _FAILED
        self._body.clear()
        self._events.append(ProtocolViolation(status, reason))

    def _mark_last_request_closing(self) -> None:
        for event in reversed(self._events):
            if isinstance(event, Request):
                event.keep_alive = False
                return


def _describe(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text[0].lower() + text[1:] if text else text
