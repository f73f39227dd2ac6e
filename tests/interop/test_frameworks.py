"""Flask, Django and Starlette apps served by ``mutls serve`` find the verdict with one call.

``mutls.client_certificate()`` takes what each framework hands its views (Flask's and Django's
request, Starlette's request) and returns the connection's ClientCertificate.
"""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest

from helpers import MutlsServer, PKIFiles

APPS = {
    "flask_app": """
        import mutls
        from flask import Flask, request

        app = Flask(__name__)

        @app.route("/")
        def whoami():
            cert = mutls.client_certificate(request)
            verify = request.environ["SSL_CLIENT_VERIFY"]
            return f"{cert.subject}|{cert.valid}|{cert.error}|{verify}"
    """,
    "django_app": """
        import mutls
        from django.conf import settings
        from django.core.wsgi import get_wsgi_application
        from django.http import HttpResponse
        from django.urls import path

        def whoami(request):
            cert = mutls.client_certificate(request)
            verify = request.META["SSL_CLIENT_VERIFY"]
            return HttpResponse(f"{cert.subject}|{cert.valid}|{cert.error}|{verify}")

        settings.configure(
            DEBUG=False, ROOT_URLCONF=__name__, ALLOWED_HOSTS=["localhost"], SECRET_KEY="x" * 50
        )
        urlpatterns = [path("", whoami)]
        app = get_wsgi_application()
    """,
    "starlette_app": """
        import mutls
        from starlette.applications import Starlette
        from starlette.responses import PlainTextResponse
        from starlette.routing import Route

        async def whoami(request):
            cert = mutls.client_certificate(request)
            tls = request.scope["extensions"]["tls"]
            return PlainTextResponse(
                f"{cert.subject}|{cert.valid}|{cert.error}|{tls['client_cert_error']}"
            )

        app = Starlette(routes=[Route("/", whoami)])
    """,
}


@pytest.mark.interop
@pytest.mark.parametrize("module", sorted(APPS))
def test_framework_sees_the_verdict(module: str, test_pki: PKIFiles, tmp_path: Path) -> None:
    pytest.importorskip(module.split("_")[0])
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(APPS[module]))
    server_args = (
        "serve", f"{module}:app", "--app-dir", tmp_path,
        "--cert", test_pki.cert("server"), "--key", test_pki.key("server"),
        "--client-cert", "optional", "--verify", "report", "--client-ca", test_pki.ca_cert,
    )  # fmt: skip
    with MutlsServer(*server_args, cwd=tmp_path) as server:

        def fetch(name: str) -> str:
            done = subprocess.run(
                ["curl", "-sS", "--max-time", "10", "--cacert", str(test_pki.ca_cert),
                 "--cert", str(test_pki.cert(name)), "--key", str(test_pki.key(name)),
                 f"https://localhost:{server.port}/"],
                capture_output=True, text=True, timeout=20,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            return done.stdout

        valid = fetch("poupou").split("|")
        expired = fetch("expired").split("|")
    assert valid[:3] == ["CN=poupou", "True", "None"]
    assert expired[:3] == ["CN=expired", "False", "certificate has expired"]
    if module == "starlette_app":  # the ASGI TLS extension's own field
        assert (valid[3], expired[3]) == ("None", "certificate has expired")
    else:  # mod_ssl's name in the WSGI environ
        assert (valid[3], expired[3]) == ("SUCCESS", "FAILED:certificate has expired")
