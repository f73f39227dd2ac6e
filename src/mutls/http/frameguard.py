"""What an HTTP/2 client's frames may cost, counted on the raw bytes before h2 reads them.

The known HTTP/2 floods cost the server per frame, not per byte, and each looks legal frame by
frame: streams opened and reset at once (rapid reset, CVE-2023-44487), a header block cut into
endless CONTINUATION frames (the 2024 CONTINUATION flood), SETTINGS and PING frames each of
which the server must answer, empty DATA or PRIORITY frames. :class:`FrameGuard` walks the
frame headers (9 bytes each) of what the client sends, in one pass, and counts:

- the bytes of one header block (HEADERS and its CONTINUATIONs): past ``max_block`` the block
  is refused before it is decoded (HPACK decodes a block only whole, so it would be buffered);
- streams reset, by the client (RST_STREAM) or by the server for the client's fault
  (:meth:`note_reset`), per window of ``window_seconds``;
- control frames that cost an answer or nothing useful (SETTINGS and PING that are not
  acknowledgements, PRIORITY, empty DATA without END_STREAM, empty CONTINUATION without
  END_HEADERS), per window.

Past a bound, :meth:`feed` returns a :class:`Refusal` (the GOAWAY's error code and text): the
connection is closed with ENHANCE_YOUR_CALM, as nghttp2 and nginx do. The guard knows no time
of its own: the caller passes ``now``, so every rule is tested by counting frames.
"""

from __future__ import annotations

from dataclasses import dataclass

#: the client connection preface (RFC 9113 3.4), before the first frame.
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
FRAME_HEADER = 9
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS = 0x0, 0x1, 0x2, 0x3, 0x4
PING, CONTINUATION = 0x6, 0x9
END_STREAM = ACK = 0x1
END_HEADERS = 0x4
#: RFC 9113 7: the code of a GOAWAY that says "you cost too much".
ENHANCE_YOUR_CALM = 0xB
FRAME_SIZE_ERROR = 0x6


@dataclass(frozen=True)
class Refusal:
    """Why the connection is closed: the GOAWAY's error code and its debug text."""

    error_code: int
    reason: str


class FrameGuard:
    """Counts the costly frames of one connection (see module docs)."""

    def __init__(
        self, *, max_block: int, max_resets: int, max_control_frames: int, window_seconds: float
    ) -> None:
        self.max_block = max_block
        self.max_resets = max_resets
        self.max_control_frames = max_control_frames
        self.window_seconds = window_seconds
        #: streams reset and control frames counted in the current window.
        self.resets = 0
        self.control_frames = 0
        #: frames walked (for tests and the bench).
        self.frames = 0
        self._window_start: float | None = None
        self._preface = len(PREFACE)
        self._head = b""  # a frame header begun in an earlier read
        self._skip = 0  # payload bytes of the current frame still to come
        self._block: int | None = None  # bytes of the header block in progress

    def feed(self, data: bytes, now: float) -> Refusal | None:
        """Walk ``data``; the refusal when the client went past a bound."""
        self._roll(now)
        pos, end = 0, len(data)
        if self._preface:
            taken = min(self._preface, end)
            self._preface -= taken
            pos = taken
        while pos < end:
            if self._skip:
                step = min(self._skip, end - pos)
                self._skip -= step
                pos += step
                continue
            need = FRAME_HEADER - len(self._head)
            if end - pos < need:
                self._head += data[pos:end]
                return None
            header = self._head + data[pos : pos + need]
            self._head = b""
            pos += need
            length = int.from_bytes(header[:3], "big")
            refusal = self._frame(header[3], header[4], length)
            if refusal is not None:
                return refusal
            self._skip = length
        return None

    def note_reset(self, now: float) -> Refusal | None:
        """The server reset a stream for the client's fault (a malformed request, a stream
        refused): counted as the client's own resets are ("MadeYouReset")."""
        self._roll(now)
        self.resets += 1
        return self._check_resets()

    def _roll(self, now: float) -> None:
        if self._window_start is None or now - self._window_start >= self.window_seconds:
            self._window_start = now
            self.resets = self.control_frames = 0

    def _frame(self, kind: int, flags: int, length: int) -> Refusal | None:
        self.frames += 1
        if kind == HEADERS or kind == CONTINUATION:
            if kind == HEADERS:
                self._block = 0
            self._block = (self._block or 0) + length
            if self._block > self.max_block:
                return Refusal(
                    ENHANCE_YOUR_CALM,
                    f"header block larger than {self.max_block} bytes (--max-header-size)",
                )
            if flags & END_HEADERS:
                self._block = None
            elif kind == CONTINUATION and length == 0:
                return self._control()
            return None
        if kind == RST_STREAM:
            self.resets += 1
            return self._check_resets()
        if kind == SETTINGS and flags & ACK and length:
            # RFC 9113 6.5: FRAME_SIZE_ERROR (h2 would say PROTOCOL_ERROR).
            return Refusal(FRAME_SIZE_ERROR, "SETTINGS acknowledgement with a payload")
        if (kind == SETTINGS or kind == PING) and not flags & ACK:
            return self._control()
        if kind == PRIORITY or (kind == DATA and length == 0 and not flags & END_STREAM):
            return self._control()
        return None

    def _control(self) -> Refusal | None:
        self.control_frames += 1
        if self.control_frames > self.max_control_frames:
            return Refusal(
                ENHANCE_YOUR_CALM,
                f"more than {self.max_control_frames} SETTINGS, PING, PRIORITY or empty frames "
                f"in {self.window_seconds:g} s (--h2-max-control-frames)",
            )
        return None

    def _check_resets(self) -> Refusal | None:
        if self.resets > self.max_resets:
            return Refusal(
                ENHANCE_YOUR_CALM,
                f"more than {self.max_resets} streams reset in {self.window_seconds:g} s "
                "(--h2-max-resets)",
            )
        return None
