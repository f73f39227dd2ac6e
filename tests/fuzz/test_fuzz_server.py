"""The whole server under hypothesis, over a socket: valid but odd requests (names in any case,
names with ``_`` and client-certificate headers mixed in, leading whitespace in values, bodies
chunked at random with extensions and trailers, several requests pipelined, the bytes written in
pieces cut at random) must reach the app, WSGI or ASGI, exactly as their canonical form does
(one write, Content-Length, names as given): the same method, path, query, headers and body. A
request may instead be answered 4xx, the connection then closed, and nothing after it served.

Budget: ``tests/fuzz/budget.py`` (small and derandomized in ``make test``;
``MUTLS_FUZZ_SCALE=20`` for a deeper, random hunt).
"""

from __future__ import annotations

import itertools
import json
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mutls.server import RunningServer, ServerConfig, Timeouts

from budget import budget
from helpers import LazyServers, asgi_answer, asgi_body, read_until_close, wsgi_json

WAIT = 10
#: what framing and keep-alive add or change: not part of what the app must see alike.
FRAMING = {"content-length", "transfer-encoding", "connection"}


def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    headers = [
        [k[5:].lower().replace("_", "-"), v]
        for k, v in environ.items()
        if k.startswith("HTTP_") and k[5:].lower().replace("_", "-") not in FRAMING
    ]
    if environ.get("CONTENT_TYPE"):
        headers.append(["content-type", environ["CONTENT_TYPE"]])
    seen = {
        "method": environ["REQUEST_METHOD"],
        "path": environ["PATH_INFO"],
        "query": environ["QUERY_STRING"],
        "headers": sorted(headers),
        "body": environ["wsgi.input"].read().hex(),
    }
    return wsgi_json(start_response, seen)


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = await asgi_body(receive)
    seen = {
        "method": scope["method"],
        "path": scope["path"],
        "query": scope["query_string"].decode("latin-1"),
        "headers": [[n.decode("latin-1"), v.decode("latin-1")] for n, v in scope["headers"]],
        "body": body.hex(),
    }
    seen["headers"] = [h for h in seen["headers"] if h[0] not in FRAMING]
    await asgi_answer(send, json.dumps(seen).encode())


@pytest.fixture(scope="module")
def servers() -> Iterator[LazyServers]:
    timeouts = Timeouts(handshake=5.0, header=5.0, keep_alive=5.0, graceful=2.0)
    apps = {"wsgi": wsgi_app, "asgi": asgi_app}
    lazy = LazyServers(lambda kind: ServerConfig(port=0, app=apps[kind], timeouts=timeouts))
    yield lazy
    lazy.close()


# -- requests, canonical and odd -----------------------------------------------------------------

TOKEN = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8)
NAME = st.lists(TOKEN, min_size=1, max_size=3).map("-".join)
VALUE = st.text(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^`|~/:;=?@",
    max_size=20,
)
PATH = st.text("abcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@/", max_size=20)
RESERVED = {"host", "expect", "upgrade", "te", "trailer", *FRAMING}
CERTIFICATE = [
    "X-Client-Cert",
    "X-SSL-Client-Verify",
    "SSL-Client-S-DN",
    "Client-Cert",
    "x-forwarded-client-cert",
]


@dataclass
class Exchange:
    """One request as bytes: its canonical form, and an odd form the app must see alike."""

    canonical: bytes
    odd: bytes


def chunked(data: bytes, sizes: list[int], extensions: list[str], trailers: bool) -> bytes:
    out, rest, n = b"", data, 0
    while rest:
        size = sizes[n % len(sizes)] if sizes else len(rest)
        part, rest = rest[:size], rest[size:]
        ext = extensions[n % len(extensions)] if extensions else ""
        out += b"%x%s\r\n%s\r\n" % (len(part), ext.encode(), part)
        n += 1
    return out + b"0\r\n" + (b"X-Trailer: t\r\n" if trailers else b"") + b"\r\n"


@st.composite
def exchanges(draw: st.DrawFn, last: bool) -> Exchange:
    method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]))
    target = "/" + draw(PATH) + draw(st.sampled_from(["", "?"])) + draw(PATH)
    names = draw(st.lists(NAME.filter(lambda n: n not in RESERVED), max_size=5))
    headers = [(name, draw(VALUE)) for name in names]
    body = draw(st.binary(max_size=200)) if method != "GET" else b""
    close = [("Connection", "close")] if last else []
    canonical = [("host", "h"), *headers, *close]
    if body:
        canonical.append(("Content-Length", str(len(body))))
    # The odd form: names in random case, leading whitespace, dropped fields mixed in.
    odd: list[tuple[str, str]] = []
    for name, value in [("Host", "h"), *headers, *close]:
        if draw(st.booleans()):
            odd.append((draw(st.sampled_from(CERTIFICATE)), "forged"))
        if draw(st.booleans()):
            odd.append((name.replace("-", "_") + "_", "dropped"))
        cased = "".join(c.upper() if draw(st.booleans()) else c for c in name)
        odd.append((cased, draw(st.sampled_from(["", " ", "  ", "\t"])) + value))
    wire = body
    if body or (method != "GET" and draw(st.booleans())):  # an empty body framed, or not
        if draw(st.booleans()):
            sizes = draw(st.lists(st.integers(1, 64), max_size=6))
            extensions = draw(st.lists(st.sampled_from(["", ";a", ";a=b", ';q="x;y"']), max_size=3))
            wire = chunked(body, sizes, extensions, draw(st.booleans()))
            odd.append(("Transfer-Encoding", "chunked"))
        else:
            odd.append(("Content-Length", str(len(body))))
    head = f"{method} {target} HTTP/1.1\r\n"
    return Exchange(
        canonical=(head + "".join(f"{n}: {v}\r\n" for n, v in canonical) + "\r\n").encode() + body,
        odd=(head + "".join(f"{n}:{v}\r\n" for n, v in odd) + "\r\n").encode() + wire,
    )


@st.composite
def pipelines(draw: st.DrawFn) -> list[Exchange]:
    count = draw(st.integers(1, 3))
    return [draw(exchanges(last=i == count - 1)) for i in range(count)]


# -- sending and reading ---------------------------------------------------------------------------


def send(server: RunningServer, data: bytes, cuts: list[int]) -> list[tuple[int, Any]]:
    """``data`` written in pieces cut at ``cuts``; every response until the server closes, as
    (status, what the app saw or the refusal's text)."""
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    with socket.create_connection(("127.0.0.1", server.ports[0]), timeout=WAIT) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            for a, b in itertools.pairwise(points):
                sock.sendall(data[a:b])
        except OSError:
            pass  # refused and closed while we wrote: the responses say why
        raw, closed = read_until_close(sock)
    assert closed, "the server neither answered every request nor closed"
    return responses(raw)


def responses(raw: bytes) -> list[tuple[int, Any]]:
    found = []
    while raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        match = re.match(rb"HTTP/1\.1 (\d{3}) ", head)
        assert match, raw[:200]
        length = int(re.search(rb"(?i)\r\ncontent-length: (\d+)", head)[1])  # type: ignore[index]
        body, raw = rest[:length], rest[length:]
        status = int(match[1])
        found.append((status, json.loads(body) if status == 200 else body.decode()))
    return found


@budget(25)
@given(
    kind=st.sampled_from(["wsgi", "asgi"]),
    pipeline=pipelines(),
    cuts=st.lists(st.integers(0, 5000), max_size=12),
)
def test_odd_requests_reach_the_app_as_their_canonical_form(
    servers: LazyServers, kind: str, pipeline: list[Exchange], cuts: list[int]
) -> None:
    server = servers(kind)
    want = send(server, b"".join(e.canonical for e in pipeline), [])
    assert [status for status, _ in want] == [200] * len(pipeline), want
    got = send(server, b"".join(e.odd for e in pipeline), cuts)
    refused = [i for i, (status, _) in enumerate(got) if status != 200]
    if refused:  # a 4xx closes the connection: nothing after it
        assert refused == [len(got) - 1] and 400 <= got[-1][0] < 500, got
        got = got[:-1]
    else:
        assert len(got) == len(pipeline)
    assert got == want[: len(got)]
