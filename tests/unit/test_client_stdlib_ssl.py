"""``mutls.client.ssl_context``: the certificate reaches ``ssl`` without a plaintext key file."""

from __future__ import annotations

import os
import ssl
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography import x509

from mutls.client import server_trust, stdlib_ssl
from mutls.client.keylog import KeyLog, keylog_path
from mutls.client.stdlib_ssl import _transient_file, ssl_context
from mutls.errors import PKIError

from helpers import FIXTURES, PASSWORD, PKIFiles


@pytest.mark.parametrize("memfd", [True, False])
def test_transient_file_is_gone_afterwards(memfd: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if not memfd:
        monkeypatch.delattr(os, "memfd_create", raising=False)
    with _transient_file(b"secret bytes") as path:
        assert Path(path).read_bytes() == b"secret bytes"
        if not memfd:
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
            assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    assert not Path(path).exists()


def test_only_an_encrypted_key_is_handed_over(
    test_pki: PKIFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    handed: list[bytes] = []
    real = stdlib_ssl._transient_file

    @contextmanager
    def spy(data: bytes) -> Iterator[str]:
        handed.append(data)
        with real(data) as path:
            yield path

    monkeypatch.setattr(stdlib_ssl, "_transient_file", spy)
    ctx = ssl_context(test_pki.p12("poupou"), PASSWORD, cafile=test_pki.ca_cert)
    assert isinstance(ctx, ssl.SSLContext)
    assert len(handed) == 1
    assert b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in handed[0]
    assert b"-----BEGIN PRIVATE KEY-----" not in handed[0]
    assert b"CN=My Own Test CA" not in handed[0]  # sanity: PEM, not text dumps
    assert handed[0].count(b"BEGIN CERTIFICATE") == 1  # the leaf; the root is not sent


def test_cafile_is_the_only_trust(test_pki: PKIFiles) -> None:
    ctx = ssl_context(cafile=test_pki.ca_cert)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert [c["subject"] for c in ctx.get_ca_certs()] == [((("commonName", "My Own Test CA"),),)]
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2


def test_default_trust_adds_the_trust_store(
    test_pki: PKIFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    anchor = x509.load_pem_x509_certificate(test_pki.ca_cert.read_bytes())
    monkeypatch.setattr(server_trust, "trust_store_anchors", lambda: [anchor])
    ctx = ssl_context()
    subjects = [c["subject"] for c in ctx.get_ca_certs()]
    assert ((("commonName", "My Own Test CA"),),) in subjects


def test_trust_store_guard_returns_certificates() -> None:
    assert all(isinstance(c, x509.Certificate) for c in server_trust.trust_store_anchors())


def test_insecure_warns_and_checks_nothing() -> None:
    with pytest.warns(UserWarning, match="not checked"):
        ctx = ssl_context(insecure=True)
    assert ctx.verify_mode == ssl.CERT_NONE and not ctx.check_hostname
    with pytest.raises(ValueError, match="contradict"):
        ssl_context(insecure=True, cafile="x.pem")


def test_pem_and_key_forms(test_pki: PKIFiles) -> None:
    ssl_context(test_pki.cert("poupou"), key=test_pki.key("poupou"), cafile=test_pki.ca_cert)
    ssl_context(test_pki.identities["poupou"], cafile=test_pki.ca_cert)


def test_keylog_file_is_private(tmp_path: Path) -> None:
    log = tmp_path / "keys"
    ctx = ssl_context(cafile=None, keylog=log)
    assert ctx.keylog_filename == str(log)
    assert stat.S_IMODE(log.stat().st_mode) == 0o600


def test_keylog_tightens_an_existing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "keys"
    log.write_text("# old\n")
    log.chmod(0o644)
    writer = KeyLog(log)
    writer.write(b"CLIENT_RANDOM aa bb")
    writer.close()
    assert log.read_text() == "# old\nCLIENT_RANDOM aa bb\n"
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    monkeypatch.setenv("SSLKEYLOGFILE", str(log))
    assert keylog_path(None) == log
    assert keylog_path("other") == Path("other")
    monkeypatch.delenv("SSLKEYLOGFILE")
    assert keylog_path(None) is None


def test_a_1024_bit_mono_key_is_refused_in_one_line() -> None:
    with pytest.raises(PKIError, match="RSA 1024"):
        ssl_context(FIXTURES / "poupou.p12", PASSWORD)
