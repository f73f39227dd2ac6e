"""App faults over real sockets: an app that raises or answers wrongly gets its request a 500
(the traceback goes to the log, not to the client), an app silent past --app-timeout a 504 (an
ASGI task is cancelled, a WSGI thread abandoned and counted), a full WSGI pool a 503 with
Retry-After; and after each, the connection and the server go on serving."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import logging
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

from mutls.server import ServerConfig, Timeouts, serve_in_thread

#: how long a blocked app waits for the test to release it (a bound, never reached).
BLOCK_S = 20.0
BIG_CHUNK = b"x" * 65536
BIG_CHUNKS = 512  # 32 MiB: more than the socket buffers hold, so the client's pace matters


class Gate:
    """Lets a test hold an app inside a request and know when it is there."""

    def __init__(self) -> None:
        self.entered = threading.Semaphore(0)
        self.release = threading.Event()
        self.finished = threading.Event()

    def wait_entered(self, count: int = 1) -> None:
        for _ in range(count):
            assert self.entered.acquire(timeout=10), "the app was never called"


# -- the apps ----------------------------------------------------------------------------------


def make_wsgi(gate: Gate) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> Iterable[Any]:
        path = environ["PATH_INFO"]
        if path == "/raise":
            raise RuntimeError("boom: secret detail")
        if path == "/str-body":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return ["not bytes"]
        if path == "/no-start-response":
            return [b"body without a head"]
        if path == "/bad-status":
            start_response("OK", [])
            return [b""]
        if path == "/bad-header":
            start_response("200 OK", [("X-Split", "a\r\nInjected: yes")])
            return [b"x"]
        if path == "/none":
            start_response("200 OK", [])
            return None  # type: ignore[return-value]
        if path == "/raise-after-body":
            return raise_after_body(start_response)
        if path == "/block":
            gate.entered.release()
            gate.release.wait(BLOCK_S)
            gate.finished.set()
            start_response("200 OK", [("Content-Length", "4")])
            return [b"late"]
        body = f"ok {path}".encode()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]

    def raise_after_body(start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [])
        yield b"first part"
        raise RuntimeError("failed half way")

    return app


def make_asgi(gate: Gate, cancelled: threading.Event) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise RuntimeError("no lifespan")
        path = scope["path"]
        start = {"type": "http.response.start", "status": 200, "headers": []}
        if path == "/raise":
            raise RuntimeError("boom: secret detail")
        if path == "/body-before-start":
            await send({"type": "http.response.body", "body": b"x"})
        elif path == "/start-twice":
            await send(start)
            await send(start)
        elif path == "/str-body":
            await send(start)
            await send({"type": "http.response.body", "body": "not bytes"})
        elif path == "/str-headers":
            await send({**start, "headers": [("x-a", "b")]})
            await send({"type": "http.response.body", "body": b"x"})
        elif path == "/start-only":
            await send(start)
        elif path == "/no-response":
            return
        elif path == "/unknown-message":
            await send({"type": "http.response.trailers"})
        elif path == "/hang":
            try:
                await asyncio.sleep(BLOCK_S)
            except asyncio.CancelledError:
                cancelled.set()
                raise
        elif path == "/stream":  # output every 0.2 s for 1.2 s: longer than the timeout
            await send({**start, "headers": [(b"content-type", b"text/plain")]})
            for i in range(6):
                await asyncio.sleep(0.2)
                await send({"type": "http.response.body", "body": b"%d" % i, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        elif path == "/big":
            await send(start)
            for _ in range(BIG_CHUNKS):
                await send({"type": "http.response.body", "body": BIG_CHUNK, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        else:
            body = f"ok {path}".encode()
            await send({**start, "headers": [(b"content-length", b"%d" % len(body))]})
            await send({"type": "http.response.body", "body": body})

    return app


# -- helpers -----------------------------------------------------------------------------------


def config(app: Any, **changes: Any) -> ServerConfig:
    timeouts = Timeouts(app=changes.pop("app_timeout", 5.0), graceful=1.0)
    return ServerConfig(port=0, app=app, timeouts=timeouts, **changes)


def get(conn: http.client.HTTPConnection, path: str) -> tuple[int, dict[str, str], bytes]:
    conn.request("GET", path)
    response = conn.getresponse()
    return response.status, dict(response.getheaders()), response.read()


@contextlib.contextmanager
def connect(port: int) -> Iterator[http.client.HTTPConnection]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        yield conn
    finally:
        conn.close()


@pytest.fixture
def gate() -> Iterator[Gate]:
    gate = Gate()
    yield gate
    gate.release.set()  # never leave a thread blocked


# -- 500 ---------------------------------------------------------------------------------------

WSGI_FAULTS = ["/raise", "/str-body", "/no-start-response", "/bad-status", "/bad-header", "/none"]


def test_wsgi_faults_get_500_and_the_connection_goes_on(
    gate: Gate, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mutls")
    with serve_in_thread(config(make_wsgi(gate))) as server, connect(server.ports[0]) as conn:
        for path in WSGI_FAULTS:
            status, headers, body = get(conn, path)
            assert status == 500, path
            assert body == b"internal server error\n", path  # no traceback, no detail
            assert "Injected" not in headers
            assert get(conn, "/ok")[::2] == (200, b"ok /ok")  # the same connection goes on
    failures = [r for r in caplog.records if r.exc_info is not None]
    assert len(failures) >= len(WSGI_FAULTS)
    assert any("boom: secret detail" in caplog.text for _ in failures)


def test_wsgi_failure_after_the_body_started_closes_that_connection_only(gate: Gate) -> None:
    with serve_in_thread(config(make_wsgi(gate))) as server:
        with connect(server.ports[0]) as conn:
            conn.request("GET", "/raise-after-body")
            response = conn.getresponse()
            assert response.status == 200
            with pytest.raises(http.client.IncompleteRead):
                response.read()  # cut short: never passed off as a whole response
        with connect(server.ports[0]) as conn:
            assert get(conn, "/ok")[0] == 200


ASGI_FAULTS = [
    "/raise",
    "/body-before-start",
    "/start-twice",
    "/str-body",
    "/str-headers",
    "/start-only",
    "/no-response",
    "/unknown-message",
]


def test_asgi_faults_get_500_and_the_connection_goes_on(
    gate: Gate, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mutls")
    app = make_asgi(gate, threading.Event())
    with serve_in_thread(config(app)) as server, connect(server.ports[0]) as conn:
        for path in ASGI_FAULTS:
            status, _headers, body = get(conn, path)
            assert (status, body) == (500, b"internal server error\n"), path
            assert get(conn, "/ok")[2] == b"ok /ok"
    assert "boom: secret detail" in caplog.text  # the traceback is in the log
    assert any(r.exc_info is not None for r in caplog.records)


# -- 504 ---------------------------------------------------------------------------------------


def test_asgi_app_past_the_timeout_is_cancelled_with_504(
    gate: Gate, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mutls")
    cancelled = threading.Event()
    app = make_asgi(gate, cancelled)
    with serve_in_thread(config(app, app_timeout=0.5)) as server:
        with connect(server.ports[0]) as conn:
            status, _headers, body = get(conn, "/hang")
            assert status == 504 and b"did not answer in time" in body
            assert cancelled.wait(5), "the app's task was not cancelled"
            assert get(conn, "/ok")[2] == b"ok /ok"  # the same connection goes on
    assert "--app-timeout" in caplog.text


def test_the_timeout_is_for_silence_not_for_streaming_or_slow_clients(gate: Gate) -> None:
    app = make_asgi(gate, threading.Event())
    with serve_in_thread(config(app, app_timeout=0.5)) as server:
        with connect(server.ports[0]) as conn:
            status, _headers, body = get(conn, "/stream")  # 1.2 s, a piece every 0.2 s
            assert (status, body) == (200, b"012345")
        with socket.create_connection(("127.0.0.1", server.ports[0]), timeout=10) as sock:
            sock.sendall(b"GET /big HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
            time.sleep(1.5)  # the app waits on us, three timeouts long
            received = 0
            while chunk := sock.recv(1 << 20):
                received += len(chunk)
            assert received > BIG_CHUNKS * len(BIG_CHUNK)  # all of it (plus head and framing)


def test_wsgi_thread_past_the_timeout_is_abandoned_with_504(
    gate: Gate, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mutls")
    app = make_wsgi(gate)
    with serve_in_thread(config(app, app_timeout=0.5, threads=1, thread_queue=0)) as server:
        with connect(server.ports[0]) as conn:
            assert get(conn, "/block")[0] == 504
            assert "1 abandoned so far, 1 still running" in caplog.text
            # The only thread is stuck, yet another took its place:
            assert get(conn, "/ok")[2] == b"ok /ok"
            gate.release.set()
            assert gate.finished.wait(10)
            time.sleep(0.2)  # the abandoned thread's late answer must go nowhere
            assert get(conn, "/after")[2] == b"ok /after"


# -- 503 ---------------------------------------------------------------------------------------


def test_a_full_wsgi_pool_answers_503_with_retry_after(
    gate: Gate, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mutls")
    app = make_wsgi(gate)
    with serve_in_thread(config(app, threads=1, thread_queue=0)) as server:
        port = server.ports[0]
        results: list[int] = []

        def blocked_request() -> None:
            with connect(port) as conn:
                results.append(get(conn, "/block")[0])

        running = threading.Thread(target=blocked_request)
        running.start()
        gate.wait_entered()  # the one thread is busy, and no request may wait
        with connect(port) as conn:
            status, headers, body = get(conn, "/ok")
            assert status == 503
            assert headers.get("retry-after") == "1"
            assert b"busy" in body
            gate.release.set()
            running.join(10)
            assert results == [200]  # the request in the thread was not disturbed
            # Its thread gives its place back a moment after the answer went out:
            deadline = time.monotonic() + 5
            while (status := get(conn, "/ok")[0]) == 503 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert status == 200  # the same connection, served again
    assert "answered 503" in caplog.text
