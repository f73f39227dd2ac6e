"""ResponseWriter: headers an app gives can never split the response."""

from __future__ import annotations

import pytest

from mutls.http.events import Request
from mutls.http.response import ResponseWriter

GET = Request("GET", b"/", b"/", "/", b"", "1.1", [(b"host", b"x")], keep_alive=True)


@pytest.mark.parametrize(
    "headers",
    [
        [(b"x-a", b"1\r\nset-cookie: evil=1")],
        [(b"x-a", b"1\nb")],
        [(b"x\rb", b"1")],
        [(b"Content-Length", b"2\r\n")],
        [(b"connection", b"close\r\nx: 1")],
        [(b"Server", b"a\rb")],
        [(b"content-type", b"text/plain"), (b"date", b"\n")],
    ],
)
def test_a_line_break_in_a_header_is_refused(headers: list[tuple[bytes, bytes]]) -> None:
    with pytest.raises(ValueError, match="contains a line break"):
        ResponseWriter(GET, keep_alive=True).head(200, headers)


def test_the_head_keeps_the_apps_headers_and_adds_ours() -> None:
    writer = ResponseWriter(GET, keep_alive=True)
    head = writer.head(200, [(b"Content-Type", b"text/plain"), (b"Content-Length", b"2")])
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 200 OK"
    assert b"Content-Type: text/plain" in lines
    assert b"content-length: 2" in lines and b"Content-Length: 2" not in lines
    assert any(line.startswith(b"date: ") for line in lines)
    assert b"server: mutls" in lines
    assert head.endswith(b"\r\n\r\n") and head.count(b"\r\n") == len(lines) - 1
    assert (
        ResponseWriter(GET, keep_alive=False)
        .head(599, [(b"Server", b"me")])
        .startswith(b"HTTP/1.1 599 \r\nServer: me\r\n")
    )
