"""Where a read's pieces end, and what a chunked body may cost, judged before llhttp reads it.

llhttp (through httptools) reports a chunk header but not the size it declares. To refuse a
chunk before its data is read, :class:`InputSlicer` follows the framing of the bytes itself and
the connection feeds the parser one piece at a time: a head ends at its blank line, a
Content-Length body where its length says, and a chunked body is walked chunk by chunk (size
line, data and CRLF, trailer lines, the blank line that ends it) in one pass over the read. The
piece handed to llhttp ends where the body does, or the read does, or just after a chunk-size
line that must be refused: then llhttp has parsed the line, and not a byte of the chunk.

llhttp stays the judge of every byte: the walk only decides where pieces end and which chunks are
refused. A head cannot hold a blank line before its end, and llhttp refuses bare LFs and
whitespace in heads and chunk-size lines and wants CRLF after chunk data, so the walk finds
llhttp's own boundaries; bytes the walk cannot read are left for llhttp to refuse.

What a chunked body may cost: its size (each chunk's declared size against ``max_body``, 413),
its lines (:data:`MAX_LINE_BYTES`, 400), and its chunks: every chunk costs a parser callback and
a step of the walk whatever its size, so a body may have :data:`FREE_CHUNKS` chunks plus one per
``min_average`` bytes (400).
"""

from __future__ import annotations

import enum
import re

#: the longest chunk-size line (size, extensions, CRLF) or trailer line read; a longer one is
#: answered 400 (nothing real sends chunk extensions or long request trailers; without a bound
#: a line would hold the connection, and llhttp's scan, for as long as it went on).
MAX_LINE_BYTES = 4096
#: chunks a body may have whatever their size; past them, one more per ``min_average`` bytes.
FREE_CHUNKS = 1024
_CR_LF = (13, 10)
_HEX = re.compile(rb"[0-9A-Fa-f]+")


class Framing(enum.Enum):
    """What the next bytes are."""

    HEAD = "head"  #: a request head, or nothing yet: cut after the blank line that ends it
    LENGTH = "length"  #: a Content-Length body: cut where it ends
    CHUNK_LINE = "chunk line"  #: a chunk-size line
    CHUNK_DATA = "chunk data"  #: a chunk's data and its CRLF
    TRAILER = "trailer"  #: the trailer lines after the last chunk, up to a blank line


_HEAD, _LENGTH = Framing.HEAD, Framing.LENGTH
_CHUNK_LINE, _CHUNK_DATA, _TRAILER = Framing.CHUNK_LINE, Framing.CHUNK_DATA, Framing.TRAILER


class InputSlicer:
    """Cuts reads into pieces: :meth:`cut` the next one (its bytes are then taken as fed),
    :meth:`read_done` after the read; :meth:`expect` when a head announces a body. When
    :attr:`refusal` is set after a cut, the request is refused once that piece is fed."""

    def __init__(self) -> None:
        self.framing = _HEAD
        #: the last bytes of the previous read, when it may have ended inside a blank line.
        self.tail = b""
        #: (status, reason) of a chunked body refused at the end of the last piece cut.
        self.refusal: tuple[int, str] | None = None
        #: LENGTH, CHUNK_DATA: bytes still to come (a chunk's data and its CRLF).
        self._left = 0
        #: a chunk-size or trailer line begun in an earlier read.
        self._carry = b""
        #: CHUNK_*: body bytes still allowed, chunks so far, and the chunk rule's average.
        self._allowed = 0
        self._chunks = 0
        self._declared = 0
        self._average = 0

    def whole_head(self, data: bytes) -> bool:
        """Whether ``data`` is all one head, or the end of one, and nothing after it: it needs
        no cutting (most reads)."""
        end = len(data) - 4  # (find says -1 for "not found": a read of 3 bytes is no head)
        return (
            self.framing is _HEAD and not self.tail and end >= 0 and data.find(b"\r\n\r\n") == end
        )

    def expect(
        self, framing: Framing, length: int = 0, *, allowed: int = 0, average: int = 0
    ) -> None:
        """A head announced a body: ``LENGTH`` bytes, or ``CHUNK_LINE`` (chunked) with
        ``allowed`` bytes at most and the chunk rule's ``average`` (0: none)."""
        self.framing = framing
        self._left = length
        self._carry = b""
        self._allowed, self._average = allowed, average
        self._chunks = self._declared = 0

    def cut(self, data: bytes, pos: int) -> int:
        """Where the piece of ``data`` starting at ``pos`` ends (the framing moves on to
        there)."""
        framing = self.framing
        if framing is _HEAD:
            return self._head_end(data, pos)
        if framing is _LENGTH:
            stop = min(len(data), pos + self._left)
            self._left -= stop - pos
            if not self._left:
                self.framing = _HEAD
            return stop
        return self._walk(data, pos)

    def read_done(self, data: bytes) -> None:
        """The read is parsed (or given up): keep what the next read needs."""
        if self.framing is _HEAD and data[-1] in _CR_LF:
            last = (self.tail + data)[-4:]  # a blank line may come in reads of one byte
            self.tail = last[-3:] if last != b"\r\n\r\n" else b""
        else:
            self.tail = b""

    def _head_end(self, data: bytes, pos: int) -> int:
        """Just past the blank line that ends a head (one split across reads included)."""
        if pos == 0 and self.tail:
            tail = self.tail
            found = (tail + data[:3]).find(b"\r\n\r\n")
            if found >= 0:
                return found + 4 - len(tail)
        found = data.find(b"\r\n\r\n", pos)
        return len(data) if found < 0 else found + 4

    def _walk(self, data: bytes, pos: int) -> int:
        """A chunked body from ``pos``: to its end, the read's, or just after a refused
        chunk's size line (:attr:`refusal`); the framing is left where the cut is. (One step
        per chunk, in locals: a body of small chunks is mostly this loop.)"""
        end = len(data)
        framing, left = self.framing, self._left
        chunks, declared = self._chunks, self._declared
        allowed, average = self._allowed, self._average
        carry, self._carry = self._carry, b""  # a line begun in an earlier read, if any
        while pos < end:
            if framing is _CHUNK_DATA:
                if end - pos < left:
                    left -= end - pos
                    pos = end
                    break
                pos += left
                framing = _CHUNK_LINE
            lf = data.find(b"\n", pos)
            if lf < 0 or lf - pos >= MAX_LINE_BYTES - len(carry):
                if end - pos >= MAX_LINE_BYTES - len(carry):
                    self.refusal = (400, "malformed request: chunk-size or trailer line too long")
                else:
                    self._carry = carry + data[pos:]
                    pos = end
                break
            if carry:  # (its CR may be in the carry)
                line, carry = (carry + data[pos:lf])[:-1], b""
            else:
                line = data[pos : lf - 1] if lf > pos else b""  # without its CRLF
            pos = lf + 1
            if framing is _TRAILER:
                if not line:  # the blank line that ends the body
                    framing = _HEAD
                    break
                continue
            try:
                size = int(line, 16)  # hex alone, most lines (int is laxer: llhttp judges)
            except ValueError:
                match = _HEX.match(line)  # with extensions
                if match is None:
                    break  # not a chunk size: llhttp refuses the line
                size = int(match[0], 16)
            if not size:
                framing = _TRAILER
                continue
            chunks += 1
            declared += size
            left = size + 2
            framing = _CHUNK_DATA
            if declared > allowed:
                self.refusal = (413, "request body too large")
                break
            if average and chunks > FREE_CHUNKS + declared // average:
                self.refusal = (
                    400,
                    f"request body in too many small chunks (more than {FREE_CHUNKS} plus one "
                    f"per {average} bytes)",
                )
                break
        self.framing, self._left = framing, left
        self._chunks, self._declared = chunks, declared
        return pos
