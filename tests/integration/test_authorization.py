"""``serve --allow FILE --remote-user``: over real TLS (and from a trusted proxy), a valid but
unauthorized client gets a 403 that says so under strict; under report the app sees both
verdicts; ``SSL_CLIENT_VERIFY`` and ``valid`` never change."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.serialization import Encoding

import mutls
from mutls import cli
from mutls.authz import Access, AllowRules, UserName
from mutls.client import ssl_context
from mutls.server import ServerConfig, serve_in_thread
from mutls.tls import ClientCertMode, VerifyPolicy

from helpers import PKIFiles

RULES = """
[[allow]]
name = "poupou by email"
email = "*@example.org"
"""


def wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    verdict = mutls.authorization(environ)
    seen = {
        "verify": environ.get("SSL_CLIENT_VERIFY"),
        "authorization": environ.get("MUTLS_AUTHORIZATION"),
        "remote_user": environ.get("REMOTE_USER"),
        "object": verdict.rule if verdict is not None else None,
    }
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(seen).encode()]


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    ours = scope["extensions"]["mutls"]
    seen = {
        "valid": ours["client_certificate"].valid,
        "authorized": ours["authorization"].authorized,
        "reason": ours["authorization"].reason,
        "remote_user": ours.get("remote_user"),
        "object": mutls.authorization(scope).authorized,
    }
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": json.dumps(seen).encode()})


@pytest.fixture(scope="module")
def access() -> Access:
    return Access(AllowRules.parse(RULES, "allow.toml"), UserName.CN)


@pytest.fixture(scope="module")
def servers(test_pki: PKIFiles, access: Access) -> Iterator[dict[str, str]]:
    base = ServerConfig(
        port=0,
        identity=test_pki.identities["server"],
        client_cert=ClientCertMode.OPTIONAL,
        client_ca_files=(str(test_pki.ca_cert),),
        access=access,
    )
    forwarded = ServerConfig(
        port=0,
        client_cert=ClientCertMode.OPTIONAL,
        client_ca_files=(str(test_pki.ca_cert),),
        trusted_proxies=("127.0.0.1",),
        forwarded_cert_header="X-Client-Cert",
        access=access,
        app=wsgi_app,
    )
    with (
        serve_in_thread(base.with_changes(app=wsgi_app)) as strict,
        serve_in_thread(base.with_changes(app=wsgi_app, verify=VerifyPolicy.REPORT)) as report,
        serve_in_thread(base.with_changes(app=asgi_app, verify=VerifyPolicy.REPORT)) as asgi,
        serve_in_thread(forwarded) as proxied,
    ):
        yield {
            "strict": f"https://localhost:{strict.ports[0]}/",
            "report": f"https://localhost:{report.ports[0]}/",
            "asgi": f"https://localhost:{asgi.ports[0]}/",
            "proxied": f"http://127.0.0.1:{proxied.ports[0]}/",
        }


def get(p: PKIFiles, url: str, name: str | None) -> httpx.Response:
    identity = p.identities[name] if name else None
    with httpx.Client(verify=ssl_context(identity, cafile=p.ca_cert), timeout=20) as session:
        return session.get(url)


def test_strict_refuses_a_valid_but_unauthorized_client(
    test_pki: PKIFiles, servers: dict[str, str]
) -> None:
    # poupou has poupou@example.org; castor (valid, via the intermediate) has no email
    allowed = get(test_pki, servers["strict"], "poupou")
    assert allowed.status_code == 200
    assert allowed.json() == {
        "verify": "SUCCESS",
        "authorization": "ALLOWED:poupou by email",
        "remote_user": "poupou",
        "object": "poupou by email",
    }
    refused = get(test_pki, servers["strict"], "via-intermediate")
    assert refused.status_code == 403
    assert "client certificate not authorized: CN=castor matches no rule of allow.toml" in (
        refused.text
    )
    expired = get(test_pki, servers["strict"], "expired")
    assert expired.status_code == 403
    assert "client certificate not valid: certificate has expired" in expired.text
    assert get(test_pki, servers["strict"], None).status_code == 200  # optional: the mode's call


def test_report_lets_the_app_see_both_verdicts(test_pki: PKIFiles, servers: dict[str, str]) -> None:
    castor = get(test_pki, servers["report"], "via-intermediate").json()
    assert castor == {
        "verify": "SUCCESS",
        "authorization": "DENIED:CN=castor matches no rule of allow.toml",
        "remote_user": "castor",
        "object": None,
    }
    expired = get(test_pki, servers["report"], "expired").json()
    assert expired["verify"] == "FAILED:certificate has expired"
    assert expired["authorization"] == (
        "DENIED:client certificate not valid: certificate has expired"
    )
    assert expired["remote_user"] is None
    anonymous = get(test_pki, servers["report"], None).json()
    assert anonymous["authorization"] == "DENIED:no client certificate"


def test_asgi_sees_the_authorization_in_the_mutls_extension(
    test_pki: PKIFiles, servers: dict[str, str]
) -> None:
    assert get(test_pki, servers["asgi"], "poupou").json() == {
        "valid": True,
        "authorized": True,
        "reason": "admitted by poupou by email",
        "remote_user": "poupou",
        "object": True,
    }
    castor = get(test_pki, servers["asgi"], "via-intermediate").json()
    assert (castor["valid"], castor["authorized"]) == (True, False)


def test_a_forwarded_certificate_is_authorized_the_same_way(
    test_pki: PKIFiles, servers: dict[str, str]
) -> None:
    def forwarded(name: str) -> httpx.Response:
        chain = [test_pki.identities[name].certificate, *test_pki.identities[name].chain[:-1]]
        pem = b"".join(c.public_bytes(Encoding.PEM) for c in chain)
        header = urllib.parse.quote_from_bytes(pem, safe=b"")
        return httpx.get(servers["proxied"], headers={"X-Client-Cert": header}, timeout=20)

    allowed = forwarded("poupou")
    assert allowed.status_code == 200 and allowed.json()["remote_user"] == "poupou"
    refused = forwarded("via-intermediate")
    assert refused.status_code == 403 and "not authorized: CN=castor" in refused.text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--allow", "MISSING"], "MISSING: no such allow-rules file"),
        (["--allow", "BAD"], "BAD: not valid TOML"),
        (["--remote-user", "uid"], "--remote-user uid: use one of cn, email"),
        (["--allow", "GOOD", "--client-cert", "none"], "--allow and --remote-user judge client"),
    ],
)
def test_bad_flags_are_one_line(
    capsys: pytest.CaptureFixture[str],
    test_pki: PKIFiles,
    tmp_path: Path,
    argv: list[str],
    message: str,
) -> None:
    (tmp_path / "bad.toml").write_text("[[allow]\n")
    (tmp_path / "good.toml").write_text(RULES)
    files = {
        "MISSING": tmp_path / "missing.toml",
        "BAD": tmp_path / "bad.toml",
        "GOOD": tmp_path / "good.toml",
    }
    argv = [str(files.get(a, a)) for a in argv]
    message = message.replace("MISSING", str(files["MISSING"])).replace("BAD", str(files["BAD"]))
    tls = ["--cert", str(test_pki.cert("server")), "--key", str(test_pki.key("server"))]
    client_cert = [] if "--client-cert" in argv else ["--client-cert", "optional"]
    code = cli.main(["serve", "--port", "0", *tls, *client_cert, *argv])
    _, err = capsys.readouterr()
    assert code == 2 and message in err and err.count("\n") == 1
