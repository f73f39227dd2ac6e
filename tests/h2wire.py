"""HTTP/2 frames by hand, over a real TLS socket: what an h2spec run sends, written with
hyperframe and hpack (the h2 library's own codecs) so that a test can send what no
well-behaved client would (bad pseudo-headers, floods, frames on closed streams).
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import hpack
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
WAIT = 10.0

__all__ = [
    "ContinuationFrame",
    "DataFrame",
    "GoAwayFrame",
    "HeadersFrame",
    "PingFrame",
    "RstStreamFrame",
    "SettingsFrame",
    "WindowUpdateFrame",
    "Wire",
    "tls_client",
]


def tls_client(
    ca: Path,
    cert: Path | None = None,
    key: Path | None = None,
    *,
    alpn: Sequence[str] = ("h2",),
    tls12_ciphers: str | None = None,
    post_handshake_auth: bool = False,
) -> ssl.SSLContext:
    """A client context: ``alpn`` offered (none when empty), an optional client certificate,
    TLS 1.2 only with ``tls12_ciphers``."""
    context = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        context.load_cert_chain(str(cert), str(key) if key else None)
    if alpn:
        context.set_alpn_protocols(list(alpn))
    if tls12_ciphers is not None:
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        context.set_ciphers(tls12_ciphers)
    if post_handshake_auth:
        context.post_handshake_auth = True
    return context


class Wire:
    """One TLS connection speaking raw HTTP/2 frames."""

    def __init__(self, port: int, context: ssl.SSLContext, host: str = "localhost") -> None:
        raw = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        self.sock = context.wrap_socket(raw, server_hostname=host)
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self._buffer = b""
        self.closed = False
        #: every frame read so far, in order.
        self.seen: list[Frame] = []

    def __enter__(self) -> Wire:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    @property
    def alpn(self) -> str | None:
        return self.sock.selected_alpn_protocol()

    # -- sending ---------------------------------------------------------------------------

    def send(self, *frames: Frame | bytes) -> None:
        """Frames (or raw bytes) in one write; a closed connection is noted, not raised."""
        data = b"".join(f if isinstance(f, bytes) else f.serialize() for f in frames)
        try:
            self.sock.sendall(data)
        except (OSError, ssl.SSLError):
            self.closed = True

    def start(self, settings: dict[int, int] | None = None) -> list[Frame]:
        """The client preface and SETTINGS; returns the frames up to the server's SETTINGS
        acknowledgement of ours."""
        self.send(PREFACE, SettingsFrame(0, settings=settings or {}))
        frames = self.read_until(lambda f: isinstance(f, SettingsFrame) and "ACK" in f.flags)
        for frame in frames:
            if isinstance(frame, SettingsFrame) and "ACK" not in frame.flags:
                self.send(SettingsFrame(0, flags=["ACK"]))
        return frames

    def headers(
        self,
        stream_id: int,
        path: str = "/",
        method: str = "GET",
        extra: Iterable[tuple[str, str]] = (),
        *,
        end_stream: bool = True,
        pseudo: Sequence[tuple[str, str]] | None = None,
    ) -> HeadersFrame:
        """A HEADERS frame (one block, END_HEADERS) for a request."""
        fields = list(
            pseudo
            if pseudo is not None
            else [
                (":method", method),
                (":scheme", "https"),
                (":authority", "localhost"),
                (":path", path),
            ]
        )
        fields += list(extra)
        flags = ["END_HEADERS"] + (["END_STREAM"] if end_stream else [])
        return HeadersFrame(stream_id, data=self.encoder.encode(fields), flags=flags)

    # -- reading ---------------------------------------------------------------------------

    def read_frames(self, timeout: float = WAIT) -> list[Frame]:
        """The frames of the next read (empty once the server closed)."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return []  # nothing yet: not a close
        except (ConnectionResetError, ssl.SSLError, OSError):
            data = b""
        if not data:
            self.closed = True
            return []
        self._buffer += data
        return self._parse()

    def _parse(self) -> list[Frame]:
        frames = []
        while len(self._buffer) >= 9:
            frame, length = Frame.parse_frame_header(memoryview(self._buffer[:9]))
            if len(self._buffer) < 9 + length:
                break
            frame.parse_body(memoryview(self._buffer[9 : 9 + length]))
            self._buffer = self._buffer[9 + length :]
            if isinstance(frame, HeadersFrame):
                # Every block is decoded in order (HPACK's table is the connection's).
                frame.fields = {  # type: ignore[attr-defined]
                    _text(k): _text(v) for k, v in self.decoder.decode(frame.data)
                }
            frames.append(frame)
        self.seen += frames
        return frames

    def read_until(self, done: Callable[[Frame], bool], timeout: float = WAIT) -> list[Frame]:
        """Frames until one satisfies ``done`` or the server closes (bounded by ``timeout``)."""
        deadline = time.monotonic() + timeout
        seen: list[Frame] = []
        while time.monotonic() < deadline:
            frames = self.read_frames(max(0.1, deadline - time.monotonic()))
            seen += frames
            if any(done(f) for f in frames) or self.closed:
                return seen
        return seen

    def goaway(self, timeout: float = WAIT) -> GoAwayFrame | None:
        """Read until a GOAWAY (or the close); the GOAWAY, if one came."""
        if not any(isinstance(f, GoAwayFrame) for f in self.seen):
            self.read_until(lambda f: isinstance(f, GoAwayFrame), timeout)
        found = [f for f in self.seen if isinstance(f, GoAwayFrame)]
        return found[0] if found else None

    def response(self, stream_id: int, timeout: float = WAIT) -> tuple[dict[str, str], bytes]:
        """The response on ``stream_id``: its headers (decoded) and body, read to END_STREAM
        (windows reopened as data comes); frames already read for it count too."""
        headers: dict[str, str] = {}
        body = b""
        index = 0
        deadline = time.monotonic() + timeout
        while True:
            while index < len(self.seen):
                frame = self.seen[index]
                index += 1
                if frame.stream_id != stream_id:
                    continue
                if isinstance(frame, HeadersFrame):
                    headers.update(frame.fields)  # type: ignore[attr-defined]
                elif isinstance(frame, DataFrame):
                    body += frame.data
                    if frame.flow_controlled_length:
                        self.send(
                            WindowUpdateFrame(0, window_increment=frame.flow_controlled_length),
                            WindowUpdateFrame(
                                stream_id, window_increment=frame.flow_controlled_length
                            ),
                        )
                elif isinstance(frame, RstStreamFrame):
                    headers[":reset"] = str(frame.error_code)
                    return headers, body
                if "END_STREAM" in frame.flags:
                    return headers, body
            if self.closed or time.monotonic() > deadline:
                return headers, body
            self.read_frames(max(0.1, deadline - time.monotonic()))


def _text(value: bytes | str) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value
