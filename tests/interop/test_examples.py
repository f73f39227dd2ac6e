"""Every example in examples/, served by ``mutls serve`` as its README says, with a valid
client certificate, one that is NOT valid (expired) and none: what the app saw."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import MutlsServer, PKIFiles, curl

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
REPORT = ("--client-cert", "optional", "--verify", "report")


@pytest.fixture
def serve(test_pki: PKIFiles, tmp_path: Path) -> Iterator[Any]:
    """``serve(APP, *flags)``: the example served from a copy of examples/; ``get(path, who)``."""
    app_dir = tmp_path / "examples"
    shutil.copytree(EXAMPLES, app_dir)
    servers: list[MutlsServer] = []

    def start(app: str, *flags: str, env: dict[str, str] | None = None) -> Any:
        server = MutlsServer(
            "serve", app, "--app-dir", app_dir, "--cert", test_pki.cert("server"),
            "--key", test_pki.key("server"), "--client-ca", test_pki.ca_cert, *REPORT, *flags,
            cwd=app_dir, env=env,
        )  # fmt: skip
        server.__enter__()
        servers.append(server)

        def get(path: str, who: str | None) -> tuple[int, str]:
            certs = ["--cert", str(test_pki.cert(who)), "--key", str(test_pki.key(who))]
            done = curl(
                f"https://localhost:{server.port}{path}", "--cacert", str(test_pki.ca_cert),
                "-w", "\n%{http_code}", *(certs if who else []),
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            body, _, status = done.stdout.rpartition("\n")
            return int(status), body

        return get

    yield start
    for server in servers:
        server.__exit__()


def seen(answer: tuple[int, str]) -> dict[str, Any]:
    status, body = answer
    assert status == 200, body
    return dict(json.loads(body))


def test_raw_wsgi(serve: Any) -> None:
    get = serve("wsgi_app:app")
    assert seen(get("/", "poupou")) == {
        "verify": "SUCCESS", "subject": "CN=poupou", "valid": True, "error": None
    }  # fmt: skip
    assert seen(get("/", "expired")) == {
        "verify": "FAILED:certificate has expired", "subject": "CN=expired", "valid": False,
        "error": "certificate has expired",
    }  # fmt: skip
    assert seen(get("/", None)) == {"verify": "NONE", "subject": None, "valid": False,
                                    "error": None}  # fmt: skip


def test_raw_asgi(serve: Any) -> None:
    get = serve("asgi_app:app")
    assert seen(get("/", "poupou")) == {
        "subject": "CN=poupou", "error": None, "valid": True, "chain": 2
    }  # fmt: skip
    assert seen(get("/", "expired"))["error"] == "certificate has expired"
    assert seen(get("/", None)) == {"subject": None, "error": None, "valid": False, "chain": 0}


def test_flask_factory_and_decorator(serve: Any) -> None:
    pytest.importorskip("flask")
    get = serve("flask_app:create_app()")
    assert seen(get("/", "poupou"))["verify"] == "SUCCESS"
    assert seen(get("/", "expired"))["error"] == "certificate has expired"
    assert seen(get("/", None))["subject"] is None
    assert get("/private", "poupou") == (200, "Hello poupou, you may come in")
    assert get("/private", "expired") == (
        403, "client certificate not valid: certificate has expired"
    )  # fmt: skip
    assert get("/private", None) == (403, "client certificate required")


def test_flask_factory_with_the_flag(serve: Any) -> None:
    pytest.importorskip("flask")
    get = serve("flask_app:create_app", "--factory")
    assert get("/private", "poupou") == (200, "Hello poupou, you may come in")


def test_fastapi_dependency(serve: Any) -> None:
    pytest.importorskip("fastapi")
    get = serve("fastapi_app:app")
    assert seen(get("/", "poupou")) == {"subject": "CN=poupou", "error": None, "valid": True}
    assert seen(get("/", "expired"))["error"] == "certificate has expired"
    assert seen(get("/", None))["subject"] is None
    assert seen(get("/private", "poupou")) == {"hello": "poupou"}
    status, body = get("/private", "expired")
    assert (status, json.loads(body)) == (
        403, {"detail": "client certificate not valid: certificate has expired"}
    )  # fmt: skip
    assert get("/private", None)[0] == 403


def test_django_middleware_and_backend(serve: Any, tmp_path: Path) -> None:
    pytest.importorskip("django")
    database = tmp_path / "example.sqlite3"
    env = {"EXAMPLE_DB": str(database), "DJANGO_SETTINGS_MODULE": "django_app.settings"}
    migrate = subprocess.run(
        [sys.executable, "-m", "django", "migrate", "--pythonpath", str(tmp_path / "examples")],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert migrate.returncode == 0, migrate.stderr
    get = serve("django_app.wsgi:application", env=env)
    assert seen(get("/", "poupou")) == {
        "user": "poupou", "authenticated": True, "subject": "CN=poupou", "verify": "SUCCESS"
    }  # fmt: skip
    assert get("/", "expired") == (403, "client certificate not valid: certificate has expired")
    assert get("/", None) == (403, "client certificate required")
