"""TLS conformance of client-certificate authentication, with tlslite-ng as the (misbehaving)
client against the real server in none, optional and require modes: the behaviours of
tlsfuzzer's certificate-request, certificate-verify(-malformed(-sig)), certificate-malformed,
rsa/rsa-pss/ecdsa/eddsa-in-certificate-verify, extended-master-secret and tls13-certificate-*
scripts. Every failure must end with the alert RFC 5246/8446 names, read by the client before
the close (in TLS 1.3 the client has finished its side when the server judges it, so the alert
comes on its first read).

Already elsewhere: the bad CertificateVerify through the bare engine over a socketpair
(tests/unit/test_tls_bad_client.py, TLS 1.2); certificate_required on an empty Certificate with
--reject-at-handshake (tests/integration/test_server_http.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast

import pytest
from tlslite.messages import Certificate, CertificateVerify
from tlslite_client import TLS12, TLS13, Outcome, connect, settings_for
from weak_pki import CountingApp

from mutls import pki
from mutls.server import ServerConfig
from mutls.tls import ClientCertMode, VerifyPolicy

from helpers import LazyServers, PKIFiles

MODES = {
    "none": (ClientCertMode.NONE, VerifyPolicy.STRICT),
    "optional": (ClientCertMode.OPTIONAL, VerifyPolicy.REPORT),
    "require": (ClientCertMode.REQUIRE, VerifyPolicy.STRICT),
}
VERSIONS = pytest.mark.parametrize("version", [TLS12, TLS13], ids=["1.2", "1.3"])
ASKING = pytest.mark.parametrize("mode", ["optional", "require"])


@pytest.fixture(scope="module")
def keys(test_pki: PKIFiles, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Client certificates with RSA and Ed25519 keys (poupou is ECDSA P-256): name -> .pem."""
    directory = tmp_path_factory.mktemp("keys")
    made = {"ecdsa": test_pki.cert("poupou")}
    for kind in ("rsa", "ed25519"):
        identity = test_pki.ca.issue_client(f"CN={kind}-client", key=pki.KeySpec.parse(kind))
        identity.write_pem(directory / f"{kind}.pem", directory / f"{kind}.key")
        made[kind] = directory / f"{kind}.pem"
    return made


def key_of(cert: Path) -> Path:
    return cert.with_suffix(".key")


@pytest.fixture(scope="module")
def servers(test_pki: PKIFiles) -> Iterator[Callable[[str], tuple[int, CountingApp]]]:
    def config(mode: str) -> ServerConfig:
        client_cert, verify = MODES[mode]
        return ServerConfig(
            port=0,
            identity=test_pki.identities["server"],
            client_cert=client_cert,
            verify=verify,
            trust=pki.TrustMaterial(anchors=(test_pki.ca.certificate,)),
            app=CountingApp(),
        )

    servers = LazyServers(config)

    def get(mode: str) -> tuple[int, CountingApp]:
        server = servers(mode)
        return server.ports[0], cast(CountingApp, server.config.app)

    yield get
    servers.close()


def status(outcome: Outcome) -> int:
    assert outcome.response.startswith(b"HTTP/1.1 "), outcome
    return int(outcome.response[9:12])


def refused(
    outcome: Outcome, alert: str | tuple[str, ...], app: CountingApp, calls_before: int
) -> None:
    """The handshake failed with ``alert`` (or one of them), read by the client, and the app
    never ran."""
    assert outcome.alert in ((alert,) if isinstance(alert, str) else alert), outcome
    assert outcome.response == b""
    assert len(app.calls) == calls_before, "the app was called for a failed handshake"


# -- certificate-request ---------------------------------------------------------------------


@VERSIONS
@pytest.mark.parametrize("mode", list(MODES))
def test_certificate_request_follows_the_mode(
    servers: Callable[[str], tuple[int, CountingApp]],
    test_pki: PKIFiles,
    mode: str,
    version: tuple[int, int],
) -> None:
    port, app = servers(mode)
    outcome = connect(port, settings_for(version), test_pki.cert("poupou"), test_pki.key("poupou"))
    assert outcome.handshake and status(outcome) == 200, outcome
    tls = app.calls[-1]
    if mode == "none":  # no CertificateRequest: nothing signed, nothing sent
        assert outcome.signature_schemes == []
        assert tls["client_cert_chain"] == [] and tls["client_cert_name"] is None
    else:
        assert len(outcome.signature_schemes) == 1
        assert tls["client_cert_name"] == "CN=poupou" and tls["client_cert_error"] is None


@VERSIONS
@pytest.mark.parametrize("mode", list(MODES))
def test_an_empty_certificate_message(
    servers: Callable[[str], tuple[int, CountingApp]], mode: str, version: tuple[int, int]
) -> None:
    # Answering a CertificateRequest with no certificate is legal; require refuses it in HTTP.
    port, app = servers(mode)
    before = len(app.calls)
    outcome = connect(port, settings_for(version))
    assert outcome.handshake and outcome.signature_schemes == []
    if mode == "require":
        assert status(outcome) == 403 and b"client certificate required" in outcome.response
        assert len(app.calls) == before
    else:
        assert status(outcome) == 200 and app.calls[-1]["client_cert_chain"] == []


# -- signature algorithms in CertificateVerify (accepted when valid) ---------------------------

SCHEMES = {
    # name: (versions, key, tlslite settings)
    "rsa_pkcs1_sha256": ([TLS12], "rsa", {"rsaSchemes": ["pkcs1"], "rsaSigHashes": ["sha256"]}),
    "rsa_pkcs1_sha384": ([TLS12], "rsa", {"rsaSchemes": ["pkcs1"], "rsaSigHashes": ["sha384"]}),
    "rsa_pkcs1_sha512": ([TLS12], "rsa", {"rsaSchemes": ["pkcs1"], "rsaSigHashes": ["sha512"]}),
    "rsa_pss_rsae_sha256": (
        [TLS12, TLS13],
        "rsa",
        {"rsaSchemes": ["pss"], "rsaSigHashes": ["sha256"]},
    ),
    "rsa_pss_rsae_sha384": (
        [TLS12, TLS13],
        "rsa",
        {"rsaSchemes": ["pss"], "rsaSigHashes": ["sha384"]},
    ),
    "rsa_pss_rsae_sha512": (
        [TLS12, TLS13],
        "rsa",
        {"rsaSchemes": ["pss"], "rsaSigHashes": ["sha512"]},
    ),
    "ecdsa_secp256r1_sha256": ([TLS12, TLS13], "ecdsa", {"ecdsaSigHashes": ["sha256"]}),
    "ecdsa_secp384r1_sha384": ([TLS12], "ecdsa", {"ecdsaSigHashes": ["sha384"]}),
    "ed25519": ([TLS12, TLS13], "ed25519", {"more_sig_schemes": ["Ed25519"]}),
}
SCHEME_CASES = [
    pytest.param(name, version, id=f"{name}-{'1.2' if version == TLS12 else '1.3'}")
    for name, (versions, _, _) in SCHEMES.items()
    for version in versions
]


@pytest.mark.parametrize(("scheme", "version"), SCHEME_CASES)
def test_signature_schemes_in_certificate_verify_are_accepted(
    servers: Callable[[str], tuple[int, CountingApp]],
    keys: dict[str, Path],
    scheme: str,
    version: tuple[int, int],
) -> None:
    _, key, options = SCHEMES[scheme]
    settings = settings_for(version)
    for attribute, value in options.items():
        setattr(settings, attribute, value)
    port, app = servers("require")
    outcome = connect(port, settings, keys[key], key_of(keys[key]))
    assert status(outcome) == 200, outcome
    # In TLS 1.2 an ECDSA scheme names only the hash: tlslite calls 0x0503 "secp384r1_sha384".
    assert outcome.signature_schemes == [scheme]
    assert app.calls[-1]["client_cert_error"] is None
    assert (
        app.calls[-1]["client_cert_name"] == f"CN={'poupou' if key == 'ecdsa' else key + '-client'}"
    )


# -- bad signatures: never a ClientCertificate ---------------------------------------------------


@VERSIONS
@ASKING
@pytest.mark.parametrize(
    ("cert", "key"),
    [("poupou", "expired"), ("expired", "poupou")],
    ids=["valid-cert", "expired-cert"],
)
def test_a_key_that_is_not_the_certificates_is_decrypt_error(
    servers: Callable[[str], tuple[int, CountingApp]],
    test_pki: PKIFiles,
    mode: str,
    version: tuple[int, int],
    cert: str,
    key: str,
) -> None:
    port, app = servers(mode)
    before = len(app.calls)
    outcome = connect(port, settings_for(version), test_pki.cert(cert), test_pki.key(key))
    refused(outcome, "decrypt_error", app, before)


def _handshake_message(kind: int, body: bytes) -> bytearray:
    return bytearray(bytes([kind]) + len(body).to_bytes(3, "big") + body)


def _rewrite(cls: type, kind: int, change: Callable[[bytes], bytes]) -> Callable[..., bytearray]:
    original = cls.write

    def write(self: object) -> bytearray:
        return _handshake_message(kind, change(bytes(original(self))[4:]))

    return write


#: CertificateVerify bodies (2-byte scheme, 2-byte length, signature) and the alert they earn.
CERTIFICATE_VERIFY: dict[str, tuple[Callable[[bytes], bytes], str | tuple[str, ...]]] = {
    "garbage-signature": (lambda b: b[:4] + os.urandom(len(b) - 4), "decrypt_error"),
    "empty-signature": (lambda b: b[:2] + b"\x00\x00", "decrypt_error"),
    "truncated": (lambda b: b[:-1], "decode_error"),
    "length-overruns": (lambda b: b[:2] + (len(b) - 3).to_bytes(2, "big") + b[4:], "decode_error"),
    "trailing-byte": (lambda b: b + b"\x00", "decode_error"),
    # OpenSSL 3.0 (the server's, on Debian 12) answers a TLS 1.2 scheme below its security
    # level with handshake_failure ("wrong signature type"); newer ones say illegal_parameter.
    "scheme-not-offered-ecdsa-sha1": (
        lambda b: b"\x02\x03" + b[2:],
        ("illegal_parameter", "handshake_failure"),
    ),
    "scheme-of-another-key-type": (lambda b: b"\x08\x04" + b[2:], "illegal_parameter"),
    "unknown-scheme": (lambda b: b"\xfe\xfe" + b[2:], "illegal_parameter"),
}


@VERSIONS
@pytest.mark.parametrize("case", list(CERTIFICATE_VERIFY))
def test_malformed_certificate_verify(
    servers: Callable[[str], tuple[int, CountingApp]],
    test_pki: PKIFiles,
    monkeypatch: pytest.MonkeyPatch,
    case: str,
    version: tuple[int, int],
) -> None:
    change, alert = CERTIFICATE_VERIFY[case]
    monkeypatch.setattr(CertificateVerify, "write", _rewrite(CertificateVerify, 15, change))
    port, app = servers("optional")
    before = len(app.calls)
    outcome = connect(port, settings_for(version), test_pki.cert("poupou"), test_pki.key("poupou"))
    refused(outcome, alert, app, before)


def test_pkcs1_in_a_tls13_certificate_verify_is_illegal_parameter(
    servers: Callable[[str], tuple[int, CountingApp]],
    keys: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # RFC 8446 4.4.3: RSA signatures in TLS 1.3 CertificateVerify must be RSASSA-PSS.
    relabel = _rewrite(CertificateVerify, 15, lambda b: b"\x04\x01" + b[2:])  # rsa_pkcs1_sha256
    monkeypatch.setattr(CertificateVerify, "write", relabel)
    settings = settings_for(TLS13)
    settings.rsaSigHashes = ["sha256"]
    port, app = servers("require")
    before = len(app.calls)
    outcome = connect(port, settings, keys["rsa"], key_of(keys["rsa"]))
    refused(outcome, "illegal_parameter", app, before)


# -- malformed Certificate ---------------------------------------------------------------------

NOT_DER = b"\x30\x03\x02\x01\x00"  # a SEQUENCE holding an INTEGER: no certificate


def _list24(*items: bytes) -> bytes:
    return b"".join(len(i).to_bytes(3, "big") + i for i in items)


def _garbage_certificate(version: tuple[int, int]) -> Callable[[bytes], bytes]:
    if version == TLS12:
        return lambda _: _list24(_list24(NOT_DER))
    # TLS 1.3: empty certificate_request_context, one CertificateEntry with no extensions.
    return lambda _: b"\x00" + _list24(_list24(NOT_DER) + b"\x00\x00")


CERTIFICATE = {
    "not-a-certificate": None,  # version-dependent, see _garbage_certificate
    "truncated": lambda b: b[:-10],
    "list-length-overruns": lambda b: (int.from_bytes(b[:3], "big") + 5).to_bytes(3, "big") + b[3:],
}


@VERSIONS
@ASKING
@pytest.mark.parametrize("case", list(CERTIFICATE))
def test_malformed_certificate_is_decode_error(
    servers: Callable[[str], tuple[int, CountingApp]],
    test_pki: PKIFiles,
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
    case: str,
    version: tuple[int, int],
) -> None:
    change = CERTIFICATE[case] or _garbage_certificate(version)
    if case == "list-length-overruns" and version == TLS13:
        # TLS 1.3 puts a one-byte context first: the 3-byte list length follows it.
        change = lambda b: b[:1] + (int.from_bytes(b[1:4], "big") + 5).to_bytes(3, "big") + b[4:]  # noqa: E731
    monkeypatch.setattr(Certificate, "write", _rewrite(Certificate, 11, change))
    port, app = servers(mode)
    before = len(app.calls)
    outcome = connect(port, settings_for(version), test_pki.cert("poupou"), test_pki.key("poupou"))
    refused(outcome, "decode_error", app, before)


# -- extended master secret, TLS 1.3 certificate compression ------------------------------------


@ASKING
def test_extended_master_secret_with_a_client_certificate(
    servers: Callable[[str], tuple[int, CountingApp]], test_pki: PKIFiles, mode: str
) -> None:
    settings = settings_for(TLS12)
    settings.useExtendedMasterSecret = settings.requireExtendedMasterSecret = True
    port, app = servers(mode)
    outcome = connect(port, settings, test_pki.cert("poupou"), test_pki.key("poupou"))
    assert outcome.ems is True
    assert status(outcome) == 200, outcome
    assert app.calls[-1]["client_cert_name"] == "CN=poupou"
    assert app.calls[-1]["client_cert_error"] is None


@ASKING
def test_an_unsolicited_compressed_certificate_is_unexpected_message(
    servers: Callable[[str], tuple[int, CountingApp]], test_pki: PKIFiles, mode: str
) -> None:
    # RFC 8879: CompressedCertificate only when the peer offered compress_certificate; the
    # server offers none, and tlslite-ng 0.8.2 sends one anyway (see tlslite_client).
    port, app = servers(mode)
    before = len(app.calls)
    settings = settings_for(TLS13, compress=True)
    outcome = connect(port, settings, test_pki.cert("poupou"), test_pki.key("poupou"))
    refused(outcome, "unexpected_message", app, before)
