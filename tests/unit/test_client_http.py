"""The client's HTTP/1.1 pieces: URLs, request bytes, the response parser."""

from __future__ import annotations

import pytest

from mutls.client.http import Request, ResponseParser, Target, parse_url, summary_line
from mutls.errors import UsageError


def test_parse_url() -> None:
    assert parse_url("https://localhost:4433/cctest.aspx?a=1") == Target(
        "https", "localhost", 4433, "/cctest.aspx?a=1"
    )
    assert parse_url("https://[::1]/") == Target("https", "::1", 443, "/")
    assert parse_url("https://example.org") == Target("https", "example.org", 443, "/")


@pytest.mark.parametrize("url", ["http://localhost/", "localhost:4433", "https://", "https://h:x/"])
def test_parse_url_refuses(url: str) -> None:
    with pytest.raises(UsageError):
        parse_url(url)


def test_host_header_brackets_ipv6_and_drops_default_port() -> None:
    assert Target("https", "::1", 8443, "/").host_header == "[::1]:8443"
    assert Target("https", "localhost", 443, "/").host_header == "localhost"


def test_request_bytes_defaults_and_overrides() -> None:
    target = parse_url("https://localhost:4433/x")
    raw = Request("https://localhost:4433/x", "POST", (("Accept", "text/plain"),), b"a=b").to_bytes(
        target
    )
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /x HTTP/1.1"
    assert "Host: localhost:4433" in lines
    assert "Content-Length: 3" in lines
    assert "Accept: text/plain" in lines and "Accept: */*" not in lines  # caller's wins
    assert body == b"a=b"


def test_parser_content_length_in_pieces() -> None:
    parser = ResponseParser()
    data = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello"
    for i in range(len(data)):
        parser.feed(data[i : i + 1])
    assert parser.complete
    response = parser.response
    assert (response.status, response.reason, response.body) == (403, "Forbidden", b"hello")
    assert response.headers == [("Content-Length", "5"), ("X-A", "1")]
    assert not response.ok
    assert response.status_line == "HTTP/1.1 403 Forbidden"


def test_parser_chunked() -> None:
    parser = ResponseParser()
    parser.feed(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )
    assert parser.complete and parser.response.body == b"abcde"


def test_parser_read_to_close_and_truncation() -> None:
    closed = ResponseParser()
    closed.feed(b"HTTP/1.0 200 ok\r\nContent-type: text/plain\r\n\r\nall of it")
    assert not closed.complete
    assert closed.end_of_stream() and closed.response.body == b"all of it"
    short = ResponseParser()
    short.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    assert not short.end_of_stream()  # framed, and the frame was not filled


def test_parser_head_stops_at_headers() -> None:
    parser = ResponseParser(head_only=True)
    parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
    assert parser.complete and parser.response.body == b""


def test_parser_refuses_garbage() -> None:
    with pytest.raises(ValueError, match="malformed HTTP response"):
        ResponseParser().feed(b"SSH-2.0-OpenSSH\r\n\r\n")


def test_first_line_strips_markup() -> None:
    parser = ResponseParser()
    body = b"<html>\r\n<head><title>400 No required SSL certificate was sent</title></head>\r\n"
    parser.feed(b"HTTP/1.1 400 Bad Request\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    assert parser.response.first_line == "400 No required SSL certificate was sent"


def test_summary_line_prefers_an_html_pages_first_paragraph() -> None:
    page = "<html><head><title>cctest</title></head>\n<body><p>Hello <b>CN=poupou</b>,\n  your"
    page += " certificate is valid</p><p>more</p>"
    assert summary_line(page) == "Hello CN=poupou, your certificate is valid"
    assert summary_line("client certificate required\n") == "client certificate required"
    assert summary_line("<p></p>\nplain") == "plain"
    assert summary_line("") == ""
