"""The framework helpers under *another* server, behind a trusted proxy: the certificate comes
in the proxy's header, is verified by mutls's rules, and is believed only from the proxy.

Flask runs under the standard library's wsgiref server, FastAPI and Starlette under httpx's
ASGI transport (which plays the server, with the peer address a test picks), Django under its
own test client in a fresh interpreter (its settings are process-wide).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import urllib.parse
import wsgiref.simple_server
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from mutls.frameworks import TrustedProxy
from mutls.pki import TrustMaterial

from helpers import PKIFiles, serving

RULES = '[[allow]]\nsubject = "CN=poupou"\n'


def header(p: PKIFiles, name: str) -> str:
    """nginx's ``$ssl_client_escaped_cert`` of ``name``'s certificate and intermediates."""
    identity = p.identities[name]
    pem = b"".join(
        c.public_bytes(Encoding.PEM) for c in (identity.certificate, *identity.chain[:-1])
    )
    return urllib.parse.quote_from_bytes(pem, safe=b"")


@pytest.fixture(scope="module")
def proxy(test_pki: PKIFiles) -> TrustedProxy:
    trust = TrustMaterial(anchors=(test_pki.ca.certificate,))
    return TrustedProxy(["127.0.0.1"], "X-Client-Cert", trust=trust)


@pytest.fixture
def flask_url(proxy: TrustedProxy, tmp_path: Path) -> Iterator[str]:
    flask = pytest.importorskip("flask")
    from mutls.frameworks.flask import client_certificate_required

    (tmp_path / "allow.toml").write_text(RULES)
    app = flask.Flask(__name__)

    @app.get("/")
    @client_certificate_required(proxy=proxy)
    def anyone() -> str:
        return f"{flask.g.client_certificate.subject}"

    @app.get("/poupou")
    @client_certificate_required(allow=str(tmp_path / "allow.toml"), proxy=proxy)
    def only_poupou() -> str:
        return f"{flask.g.authorization.rule}"

    class Quiet(wsgiref.simple_server.WSGIRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    server = wsgiref.simple_server.make_server("127.0.0.1", 0, app, handler_class=Quiet)
    with serving(server):
        yield f"http://127.0.0.1:{server.server_port}"


def test_flask_under_wsgiref(test_pki: PKIFiles, flask_url: str) -> None:
    def get(path: str, name: str | None, source: str = "127.0.0.1") -> tuple[int, str]:
        headers = {"X-Client-Cert": header(test_pki, name)} if name else {}
        transport = httpx.HTTPTransport(local_address=source)
        with httpx.Client(transport=transport, timeout=20) as client:
            response = client.get(flask_url + path, headers=headers)
        return response.status_code, response.text

    assert get("/", "poupou") == (200, "CN=poupou")
    assert get("/", "expired") == (403, "client certificate not valid: certificate has expired")
    assert get("/", None) == (403, "client certificate required")
    # from anyone but the proxy the header is not believed
    assert get("/", "poupou", source="127.0.0.2") == (403, "client certificate required")
    status, text = get("/poupou", "poupou")
    assert status == 200 and text.startswith("rule 1 of ") and text.endswith("allow.toml")
    status, text = get("/poupou", "via-intermediate")
    assert status == 403
    assert text.startswith("client certificate not authorized: CN=castor matches no rule of ")


@pytest.mark.parametrize("framework", ["fastapi", "starlette"])
def test_fastapi_and_starlette_under_another_asgi_server(
    test_pki: PKIFiles, proxy: TrustedProxy, framework: str
) -> None:
    pytest.importorskip(framework)
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse

    from mutls.frameworks.starlette import ClientCertificateRequired

    require = ClientCertificateRequired(proxy=proxy)
    if framework == "fastapi":
        from fastapi import Depends, FastAPI

        app: Any = FastAPI()

        @app.get("/", response_class=PlainTextResponse)
        async def index(cert: Any = Depends(require)) -> str:  # noqa: B008
            return str(cert.subject)

    else:
        from starlette.applications import Starlette
        from starlette.routing import Route

        async def endpoint(request: Request) -> PlainTextResponse:
            cert = await require(request)
            return PlainTextResponse(str(cert.subject))

        app = Starlette(routes=[Route("/", endpoint)])

    def get(name: str | None, peer: str = "127.0.0.1") -> tuple[int, str]:
        transport = httpx.ASGITransport(app=app, client=(peer, 40000))
        headers = {"X-Client-Cert": header(test_pki, name)} if name else {}

        async def go() -> httpx.Response:
            async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
                return await client.get("/", headers=headers)

        response = asyncio.run(go())
        text = response.text
        if response.headers.get("content-type", "").startswith("application/json"):
            text = json.loads(text)["detail"]
        return response.status_code, text

    assert get("poupou") == (200, "CN=poupou")
    assert get("expired") == (403, "client certificate not valid: certificate has expired")
    assert get("poupou", peer="10.0.0.9") == (403, "client certificate required")
    assert get(None) == (403, "client certificate required")


DJANGO = """
import json, sys
import django
from django.conf import settings
from mutls.frameworks import TrustedProxy

settings.configure(
    DEBUG=False, SECRET_KEY="x" * 50, ALLOWED_HOSTS=["testserver"], ROOT_URLCONF=__name__,
    INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth",
                    "django.contrib.sessions"],
    MIDDLEWARE=["django.contrib.sessions.middleware.SessionMiddleware",
                "django.contrib.auth.middleware.AuthenticationMiddleware",
                "mutls.frameworks.django.ClientCertificateMiddleware"],
    AUTHENTICATION_BACKENDS=["mutls.frameworks.django.ClientCertificateBackend"],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": sys.argv[1]}},
    MUTLS_TRUSTED_PROXY=TrustedProxy(["127.0.0.1"], "X-Client-Cert", client_ca=[sys.argv[2]]),
    MUTLS_ALLOW=sys.argv[3], MUTLS_USERNAME="email",
)
django.setup()
from django.core.management import call_command
from django.http import HttpResponse
from django.test import Client
from django.urls import path

def whoami(request):
    return HttpResponse(f"{request.user.get_username()}|{request.client_authorization.rule}")

urlpatterns = [path("", whoami)]
call_command("migrate", verbosity=0)
answers = {}
for name, value in json.loads(sys.stdin.read()).items():
    peer, _, cert = value.partition("|")
    response = Client(REMOTE_ADDR=peer).get("/", headers={"X-Client-Cert": cert} if cert else {})
    answers[name] = [response.status_code, response.content.decode()]
print(json.dumps(answers))
"""


def test_django_middleware_and_backend_behind_a_proxy(test_pki: PKIFiles, tmp_path: Path) -> None:
    pytest.importorskip("django")
    (tmp_path / "script.py").write_text(textwrap.dedent(DJANGO))
    (tmp_path / "allow.toml").write_text('[[allow]]\nemail = "*@example.org"\n')
    requests = {
        "poupou": f"127.0.0.1|{header(test_pki, 'poupou')}",
        "castor": f"127.0.0.1|{header(test_pki, 'via-intermediate')}",
        "expired": f"127.0.0.1|{header(test_pki, 'expired')}",
        "elsewhere": f"127.0.0.9|{header(test_pki, 'poupou')}",
        "none": "127.0.0.1|",
    }
    done = subprocess.run(
        [sys.executable, str(tmp_path / "script.py"), str(tmp_path / "db.sqlite3"),
         str(test_pki.ca_cert), str(tmp_path / "allow.toml")],
        input=json.dumps(requests), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    answers = json.loads(done.stdout)
    assert answers["poupou"] == [200, f"poupou@example.org|rule 1 of {tmp_path / 'allow.toml'}"]
    assert answers["castor"][0] == 403
    assert answers["castor"][1].startswith("client certificate not authorized: CN=castor")
    assert answers["expired"] == [403, "client certificate not valid: certificate has expired"]
    assert answers["elsewhere"] == [403, "client certificate required"]
    assert answers["none"] == [403, "client certificate required"]
