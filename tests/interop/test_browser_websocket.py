"""Headless Chromium opens ``wss://`` to ``mutls serve`` with the client certificate that
``mutls certmgr --install-p12`` put into its NSS database (as tests/interop/test_browsers.py
does for pages; the driver is tests/browsers.py's, the HOMEs tests/interop/conftest.py's): the
page's script sends a message, the app answers with the echo and what the websocket scope says
of the certificate, and the page shows it.

``--dump-dom`` dumps at the load event; an image the server answers only once the WebSocket
has answered keeps the page loading until then (bounded by the app's own wait and RUN_TIMEOUT).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from browsers import CHROMIUM, chromium
from helpers import PASSWORD, MutlsServer, PKIFiles
from tools import need

pytestmark = [pytest.mark.interop, pytest.mark.needs("certutil")]

APP = '''
import asyncio
import json

import mutls

answered = asyncio.Event()
PAGE = b"""<!doctype html><html><body><pre id="out">waiting</pre><script>
const ws = new WebSocket("wss://" + location.host + "/ws", ["echo.v1"]);
ws.onopen = () => ws.send("hello from chromium");
ws.onmessage = (e) => {
  document.getElementById("out").textContent = e.data + " protocol=" + ws.protocol;
  ws.close(1000, "done");
};
ws.onerror = () => { document.getElementById("out").textContent = "websocket error"; };
</script><img src="/wait" alt=""></body></html>"""


async def app(scope, receive, send):
    if scope["type"] == "http":
        if scope["path"] == "/wait":
            try:
                await asyncio.wait_for(answered.wait(), 20)
            except TimeoutError:
                pass
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        headers = [(b"content-type", b"text/html; charset=utf-8")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": PAGE})
        return
    if scope["type"] != "websocket":
        return
    await receive()
    await send({"type": "websocket.accept", "subprotocol": "echo.v1"})
    message = await receive()
    cert = mutls.client_certificate(scope)
    seen = {
        "echo": message.get("text"),
        "scheme": scope["scheme"],
        "verify": cert.verify_status,
        "subject": cert.subject,
        "tls_error": scope["extensions"]["tls"]["client_cert_error"],
    }
    await send({"type": "websocket.send", "text": json.dumps(seen)})
    answered.set()
    await receive()
'''


@pytest.fixture(scope="module")
def servers(test_pki: PKIFiles, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """strict with the CA's names (poupou), report without them (mallory's foreign one)."""
    where = tmp_path_factory.mktemp("wsapp")
    (where / "wsapp.py").write_text(APP)
    p = test_pki
    base = ["serve", "wsapp:app", "--app-dir", where, "--p12", p.p12("server")]
    base += ["--pkpwd", PASSWORD, "--client-ca", p.ca_cert, "--client-cert", "require"]
    specs = {
        "strict": [*base, "--verify", "strict"],
        "report-any-ca": [*base, "--verify", "report", "--no-ca-names"],
    }
    urls = {}
    running = []
    try:
        for name, args in specs.items():
            server = MutlsServer(*args, cwd=p.directory)
            running.append(server.__enter__())
            urls[name] = f"https://localhost:{server.port}/"
        yield urls
    finally:
        for server in running:
            server.__exit__()


def shown(dom: str) -> dict:
    match = re.search(r'<pre id="out">(.*?) protocol=([^<]*)</pre>', dom, re.S)
    assert match, dom[-2000:]
    seen = json.loads(match[1].replace("&quot;", '"').replace("&amp;", "&"))
    seen["protocol"] = match[2]
    return seen


def test_chromium_wss_with_a_valid_certificate(homes: dict[str, Path], servers: dict) -> None:
    if CHROMIUM is None:
        need("chromium")
    seen = shown(chromium(homes["poupou"], servers["strict"], "poupou"))
    assert seen["echo"] == "hello from chromium" and seen["scheme"] == "wss"
    assert seen["verify"] == "SUCCESS" and seen["subject"] == "CN=poupou"
    assert seen["tls_error"] is None and seen["protocol"] == "echo.v1"


def test_chromium_wss_shows_report_a_not_valid_certificate(
    homes: dict[str, Path], servers: dict
) -> None:
    if CHROMIUM is None:
        need("chromium")
    seen = shown(chromium(homes["mallory"], servers["report-any-ca"], "mallory"))
    assert seen["echo"] == "hello from chromium"
    assert seen["verify"].startswith("FAILED") and seen["subject"] == "CN=mallory"
    assert "unable to get local issuer certificate" in seen["tls_error"]
