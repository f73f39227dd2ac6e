"""``mutls certmgr -ssl``: fetch a real server's chain (``openssl s_server``) and store it."""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from mutls import cli, pki, store
from mutls.store.server_chain import fetch_chain, parse_target

from helpers import OpenSSLServer, PKIFiles, free_port


def _serve(test_pki: PKIFiles, chain: Path, tmp: Path) -> Iterator[str]:
    with OpenSSLServer(
        "-www", "-quiet",
        "-cert", test_pki.cert("server"), "-key", test_pki.key("server"), "-cert_chain", chain,
        cwd=tmp,
    ) as server:  # fmt: skip
        yield f"https://127.0.0.1:{server.port}/"


@pytest.fixture
def server_with_root(test_pki: PKIFiles, tmp_path: Path) -> Iterator[str]:
    """A TLS server that sends its leaf and the root."""
    yield from _serve(test_pki, test_pki.ca_cert, tmp_path)


@pytest.fixture
def server_with_intermediate(test_pki: PKIFiles, tmp_path: Path) -> Iterator[str]:
    """A TLS server that sends leaf, an intermediate and the root (the leaf's issuer does not
    matter here: -ssl stores what the server sends, it does not verify it)."""
    chain = tmp_path / "chain.pem"
    chain.write_bytes(pki.certs.pem([test_pki.intermediate.certificate, test_pki.ca.certificate]))
    yield from _serve(test_pki, chain, tmp_path)


@pytest.fixture
def server_without_root(test_pki: PKIFiles, tmp_path: Path) -> Iterator[str]:
    """A TLS server that sends its leaf and an intermediate, but no root."""
    chain = tmp_path / "intermediate.pem"
    chain.write_bytes(pki.certs.pem([test_pki.intermediate.certificate]))
    yield from _serve(test_pki, chain, tmp_path)


def certmgr(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["certmgr", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_fetch_chain_returns_what_the_server_sends(
    server_with_root: str, test_pki: PKIFiles
) -> None:
    chain = fetch_chain(server_with_root)
    assert chain == [test_pki.identities["server"].certificate, test_pki.ca.certificate]


def test_ssl_with_yes_stores_leaf_and_root(
    capsys: pytest.CaptureFixture[str],
    sandbox_home: Path,
    server_with_root: str,
    test_pki: PKIFiles,
) -> None:
    code, out, _ = certmgr(capsys, "-ssl", server_with_root, "--yes")
    assert code == 0, out
    assert store.open_store("Trust").certificates()[0].certificate == test_pki.ca.certificate
    leaf = test_pki.identities["server"].certificate
    assert store.open_store("AddressBook").certificates()[0].certificate == leaf
    code, out, _ = certmgr(capsys, "-ssl", server_with_root)  # everything is known now
    assert code == 0 and "already in Trust" in out


def test_ssl_puts_the_leaf_in_the_store_named_and_intermediates_in_ca(
    capsys: pytest.CaptureFixture[str],
    sandbox_home: Path,
    server_with_intermediate: str,
    test_pki: PKIFiles,
) -> None:
    code, _, _ = certmgr(capsys, "-ssl", "-c", "My", server_with_intermediate, "-y")
    assert code == 0
    assert [e.names for e in store.open_store("My").certificates()] == [("localhost",)]
    ca = store.open_store("CA").certificates()
    assert [e.certificate for e in ca] == [test_pki.intermediate.certificate]
    assert store.open_store("AddressBook").certificates() == []


def test_ssl_says_when_the_server_sends_no_root(
    capsys: pytest.CaptureFixture[str], sandbox_home: Path, server_without_root: str
) -> None:
    code, out, _ = certmgr(capsys, "-ssl", server_without_root)
    assert code == 0
    assert "the server did not send its root" in out
    assert store.open_store("Trust").certificates() == []
    assert len(store.open_store("CA").certificates()) == 1


def test_ssl_without_a_terminal_refuses_the_root_clearly(
    capsys: pytest.CaptureFixture[str], sandbox_home: Path, server_with_root: str
) -> None:
    code, _, err = certmgr(capsys, "-ssl", server_with_root)
    assert code == 1
    assert "not added to Trust" in err and "--yes" in err
    assert store.open_store("Trust").certificates() == []
    assert len(store.open_store("AddressBook").certificates()) == 1


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("answer", "trusted"), [("y\n", True), ("n\n", False), ("\n", False)])
def test_ssl_asks_before_trusting_the_root(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    sandbox_home: Path,
    server_with_root: str,
    answer: str,
    trusted: bool,
) -> None:
    monkeypatch.setattr("sys.stdin", _Terminal(answer))
    code, out, _ = certmgr(capsys, "-ssl", server_with_root)
    assert code == 0
    assert "Add it to the Trust store? [y/N]" in out
    assert bool(store.open_store("Trust").certificates()) is trusted


def test_ssl_to_nothing_is_one_line(capsys: pytest.CaptureFixture[str], sandbox_home: Path) -> None:
    code, _, err = certmgr(capsys, "-ssl", f"https://127.0.0.1:{free_port()}/")
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "cannot connect" in err


def test_ssl_to_a_server_that_does_not_speak_tls(
    capsys: pytest.CaptureFixture[str], sandbox_home: Path
) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        code, _, err = certmgr(capsys, "-ssl", f"127.0.0.1:{port}", "--timeout", "0.5")
    assert code == 2 and "timed out" in err


def test_parse_target() -> None:
    assert parse_target("https://example.org/x") == ("example.org", 443)
    assert parse_target("localhost:4433") == ("localhost", 4433)
    assert parse_target("https://[::1]:8443/") == ("::1", 8443)
