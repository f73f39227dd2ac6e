"""HTTP/1.1 for the client: a URL, the request bytes, and a response parser (httptools)."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httptools

from mutls import __version__
from mutls.errors import UsageError

USER_AGENT = f"mutls/{__version__}"


@dataclass(frozen=True)
class Target:
    """Where a URL points: scheme, host (no brackets), port, and the request target."""

    scheme: str
    host: str
    port: int
    path: str

    @property
    def host_header(self) -> str:
        """The ``Host`` header: brackets around IPv6, the port when not the default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == 443 else f"{host}:{self.port}"


def parse_url(url: str) -> Target:
    """Split an ``https://`` URL; anything else is a usage error."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UsageError(f"{url}: not a valid URL ({exc})") from None
    if parts.scheme != "https" or not parts.hostname:
        raise UsageError(f"{url}: expected an https:// URL, e.g. https://localhost:4433/")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(parts.scheme, parts.hostname, port or 443, path)


@dataclass(frozen=True)
class Request:
    """What to send: method, URL, extra headers (in order) and an optional body."""

    url: str
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None

    def to_bytes(self, target: Target) -> bytes:
        """The request as sent: our defaults first unless the caller set the same header."""
        given = {name.lower() for name, _ in self.headers}
        lines = [f"{self.method} {target.path} HTTP/1.1"]
        defaults = [
            ("Host", target.host_header),
            ("User-Agent", USER_AGENT),
            ("Accept", "*/*"),
            ("Connection", "close"),
        ]
        if self.body is not None:
            defaults.append(("Content-Length", str(len(self.body))))
            defaults.append(("Content-Type", "application/x-www-form-urlencoded"))
        lines += [f"{n}: {v}" for n, v in defaults if n.lower() not in given]
        lines += [f"{n}: {v}" for n, v in self.headers]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return head + (self.body or b"")


@dataclass
class Response:
    """A parsed response. ``body`` is decoded from chunked transfer, not decompressed."""

    status: int = 0
    reason: str = ""
    version: str = "1.1"
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @property
    def ok(self) -> bool:
        """A 2xx status."""
        return 200 <= self.status < 300

    @property
    def status_line(self) -> str:
        """``HTTP/1.1 200 OK``."""
        return f"HTTP/{self.version} {self.status} {self.reason}".rstrip()

    def head(self) -> str:
        """Status line and headers, as ``curl -i`` shows them."""
        lines = [self.status_line, *(f"{n}: {v}" for n, v in self.headers)]
        return "\r\n".join(lines) + "\r\n\r\n"

    @property
    def first_line(self) -> str:
        """What the page says first, for reports (see :func:`summary_line`)."""
        return summary_line(self.body.decode("utf-8", "replace"))


def summary_line(text: str) -> str:
    """What a page says first: an HTML page's first paragraph (its title is not news), else
    the first non-empty line, without tags, at most 200 characters."""
    start = text.find("<p>")
    if start >= 0:
        end = text.find("</p>", start)
        paragraph = _strip_tags(text[start + 3 : end if end >= 0 else None]).strip()
        if paragraph:
            return " ".join(paragraph.split())[:200]
    for line in text.splitlines():
        stripped = _strip_tags(line).strip()
        if stripped:
            return stripped[:200]
    return ""


def _strip_tags(line: str) -> str:
    out, inside = [], False
    for ch in line:
        if ch == "<":
            inside = True
        elif ch == ">":
            inside = False
        elif not inside:
            out.append(ch)
    return "".join(out)


class ResponseParser:
    """Feed bytes from the connection; ``complete`` once the whole response is in."""

    def __init__(self, *, head_only: bool = False) -> None:
        self.response = Response()
        self.headers_done = False
        self.complete = False
        self._head_only = head_only
        self._body: list[bytes] = []
        self._name = b""
        self._parser = httptools.HttpResponseParser(self)

    # httptools callbacks
    def on_status(self, status: bytes) -> None:
        self.response.reason += status.decode("latin-1")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.response.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self.headers_done = True
        self.response.status = self._parser.get_status_code()
        self.response.version = self._parser.get_http_version()
        if self._head_only:
            self.complete = True

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        self.complete = True

    def feed(self, data: bytes) -> None:
        """Parse more bytes (raises ``ValueError`` on a malformed response)."""
        if self.complete:
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            raise ValueError(f"malformed HTTP response: {exc}") from None
        self.response.body = b"".join(self._body)

    def end_of_stream(self) -> bool:
        """The peer closed: True when what we have is a whole response (read-to-close body)."""
        self.response.body = b"".join(self._body)
        if self.complete:
            return True
        framed = {n.lower() for n, _ in self.response.headers} & {
            "content-length",
            "transfer-encoding",
        }
        self.complete = self.headers_done and not framed
        return self.complete
