"""WebSocket over mutual TLS with a real client (the ``websockets`` library presenting
certificates through ``mutls.client.ssl_context()``), and over plain HTTP.

The app sees the ASGI ``websocket`` scope with the same TLS extension and verdict as an
``http`` scope; the policy's 403 comes before the app; denial responses, subprotocols, close
codes and reasons, limits and graceful shutdown behave as docs/server.md says.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import socket
import ssl
import threading
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

import mutls
from mutls.authz import Access, AllowRules, UserName
from mutls.server import ServerConfig, serve_in_thread
from mutls.server.config import Timeouts
from mutls.ws import WebSocketLimits

#: what the app saw, per test: ("called", path), ("disconnect", code, reason), ("send failed",).
SEEN: queue.Queue[tuple[Any, ...]] = queue.Queue()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Echo, and a route per behaviour under test."""
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"http"})
        return
    if scope["type"] != "websocket":
        return
    path = scope["path"]
    SEEN.put(("called", path))
    assert (await receive())["type"] == "websocket.connect"
    if path == "/deny":
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 401,
                "headers": [(b"content-type", b"text/plain"), (b"x-why", b"denied")],
            }
        )
        await send({"type": "websocket.http.response.body", "body": b"no ", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"entry"})
        return
    if path == "/close-first":
        await send({"type": "websocket.close", "code": 4000})
        return
    if path == "/no-accept":
        return
    if path == "/raise":
        raise RuntimeError("the app fails before accepting")
    if path == "/bad-subprotocol":  # one the client did not offer: the app's mistake, a 500
        await send({"type": "websocket.accept", "subprotocol": "never-offered"})
    offered = scope["subprotocols"]
    await send(
        {
            "type": "websocket.accept",
            "subprotocol": offered[-1] if offered else None,
            "headers": [(b"x-accepted", b"yes")],
        }
    )
    if path == "/scope":
        cert = mutls.client_certificate(scope)
        seen = {
            "type": scope["type"],
            "scheme": scope["scheme"],
            "spec": scope["asgi"]["spec_version"],
            "path": scope["path"],
            "query": scope["query_string"].decode(),
            "subprotocols": scope["subprotocols"],
            "tls": {
                k: v for k, v in scope["extensions"].get("tls", {}).items() if k != "server_cert"
            },
            "verify": cert.verify_status if cert is not None else None,
            "valid": cert.valid if cert is not None else None,
            "same": cert is scope["extensions"].get("mutls", {}).get("client_certificate"),
            "denial_ext": "websocket.http.response" in scope["extensions"],
            "headers": {k.decode(): v.decode() for k, v in scope["headers"]},
        }
        await send({"type": "websocket.send", "text": json.dumps(seen)})
    if path == "/slow":  # takes its messages late: the queue fills, the socket is not read
        await asyncio.sleep(2)
    if path == "/stuck":  # takes no message until the server stops
        await asyncio.sleep(3600)
    if path == "/flood":  # a client that stops reading is dropped by --timeout-send
        try:
            while True:
                await send({"type": "websocket.send", "bytes": b"x" * 65536})
        except OSError:
            SEEN.put(("send failed",))
            return
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            SEEN.put(("disconnect", message["code"], message.get("reason", "")))
            return
        text = message.get("text")
        if text is not None and text.startswith("close:"):
            _, code, reason = text.split(":", 2)
            await send({"type": "websocket.close", "code": int(code), "reason": reason})
            continue
        if text is not None:
            await send({"type": "websocket.send", "text": text})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


def wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"wsgi"]


@pytest.fixture(autouse=True)
def _clear() -> None:
    while not SEEN.empty():
        SEEN.get_nowait()


def seen(timeout: float = 10) -> tuple[Any, ...]:
    return SEEN.get(timeout=timeout)


def nothing_seen() -> bool:
    try:
        SEEN.get(timeout=0.5)
    except queue.Empty:
        return True
    return False


def wss(server: Any, path: str) -> str:
    return f"wss://localhost:{server.port}{path}"


# -- the conversation ------------------------------------------------------------------------


def test_echo_text_and_bytes_over_wss_with_a_client_certificate(
    mutls_server: Any, mutls_client_cert: Any
) -> None:
    server = mutls_server(app)
    client = mutls_client_cert("CN=ws client")
    with connect(wss(server, "/echo"), ssl=client.ssl_context(), open_timeout=10) as ws:
        ws.send("hello, wörld")
        assert ws.recv(timeout=10) == "hello, wörld"
        ws.send(b"\x00\xffbinary")
        assert ws.recv(timeout=10) == b"\x00\xffbinary"
        big = "x" * 200_000  # several TLS records, one message
        ws.send(big)
        assert ws.recv(timeout=10) == big
        ws.send(["frag", "mented"])  # a fragmented message arrives whole
        assert ws.recv(timeout=10) == "fragmented"
    assert seen() == ("called", "/echo")
    assert seen() == ("disconnect", 1000, "")


def test_subprotocol_headers_and_the_scope(mutls_server: Any, mutls_client_cert: Any) -> None:
    server = mutls_server(app)
    client = mutls_client_cert("CN=scope client")
    with connect(
        wss(server, "/scope?a=1"),
        ssl=client.ssl_context(),
        subprotocols=["chat.v1", "chat.v2"],  # type: ignore[list-item]
        additional_headers={"X-Hello": "there"},
        open_timeout=10,
    ) as ws:
        assert ws.subprotocol == "chat.v2"
        assert ws.response.headers["x-accepted"] == "yes"
        got = json.loads(ws.recv(timeout=10))
    assert got["type"] == "websocket" and got["scheme"] == "wss" and got["spec"] == "2.4"
    assert got["path"] == "/scope" and got["query"] == "a=1"
    assert got["subprotocols"] == ["chat.v1", "chat.v2"]
    assert got["headers"]["x-hello"] == "there"
    assert got["verify"] == "SUCCESS" and got["valid"] is True and got["same"] is True
    assert got["tls"]["client_cert_name"] == "CN=scope client"
    assert got["tls"]["client_cert_error"] is None and len(got["tls"]["client_cert_chain"]) >= 1
    assert got["denial_ext"] is True


def test_the_scope_is_the_http_scopes_tls_extension(
    mutls_server: Any, mutls_client_cert: Any
) -> None:
    """Same connection facts, same renderer: the websocket scope's ``tls`` is the http one."""
    http_ext: dict[str, Any] = {}

    async def both(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            http_ext.update(scope["extensions"]["tls"])
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})
        elif scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            same = scope["extensions"]["tls"] == http_ext
            await send({"type": "websocket.send", "text": "same" if same else "different"})
            await send({"type": "websocket.close"})

    server = mutls_server(both)
    client = mutls_client_cert("CN=both")
    import httpx

    with httpx.Client(verify=client.ssl_context(), timeout=10) as http:
        assert http.get(server.url).status_code == 204
    with connect(wss(server, "/"), ssl=client.ssl_context(), open_timeout=10) as ws:
        assert ws.recv(timeout=10) == "same"


@pytest.mark.parametrize(("code", "reason"), [(1000, ""), (4001, "bye now"), (3000, "ü")])
def test_the_apps_close_code_and_reason_reach_the_client(
    mutls_server: Any, mutls_client_cert: Any, code: int, reason: str
) -> None:
    server = mutls_server(app)
    with connect(
        wss(server, "/echo"), ssl=mutls_client_cert().ssl_context(), open_timeout=10
    ) as ws:
        ws.send(f"close:{code}:{reason}")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (code, reason)


def test_the_clients_close_code_and_reason_reach_the_app(
    mutls_server: Any, mutls_client_cert: Any
) -> None:
    server = mutls_server(app)
    with connect(
        wss(server, "/echo"), ssl=mutls_client_cert().ssl_context(), open_timeout=10
    ) as ws:
        ws.close(4002, "see you")
    assert seen() == ("called", "/echo")
    assert seen() == ("disconnect", 4002, "see you")


# -- refusals --------------------------------------------------------------------------------


def test_a_denial_response(mutls_server: Any, mutls_client_cert: Any) -> None:
    server = mutls_server(app)
    with pytest.raises(InvalidStatus) as denied:
        connect(wss(server, "/deny"), ssl=mutls_client_cert().ssl_context(), open_timeout=10)
    response = denied.value.response
    assert response.status_code == 401
    assert response.headers["x-why"] == "denied"
    assert response.body == b"no entry"


@pytest.mark.parametrize(
    ("path", "status"),
    [("/close-first", 403), ("/no-accept", 403), ("/raise", 500), ("/bad-subprotocol", 500)],
)
def test_an_app_that_does_not_accept(
    mutls_server: Any, mutls_client_cert: Any, path: str, status: int
) -> None:
    server = mutls_server(app)
    with pytest.raises(InvalidStatus) as refused:
        connect(wss(server, path), ssl=mutls_client_cert().ssl_context(), open_timeout=10)
    assert refused.value.response.status_code == status


def test_strict_refuses_an_invalid_certificate_before_the_app(
    mutls_server: Any, mutls_client_cert: Any
) -> None:
    from mutls.pki import CertificateAuthority

    stranger = mutls_client_cert("CN=stranger", issuer=CertificateAuthority.create("CN=other"))
    server = mutls_server(app, client_cert="require", verify="strict")
    with pytest.raises(InvalidStatus) as refused:
        connect(wss(server, "/echo"), ssl=stranger.ssl_context(), open_timeout=10)
    assert refused.value.response.status_code == 403
    assert b"certificate" in refused.value.response.body
    assert nothing_seen()  # the app never ran


def test_strict_refuses_a_missing_certificate_before_the_app(
    mutls_server: Any, mutls_ca: Any
) -> None:
    server = mutls_server(app, client_cert="require", verify="strict")
    anonymous = ssl.create_default_context(cafile=str(mutls_ca.cert_path))
    with pytest.raises(InvalidStatus) as refused:
        connect(wss(server, "/echo"), ssl=anonymous, open_timeout=10)
    assert refused.value.response.status_code == 403
    assert nothing_seen()


def test_report_shows_the_app_a_not_valid_certificate(
    mutls_server: Any, mutls_client_cert: Any
) -> None:
    from mutls.pki import CertificateAuthority

    stranger = mutls_client_cert("CN=stranger", issuer=CertificateAuthority.create("CN=other"))
    server = mutls_server(app, client_cert="optional", verify="report")
    with connect(wss(server, "/scope"), ssl=stranger.ssl_context(), open_timeout=10) as ws:
        got = json.loads(ws.recv(timeout=10))
    assert got["valid"] is False and got["verify"].startswith("FAILED")
    assert got["tls"]["client_cert_name"] == "CN=stranger"
    assert got["tls"]["client_cert_error"]  # says why, never None for a certificate not valid


def test_allow_rules_refuse_before_the_app(mutls_server: Any, mutls_client_cert: Any) -> None:
    rules = AllowRules.parse('[[allow]]\nname = "ops"\nsubject = "CN=ops"\n', "allow.toml")
    server = mutls_server(app, access=Access(rules, UserName.CN))
    with pytest.raises(InvalidStatus) as refused:
        connect(
            wss(server, "/echo"), ssl=mutls_client_cert("CN=dev").ssl_context(), open_timeout=10
        )
    assert refused.value.response.status_code == 403
    assert nothing_seen()
    with connect(
        wss(server, "/echo"), ssl=mutls_client_cert("CN=ops").ssl_context(), open_timeout=10
    ) as ws:
        ws.send("in")
        assert ws.recv(timeout=10) == "in"


def test_a_wsgi_app_answers_an_upgrade_with_400_saying_why(
    mutls_server: Any, mutls_client_cert: Any
) -> None:
    server = mutls_server(wsgi_app)
    with pytest.raises(InvalidStatus) as refused:
        connect(wss(server, "/"), ssl=mutls_client_cert().ssl_context(), open_timeout=10)
    assert refused.value.response.status_code == 400
    assert b"WebSocket needs an ASGI app" in refused.value.response.body


# -- plain HTTP, limits, shutdown ------------------------------------------------------------


def plain(**settings: Any) -> Any:
    return serve_in_thread(ServerConfig(host="127.0.0.1", port=0, app=app, **settings))


def test_plain_ws_without_tls_has_no_tls_extension() -> None:
    with plain() as running, connect(f"ws://127.0.0.1:{running.ports[0]}/scope") as ws:
        got = json.loads(ws.recv(timeout=10))
    assert got["scheme"] == "ws" and got["tls"] == {} and got["verify"] is None


def test_a_message_over_the_limit_closes_1009() -> None:
    limits = WebSocketLimits(max_message_bytes=1000)
    with plain(websocket=limits) as running:
        with connect(f"ws://127.0.0.1:{running.ports[0]}/echo", max_size=None) as ws:
            ws.send("y" * 1000)
            assert ws.recv(timeout=10) == "y" * 1000
            ws.send(["z" * 600, "z" * 600])  # too big only once its second frame arrives
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        assert seen() == ("called", "/echo")
        assert seen() == ("disconnect", 1009, "message too big")


def test_graceful_shutdown_closes_websockets_with_1001() -> None:
    running = serve_in_thread(ServerConfig(host="127.0.0.1", port=0, app=app))
    with running as server, connect(f"ws://127.0.0.1:{server.ports[0]}/echo") as ws:
        ws.send("before")
        assert ws.recv(timeout=10) == "before"
        stopper = threading.Thread(target=server.stop, kwargs={"timeout": 20})
        stopper.start()
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=15)
        stopper.join(20)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    assert ("disconnect", 1001, "server shutting down") in [seen(), seen()]


def test_shutdown_reads_the_clients_close_past_a_full_queue(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The app takes nothing, the queue is full, the socket unread: the server's 1001 still
    gets the client's close read (not waited out by --ws-close-timeout)."""
    limits = WebSocketLimits(max_queue=1, close_timeout=5)
    config = ServerConfig(
        host="127.0.0.1", port=0, app=app, websocket=limits, timeouts=Timeouts(graceful=20)
    )
    running = serve_in_thread(config)
    with caplog.at_level(logging.INFO, logger="mutls"), running as server:
        with connect(f"ws://127.0.0.1:{server.ports[0]}/stuck", ping_interval=None) as ws:
            assert seen() == ("called", "/stuck")
            for n in range(20):
                ws.send(f"unread {n}")
            stopper = threading.Thread(target=server.stop, kwargs={"timeout": 30})
            stopper.start()
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=15)
            stopper.join(30)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    assert "did not answer the WebSocket close" not in caplog.text


def raw_upgrade(port: int, path: str) -> socket.socket:
    """A raw socket past the handshake (the frames are the test's)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        assert chunk, head
        head += chunk
    assert head.startswith(b"HTTP/1.1 101 "), head
    assert b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head  # RFC 6455's own example key and answer
    return sock


def test_a_client_that_stops_reading_is_dropped_by_the_send_timeout() -> None:
    with plain(timeouts=Timeouts(send=1.0)) as running:
        sock = raw_upgrade(running.ports[0], "/flood")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        try:
            assert seen() == ("called", "/flood")
            assert seen(timeout=30) == ("send failed",)  # never read: dropped, the app told
        finally:
            sock.close()


def test_a_client_that_answers_no_ping_is_closed_1011() -> None:
    limits = WebSocketLimits(ping_interval=0.2, ping_timeout=0.5)
    with plain(websocket=limits) as running:
        sock = raw_upgrade(running.ports[0], "/echo")
        try:
            data = b""
            while True:  # a ping (0x89), then a close 1011, then the end
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
        finally:
            sock.close()
        assert data[0] == 0x89
        assert b"\x88" in data and b"\x03\xf3keepalive ping timeout" in data
        assert seen() == ("called", "/echo")
        assert seen() == ("disconnect", 1011, "keepalive ping timeout")


def test_an_app_slow_to_receive_holds_the_client_back_and_loses_nothing() -> None:
    """A full queue stops reading the socket; the pings' pongs wait unread meanwhile, which
    is the app's slowness, not a dead client: no 1011, and every message arrives in order."""
    limits = WebSocketLimits(max_queue=1, ping_interval=0.1, ping_timeout=1.0)
    with plain(websocket=limits) as running:
        with connect(f"ws://127.0.0.1:{running.ports[0]}/slow", ping_interval=None) as ws:
            sent = [f"message {n}" for n in range(50)]
            for text in sent:
                ws.send(text)
            assert [ws.recv(timeout=15) for _ in sent] == sent


def test_websockets_client_pings_are_answered() -> None:
    with plain() as running, connect(f"ws://127.0.0.1:{running.ports[0]}/echo") as ws:
        assert ws.ping(b"are you there").wait(10)


def test_bad_websocket_flags_are_refused() -> None:
    from mutls.errors import UsageError

    for bad, flag in [
        (WebSocketLimits(max_message_bytes=0), "--ws-max-size"),
        (WebSocketLimits(max_queue=0), "--ws-max-queue"),
        (WebSocketLimits(ping_timeout=0), "--ws-ping-timeout"),
        (WebSocketLimits(close_timeout=float("nan")), "--ws-close-timeout"),
    ]:
        with pytest.raises(UsageError, match=flag):
            ServerConfig(websocket=bad)


def test_the_flags_reach_the_config() -> None:
    from mutls.cli import serve

    args = serve.build_parser().parse_args(
        "--ws-max-size 64k --ws-max-queue 4 --ws-ping-interval 0 "
        "--ws-ping-timeout 3 --ws-close-timeout 2.5".split()
    )
    limits = serve.config_from_args(args).websocket
    assert limits == WebSocketLimits(65536, 4, None, 3.0, 2.5)
    assert serve.config_from_args(serve.build_parser().parse_args([])).websocket == (
        WebSocketLimits()
    )


def test_behind_a_trusted_proxy_the_forwarded_certificate_is_judged_alike(
    mutls_ca: Any, mutls_client_cert: Any
) -> None:
    """A proxy (here: the client, from 127.0.0.1) forwards the certificate in X-Client-Cert:
    the websocket scope gets its verdict; strict refuses a foreign one with 403 before the app."""
    import urllib.parse

    from cryptography.hazmat.primitives.serialization import Encoding

    from mutls.pki import CertificateAuthority, TrustMaterial
    from mutls.tls import ClientCertMode, VerifyPolicy

    def header(cert: Any) -> dict[str, str]:
        pem = cert.certificate.public_bytes(Encoding.PEM)
        return {"X-Client-Cert": urllib.parse.quote_from_bytes(pem, safe=b"")}

    config = ServerConfig(
        host="127.0.0.1",
        port=0,
        app=app,
        trusted_proxies=("127.0.0.1",),
        forwarded_cert_header="X-Client-Cert",
        client_cert=ClientCertMode.OPTIONAL,
        verify=VerifyPolicy.STRICT,
        trust=TrustMaterial(anchors=(mutls_ca.certificate,)),
    )
    stranger = mutls_client_cert("CN=stranger", issuer=CertificateAuthority.create("CN=other"))
    with serve_in_thread(config) as running:
        url = f"ws://127.0.0.1:{running.ports[0]}/scope"
        with connect(url, additional_headers=header(mutls_client_cert("CN=proxied"))) as ws:
            got = json.loads(ws.recv(timeout=10))
        assert got["verify"] == "SUCCESS" and got["valid"] is True and got["same"] is True
        assert seen() == ("called", "/scope")
        assert seen() == ("disconnect", 1000, "")
        with pytest.raises(InvalidStatus) as refused:
            connect(url, additional_headers=header(stranger))
        assert refused.value.response.status_code == 403
        assert nothing_seen()
