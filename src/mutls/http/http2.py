"""``HTTP2Connection``: the server side of HTTP/2 (RFC 9113), sans-I/O, on the h2 library.

Bytes go in with :meth:`HTTP2Connection.receive_data`, which returns events
(:mod:`mutls.http.h2events`: a request head on a stream, its body complete, a stream cancelled,
a window opened, the end of the connection); responses go out through :meth:`send_head`,
:meth:`send_data` and :meth:`end_stream`, and every call leaves bytes in :meth:`data_to_send`.
Nothing here touches a socket or a clock (the caller passes ``now``), so every rule is tested
by feeding frames.

h2 keeps the protocol's state (streams, HPACK, flow control, SETTINGS) and refuses what breaks
RFC 9113 (a bad preface, frame sizes, stream states, pseudo-headers, connection-specific
headers): a connection error becomes a GOAWAY and :class:`ConnectionEnded`. Around it:

- :class:`~mutls.http.frameguard.FrameGuard` counts what floods cost before h2 reads a frame;
- the request limits of HTTP/1.1 apply per stream (:class:`~mutls.http.connection.HTTPLimits`:
  the header list, the field count, the body), and what the app sees of a head is screened by
  the HTTP/1.1 connection's own rules (names with ``_`` dropped, certificate headers set aside);
- request bodies are read whole, as for HTTP/1.1, and the client's windows are reopened only
  while the bodies not yet handed on stay within ``max_body_bytes``: a client cannot make the
  server buffer more than one body limit plus the windows it was given.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote_to_bytes

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import hpack.exceptions
import hyperframe.frame

from mutls.http.connection import HTTPLimits, certificate_header, underscore_name
from mutls.http.events import Headers, Request
from mutls.http.forwarded_certificates import KNOWN_NAMES
from mutls.http.frameguard import ENHANCE_YOUR_CALM, FrameGuard
from mutls.http.framing import FREE_CHUNKS
from mutls.http.h2events import (
    ConnectionEnded,
    H2Event,
    StreamCancelled,
    StreamOpened,
    StreamReady,
    StreamRefused,
    WindowOpened,
)
from mutls.http.response import SERVER_NAME, http_date

#: the ALPN name of HTTP/2 over TLS.
ALPN_H2 = "h2"
#: the receive window a stream is given (SETTINGS_INITIAL_WINDOW_SIZE), and the connection's.
STREAM_WINDOW = 256 * 1024
CONNECTION_WINDOW = 1024 * 1024
#: header names that are HTTP/1.1's connection management: never sent in HTTP/2 (RFC 9113
#: 8.2.2); an app's are dropped from its response.
CONNECTION_SPECIFIC = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"}
)
ErrorCodes = h2.errors.ErrorCodes
#: what hpack raises for a header block it cannot decode (h2 turns each into PROTOCOL_ERROR).
_HPACK_FAILURES = (hpack.exceptions.HPACKError, IndexError, TypeError, UnicodeDecodeError)
#: a response field name (RFC 9110 5.1 tokens, lower-case: never a pseudo-header) and what no
#: value may hold (RFC 9113 8.2.1), checked by the server since h2's outbound checks are off.
_FIELD_NAME = re.compile(rb"[!#$%&'*+.^_`|~0-9a-z-]+")
_BAD_VALUE = re.compile(rb"[\0\r\n]|^[ \t]|[ \t]$")


@dataclass(frozen=True)
class H2Limits:
    """What one HTTP/2 connection may cost beyond a request's own limits.

    ``max_concurrent_streams`` is SETTINGS_MAX_CONCURRENT_STREAMS, and also the most streams
    whose app still runs (a stream the client reset keeps its place until its app returns);
    ``max_resets`` the streams reset per ``window_seconds`` (rapid reset), ``max_control_frames``
    the SETTINGS, PING, PRIORITY and empty frames per ``window_seconds``; past either, GOAWAY
    ENHANCE_YOUR_CALM.
    """

    max_concurrent_streams: int = 100
    max_resets: int = 200
    max_control_frames: int = 1000
    window_seconds: float = 10.0


@dataclass
class _Inbound:
    """A request being received."""

    request: Request | None = None
    body: list[bytes] = field(default_factory=list)
    size: int = 0
    frames: int = 0
    refused: bool = False


class HTTP2Connection:
    """One client's HTTP/2 conversation with the server (see module docs)."""

    def __init__(
        self,
        limits: HTTPLimits | None = None,
        h2_limits: H2Limits | None = None,
        certificate_names: frozenset[bytes] = KNOWN_NAMES,
    ) -> None:
        self.limits = limits = limits or HTTPLimits()
        self.h2_limits = h2_limits = h2_limits or H2Limits()
        self._certificate_names = certificate_names
        # What clients send is validated by h2 (RFC 9113 8.2, 8.3); what the server sends is
        # checked by send_head (cheaper: h2's outbound checks were a third of a request's cost).
        config = h2.config.H2Configuration(
            client_side=False,
            header_encoding=None,
            validate_inbound_headers=True,
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
        )
        self.h2 = h2.connection.H2Connection(config)
        self.h2.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: h2_limits.max_concurrent_streams,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: limits.max_head_bytes,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
            },
        )
        # HPACK's decoded-size bound from the first frame on, not only once our SETTINGS are
        # acknowledged (an HPACK bomb is small on the wire, large decoded).
        self.h2.decoder.max_header_list_size = limits.max_head_bytes
        self.h2.initiate_connection()
        # The SETTINGS just queued announce max_concurrent_streams; h2 itself is given a higher
        # bound: past the announced one the server refuses a stream (REFUSED_STREAM, RFC 9113
        # 5.1.2, a stream error) where h2 would end the whole connection, every stream in
        # flight with it. Past this one h2 still does (a client ignoring even that).
        self.h2.local_settings[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS] = (
            2 * h2_limits.max_concurrent_streams + 16
        )
        self.h2.local_settings.acknowledge()
        self.h2.increment_flow_control_window(CONNECTION_WINDOW - 65535)
        self.guard = FrameGuard(
            max_block=limits.max_head_bytes,
            max_resets=h2_limits.max_resets,
            max_control_frames=h2_limits.max_control_frames,
            window_seconds=h2_limits.window_seconds,
        )
        self._inbound: dict[int, _Inbound] = {}
        #: bytes to send before h2's own (a graceful GOAWAY, which h2 cannot send and go on).
        self._pending = b""
        #: a graceful GOAWAY was sent: streams above ``last_stream_id`` are refused.
        self.going_away = False
        #: body bytes received and not yet handed on, and acknowledgements held back for them.
        self._buffered = 0
        self._held: list[tuple[int, int]] = []
        #: the highest stream the client opened (a graceful GOAWAY's last stream).
        self.last_stream_id = 0
        self.ended = False
        #: the first header name dropped for its ``_`` on this connection (for one log line).
        self.dropped_name: bytes | None = None

    # -- input -------------------------------------------------------------------------------

    def receive_data(self, data: bytes, now: float) -> list[H2Event]:
        """Feed bytes from the client (``b""``: it closed its side); the events they make."""
        if self.ended:
            return []
        if not data:
            self.ended = True
            return [ConnectionEnded("the client closed the connection", by_peer=True)]
        refusal = self.guard.feed(data, now)
        if refusal is not None:
            return [self._terminate(refusal.error_code, refusal.reason)]
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            # h2 has queued its GOAWAY (with the exception's error code).
            self.ended = True
            code = int(getattr(exc, "error_code", ErrorCodes.PROTOCOL_ERROR))
            cause = exc.__cause__ or exc.__context__  # (h2 before 4.2 chains implicitly)
            if isinstance(cause, _HPACK_FAILURES) and code == ErrorCodes.PROTOCOL_ERROR:
                code = self._compression_error()
            return [ConnectionEnded(f"HTTP/2 protocol error: {exc}", code)]
        out: list[H2Event] = []
        for event in events:
            if self._translate(event, now, out):
                break
        return out

    def _compression_error(self) -> int:
        """A header block HPACK cannot decode is a COMPRESSION_ERROR (RFC 9113 4.3), where
        h2 says PROTOCOL_ERROR: its GOAWAY, the last frame it queued, is replaced."""
        out = self.h2.data_to_send()
        theirs = hyperframe.frame.GoAwayFrame(
            stream_id=0,
            last_stream_id=self.h2.highest_inbound_stream_id,
            error_code=ErrorCodes.PROTOCOL_ERROR,
        ).serialize()
        if out.endswith(theirs):
            out = out[: -len(theirs)]
        ours = hyperframe.frame.GoAwayFrame(
            stream_id=0,
            last_stream_id=self.h2.highest_inbound_stream_id,
            error_code=ErrorCodes.COMPRESSION_ERROR,
        ).serialize()
        self._pending += out + ours
        return int(ErrorCodes.COMPRESSION_ERROR)

    def _translate(self, event: h2.events.Event, now: float, out: list[H2Event]) -> bool:
        """Add ``event``'s meaning to ``out``; True when the connection ended."""
        if isinstance(event, h2.events.RequestReceived):
            stream_id = event.stream_id
            assert stream_id is not None
            if not self.accepts(stream_id):
                self.reset(stream_id, ErrorCodes.REFUSED_STREAM)
                return False
            self.last_stream_id = max(self.last_stream_id, stream_id)
            self._request(stream_id, event.headers or [], out)
            if event.stream_ended is not None:
                self._ended(stream_id, out)
        elif isinstance(event, h2.events.DataReceived):
            stream_id = event.stream_id
            assert stream_id is not None
            self._data(stream_id, event.data or b"", event.flow_controlled_length or 0, out)
            if event.stream_ended is not None:
                self._ended(stream_id, out)
        elif isinstance(event, h2.events.StreamEnded):
            assert event.stream_id is not None
            self._ended(event.stream_id, out)
        elif isinstance(event, h2.events.TrailersReceived):
            # Request trailers are counted (the header list bound) and never shown: no app
            # interface carries them (as for HTTP/1.1).
            assert event.stream_id is not None
            if event.stream_ended is not None:
                self._ended(event.stream_id, out)
        elif isinstance(event, h2.events.StreamReset):
            assert event.stream_id is not None
            self._forget(event.stream_id)
            out.append(StreamCancelled(event.stream_id))
        elif isinstance(event, h2.events.WindowUpdated):
            out.append(WindowOpened(event.stream_id or 0))
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            out.append(WindowOpened(0))  # a new initial window size changes every stream's
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.ended = True
            code = int(event.error_code or 0)
            out.append(ConnectionEnded(f"the client sent GOAWAY ({code:#x})", code, by_peer=True))
        return self.ended

    def _request(
        self, stream_id: int, raw: Sequence[tuple[bytes, bytes]], out: list[H2Event]
    ) -> None:
        limits = self.limits
        inbound = self._inbound[stream_id] = _Inbound()
        pseudo: dict[bytes, bytes] = {}
        headers: Headers = []
        cookies: list[bytes] = []
        certificate_headers: Headers = []
        has_host = False
        content_length: int | None = None
        expect_continue = False
        for name, value in raw:
            if name.startswith(b":"):
                pseudo[name] = value
                continue
            if name == b"cookie":  # RFC 9113 8.2.3: crumbs join again for HTTP/1.1 apps
                cookies.append(value)
                continue
            if underscore_name(name):
                if self.dropped_name is None:
                    self.dropped_name = name
                continue
            if certificate_header(name, self._certificate_names):
                certificate_headers.append((name, value))
                continue
            if name == b"host":
                has_host = True
            elif name == b"expect":
                expect_continue = value.lower() == b"100-continue"
            elif name == b"content-length":
                try:
                    content_length = int(value)
                except ValueError:
                    content_length = None
            headers.append((name, value))
        if cookies:
            headers.append((b"cookie", b"; ".join(cookies)))
        method = pseudo.get(b":method", b"GET").decode("ascii", "replace")
        authority = pseudo.get(b":authority")
        if authority is not None and not has_host:
            headers.insert(0, (b"host", authority))
        target = pseudo.get(b":path", b"")
        raw_path, _, query = target.partition(b"?")
        path = (unquote_to_bytes(raw_path) if b"%" in raw_path else raw_path).decode("latin-1")
        request = Request(
            method=method,
            target=target,
            raw_path=raw_path,
            path=path,
            query=query,
            http_version="2",
            headers=headers,
            keep_alive=True,
            expect_continue=expect_continue,
            content_length=content_length,
            certificate_headers=tuple(certificate_headers),
        )
        inbound.request = request
        if len(headers) > limits.max_headers:
            self._refuse(stream_id, 431, "too many request header fields", out)
        elif method == "CONNECT":
            self._refuse(stream_id, 405, "CONNECT is not served here", out)
        elif content_length is not None and content_length > limits.max_body_bytes:
            self._refuse(stream_id, 413, "request body too large", out)
        else:
            out.append(StreamOpened(stream_id, request))

    def _data(self, stream_id: int, data: bytes, flow: int, out: list[H2Event]) -> None:
        inbound = self._inbound.get(stream_id)
        if inbound is None or inbound.refused:
            self._acknowledge(stream_id, flow)  # dropped: the window is given back at once
            return
        inbound.size += len(data)
        inbound.frames += 1
        average = self.limits.min_chunk_average
        if average and inbound.frames > FREE_CHUNKS + inbound.size // average:
            # HTTP/1.1's chunk rule for DATA frames: each costs the server h2's work whatever
            # its size, and clients cut bodies at their buffer sizes (16 KiB), not bytes.
            out.append(
                self._terminate(
                    ENHANCE_YOUR_CALM,
                    f"request body in too many small DATA frames (more than {FREE_CHUNKS} "
                    f"plus one per {average} bytes, --min-chunk-average)",
                )
            )
            return
        if inbound.size > self.limits.max_body_bytes:
            self._buffered -= inbound.size - len(data)
            inbound.body.clear()
            self._refuse(stream_id, 413, "request body too large", out)
            self._acknowledge(stream_id, flow)
            return
        inbound.body.append(data)
        self._buffered += len(data)
        if self._buffered <= self.limits.max_body_bytes:
            self._acknowledge(stream_id, flow)
        else:
            self._held.append((stream_id, flow))  # the client waits until bodies move on

    def _ended(self, stream_id: int, out: list[H2Event]) -> None:
        if self.ended:
            return
        inbound = self._inbound.pop(stream_id, None)
        if inbound is None or inbound.refused:
            return
        body = b"".join(inbound.body)
        self._release(len(body))
        out.append(StreamReady(stream_id, body))

    def _refuse(self, stream_id: int, status: int, reason: str, out: list[H2Event]) -> None:
        inbound = self._inbound.get(stream_id)
        request = None
        if inbound is not None:
            inbound.refused = True
            request = inbound.request
        out.append(StreamRefused(stream_id, status, reason, request))

    def _forget(self, stream_id: int) -> None:
        inbound = self._inbound.pop(stream_id, None)
        if inbound is not None and not inbound.refused:
            self._release(inbound.size)

    def _release(self, size: int) -> None:
        """Body bytes handed on (or dropped): held acknowledgements go out while they fit."""
        self._buffered -= size
        while self._held and self._buffered <= self.limits.max_body_bytes:
            stream_id, flow = self._held.pop(0)
            self._acknowledge(stream_id, flow)

    def _acknowledge(self, stream_id: int, flow: int) -> None:
        if flow:
            try:
                self.h2.acknowledge_received_data(flow, stream_id)
            except (h2.exceptions.ProtocolError, ValueError, KeyError):
                pass  # the stream is gone: nothing to reopen

    def note_reset(self, now: float) -> ConnectionEnded | None:
        """The server reset a stream for the client's fault: counted with its resets."""
        refusal = self.guard.note_reset(now)
        if refusal is None:
            return None
        return self._terminate(refusal.error_code, refusal.reason)

    # -- output ------------------------------------------------------------------------------

    def data_to_send(self) -> bytes:
        """The bytes to write to the socket now (``b""`` if none)."""
        pending, self._pending = self._pending, b""
        return pending + self.h2.data_to_send()

    def send_head(self, stream_id: int, status: int, headers: Headers, *, end: bool) -> None:
        """The response head on ``stream_id``: connection-specific fields dropped, ``server``
        and ``date`` added unless given, names lower-cased (RFC 9113 8.2)."""
        out: list[tuple[bytes, bytes]] = [(b":status", b"%d" % status), *_fields(headers)]
        has_server = has_date = False
        for lname, _value in out:
            has_server = has_server or lname == b"server"
            has_date = has_date or lname == b"date"
        if not has_server:
            out.append((b"server", SERVER_NAME))
        if not has_date:
            out.append((b"date", http_date()))
        self.h2.send_headers(stream_id, out, end_stream=end)

    def send_continue(self, stream_id: int) -> None:
        """``100 Continue``: the client may send the body it holds back (``expect``)."""
        self.h2.send_headers(stream_id, [(b":status", b"100")])

    def window(self, stream_id: int) -> int:
        """How many bytes of data ``stream_id`` may send now (one frame at most)."""
        try:
            window = self.h2.local_flow_control_window(stream_id)
        except (h2.exceptions.ProtocolError, KeyError):
            return 0
        return min(window, self.h2.max_outbound_frame_size)

    def send_data(self, stream_id: int, data: bytes, *, end: bool = False) -> None:
        """Data within :meth:`window` on ``stream_id``."""
        self.h2.send_data(stream_id, data, end_stream=end)

    def send_trailers(self, stream_id: int, headers: Headers) -> None:
        """Response trailers, which end the stream."""
        self.h2.send_headers(stream_id, _fields(headers), end_stream=True)

    def end_stream(self, stream_id: int) -> None:
        """End the response on ``stream_id``."""
        self.h2.end_stream(stream_id)

    def reset(self, stream_id: int, code: int = ErrorCodes.INTERNAL_ERROR) -> None:
        """Reset ``stream_id`` (quietly nothing when it is closed already)."""
        self._forget(stream_id)
        try:
            self.h2.reset_stream(stream_id, code)
        except h2.exceptions.ProtocolError:
            pass

    def stream_open(self, stream_id: int) -> bool:
        """Whether the server may still send on ``stream_id``."""
        stream = self.h2.streams.get(stream_id)
        return stream is not None and stream.open and not stream.closed

    def goaway(self, reason: str = "") -> None:
        """A graceful GOAWAY (NO_ERROR): streams up to the last one received are served to
        their end, later ones are refused (the client retries them elsewhere).

        Written beside h2 rather than through it: h2's own GOAWAY closes its state machine,
        and the responses in flight could no longer be sent.
        """
        if self.going_away or self.ended:
            return
        self.going_away = True
        frame = hyperframe.frame.GoAwayFrame(
            stream_id=0,
            last_stream_id=self.last_stream_id,
            error_code=ErrorCodes.NO_ERROR,
            additional_data=reason.encode("utf-8")[:256],
        )
        self._pending += self.h2.data_to_send() + frame.serialize()

    def accepts(self, stream_id: int) -> bool:
        """Whether a stream is still served (not above a graceful GOAWAY's last one)."""
        return not self.going_away or stream_id <= self.last_stream_id

    def _terminate(self, code: int, reason: str) -> ConnectionEnded:
        """A connection error: h2's GOAWAY with ``code``; nothing more is served."""
        self.ended = True
        self.h2.close_connection(code, additional_data=reason.encode("utf-8")[:256])
        return ConnectionEnded(reason, code)

    def fail(self, code: int, reason: str) -> ConnectionEnded:
        """End the connection with GOAWAY ``code`` (INADEQUATE_SECURITY, a limit)."""
        return self._terminate(code, reason)


def _fields(headers: Headers) -> list[tuple[bytes, bytes]]:
    """An app's response fields for HTTP/2: names lower-cased, connection-specific ones
    dropped (RFC 9113 8.2.2); a name that is no token (a pseudo-header among them) or a value
    with CR, LF, NUL or edge whitespace raises ValueError (the app's 500)."""
    out = []
    for name, value in headers:
        lname = name.lower()
        if lname in CONNECTION_SPECIFIC:
            continue
        if not _FIELD_NAME.fullmatch(lname) or _BAD_VALUE.search(value):
            raise ValueError(f"response header {name!r}: not a valid HTTP/2 field")
        out.append((lname, value))
    return out
