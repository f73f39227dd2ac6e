"""Static files (``--root``), driven without a socket: what is served, and what never is."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from mutls.apps import StaticFiles, TestPageApp
from mutls.apps.facts import connection_facts
from mutls.apps.static import CHUNK
from mutls.apps.testpage import INSECURE
from mutls.pki.sniff import SNIFF_BYTES

from helpers import FIXTURES, FakeChannel, PKIFiles, run_app

FACTS = connection_facts(None, None)


def get(static: StaticFiles, path: str, method: str = "GET") -> FakeChannel:
    """``static`` behind the test page (as ``xsp --root`` serves it) answers one request."""
    return run_app(
        TestPageApp(static), f"{method} {path} HTTP/1.1\r\nHost: h\r\n\r\n".encode(), FACTS
    )


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    (root / "sub").mkdir(parents=True)
    (root / "index.html").write_text("home")
    (root / "sub" / "a.txt").write_text("a")
    for name in ("root.key", "poupou.p12", "old.PFX", "mono.pvk"):
        (root / name).write_text("secret")
    (tmp_path / "outside.txt").write_text("outside")
    (root / "link.txt").symlink_to(tmp_path / "outside.txt")
    # a directory whose index is a symlink out, and a symlinked directory out
    (root / "d").mkdir()
    (root / "d" / "index.html").symlink_to(tmp_path / "outside.txt")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "x.txt").write_text("elsewhere")
    (root / "linked").symlink_to(tmp_path / "elsewhere")
    # dot-files and dot-directories, also reached through a symlink with a plain name
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("[remote]")
    (root / ".env").write_text("TOKEN=x")
    (root / "git").symlink_to(root / ".git")
    return root


@pytest.mark.parametrize(
    "path",
    [
        "/root.key",
        "/poupou.p12",
        "/old.PFX",
        "/mono.pvk",
        "/../outside.txt",
        "/sub/../../outside.txt",
        "/link.txt",
        "/sub\\..\\..\\outside.txt",
        "/missing",
        "/d/",
        "/d",
        "/linked/x.txt",
        "/.git/config",
        "/.env",
        "/sub/../.env",
        "/git/config",
    ],
)
def test_static_files_never_serve_keys_or_escape_the_root(site: Path, path: str) -> None:
    assert StaticFiles(site).resolve(path) is None


def test_static_files_serve_what_is_inside(site: Path) -> None:
    static = StaticFiles(site)
    assert static.resolve("/sub/a.txt") == (site / "sub" / "a.txt").resolve()
    assert static.resolve("/") == (site / "index.html").resolve()
    app = TestPageApp(static)
    facts = connection_facts(None, None)
    channel = run_app(app, b"GET /sub/a.txt HTTP/1.1\r\nHost: h\r\n\r\n", facts)
    assert channel.status == 200 and channel.body == b"a"
    # the page keeps its paths even with a root
    assert INSECURE.encode() in run_app(app, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", facts).body
    key = run_app(app, b"GET /root.key HTTP/1.1\r\nHost: h\r\n\r\n", facts)
    assert key.status == 404 and b"secret" not in key.body


def key_files(test_pki: PKIFiles) -> dict[str, tuple[bytes, str]]:
    """Files whose names say nothing of a key, what they hold, and the reason logged."""
    poupou = test_pki.identities["poupou"]
    pem_key = test_pki.key("poupou").read_bytes()
    der_key = poupou.key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key_log = f"CLIENT_RANDOM {os.urandom(32).hex()} {os.urandom(48).hex()}\n".encode()
    pem = "PEM private key (PRIVATE KEY)"
    return {
        # what `mutls pkcs12 -in poupou.p12 -out poupou.pem -nodes` writes: certificates, then key
        "poupou.pem": (test_pki.cert("poupou").read_bytes() + pem_key, pem),
        "root.key.bak": (pem_key, pem),
        "id": (der_key, "DER private key (EC P-256)"),
        "backup.bin": (test_pki.p12("poupou").read_bytes(), "PKCS#12 (PFX)"),
        "sub/keys.txt": (key_log, "TLS key log (CLIENT_RANDOM lines)"),
        "kdir/index.html": (pem_key, pem),  # reached as /kdir/
    }


def test_key_material_is_never_served_whatever_its_name(
    site: Path, test_pki: PKIFiles, caplog: pytest.LogCaptureFixture
) -> None:
    files = key_files(test_pki)
    (site / "kdir").mkdir()
    for name, (data, _reason) in files.items():
        (site / name).write_bytes(data)
    static = StaticFiles(site)
    with caplog.at_level(logging.INFO, logger="mutls.static"):
        for name in files:
            url = "/kdir/" if name == "kdir/index.html" else f"/{name}"
            for method in ("GET", "HEAD"):
                answer = get(static, url, method)
                assert (answer.status, answer.body) == (404, b"not found\n"), (method, url)
    # one line per refusal: the path in the root and the reason
    logged = {r.getMessage() for r in caplog.records}
    assert logged == {
        f"static file {name} refused (404): key material: {reason}"
        for name, (_data, reason) in files.items()
    }
    assert all(r.levelno == logging.WARNING for r in caplog.records)


def test_dot_files_and_symlinks_out_are_logged_without_their_content(
    site: Path, caplog: pytest.LogCaptureFixture
) -> None:
    static = StaticFiles(site)
    with caplog.at_level(logging.INFO, logger="mutls.static"):
        assert get(static, "/d/").status == get(static, "/git/config").status == 404
    outside = (site.parent / "outside.txt").resolve()
    assert [r.getMessage() for r in caplog.records] == [
        f"static file d refused (404): leads outside the root (to {outside})",
        "static file git/config refused (404): leads to a dot-file or dot-directory (.git/config)",
    ]


def test_a_key_after_a_long_certificate_chain_is_never_sent(
    site: Path, test_pki: PKIFiles, caplog: pytest.LogCaptureFixture
) -> None:
    # `cat chain.pem key.pem > bundle.pem`: the key lies past the bytes sniffed before answering
    chain = test_pki.cert("via-intermediate").read_bytes() * 40
    key = test_pki.key("via-intermediate").read_bytes()
    assert len(chain) > SNIFF_BYTES + CHUNK
    (site / "bundle.pem").write_bytes(chain + key)
    with caplog.at_level(logging.INFO, logger="mutls.static"):
        answer = get(StaticFiles(site), "/bundle.pem")
    assert answer.aborted and not answer.finished  # the client sees a cut-off response
    assert chain.startswith(answer.body) and b"PRIVATE KEY" not in answer.body
    assert [r.getMessage() for r in caplog.records] == [
        "static file bundle.pem cut off: key material further on: PEM private key (PRIVATE KEY)"
    ]


def test_public_pki_files_and_large_files_are_served(site: Path, test_pki: PKIFiles) -> None:
    public = {
        "root.pem": test_pki.ca_cert.read_bytes(),
        "chain.pem": test_pki.cert("via-intermediate").read_bytes() * 40,
        "root.cer": (FIXTURES / "root.cer").read_bytes(),
        "crl.pem": test_pki.crl_path.read_bytes(),
        "big.bin": os.urandom(3 * CHUNK + 5),
    }
    static = StaticFiles(site)
    for name, data in public.items():
        (site / name).write_bytes(data)
        answer = get(static, f"/{name}")
        assert (answer.status, answer.finished, answer.body == data) == (200, True, True), name
