"""Forwarded client certificates: each proxy's format decodes to the chain it carries, anything
malformed is one ForwardedCertificateError, and the verdict is the handshake's own."""

from __future__ import annotations

import base64
import hashlib
import urllib.parse

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from mutls.apps.forwarded_certificates import ForwardedCertificates
from mutls.apps.testpage import greeting
from mutls.errors import UsageError
from mutls.http import HTTPConnection, Request
from mutls.http.forwarded_certificates import (
    KNOWN_NAMES,
    MAX_VALUE_BYTES,
    ForwardedCertificateError,
    ForwardedFormat,
    ForwardedHeader,
    parse_pem,
    parse_rfc9440,
    parse_xfcc,
)
from mutls.pki.trust import TrustMaterial
from mutls.server.config import ServerConfig
from mutls.tls.options import ClientCertMode, VerifyPolicy
from mutls.tls.verify import ClientVerifier

from helpers import CLIENT_CASES, PKIFiles


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.PEM)


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)


def escaped(data: bytes) -> bytes:
    """nginx's $ssl_client_escaped_cert: every reserved byte percent-escaped."""
    return urllib.parse.quote_from_bytes(data, safe=b"").encode("ascii")


def sf(data: bytes) -> bytes:
    return b":" + base64.b64encode(data) + b":"


@pytest.fixture(scope="module")
def poupou(test_pki: PKIFiles) -> x509.Certificate:
    return test_pki.identities["poupou"].certificate


@pytest.fixture(scope="module")
def castor(test_pki: PKIFiles) -> tuple[x509.Certificate, x509.Certificate]:
    """A leaf issued by the intermediate, and the intermediate."""
    return test_pki.identities["via-intermediate"].certificate, test_pki.intermediate.certificate


# -- nginx / X-Client-Cert --------------------------------------------------------------------


def test_escaped_pem(poupou: x509.Certificate) -> None:
    assert parse_pem(escaped(pem(poupou))) == (poupou,)


def test_escaped_pem_keeps_plus(poupou: x509.Certificate) -> None:
    """'+' is base64, never a space: only %2B-style escapes are decoded."""
    text = pem(poupou).replace(b"\n", b"%0A")
    assert parse_pem(text) == (poupou,)


def test_tab_folded_pem(poupou: x509.Certificate) -> None:
    """nginx's older $ssl_client_cert: every line after the first starts with a tab."""
    folded = pem(poupou).strip().replace(b"\n", b"\n\t")
    assert parse_pem(folded) == (poupou,)


@pytest.mark.parametrize("sep", [b" ", b"\r\n", b""])
def test_pem_line_breaks(poupou: x509.Certificate, sep: bytes) -> None:
    assert parse_pem(pem(poupou).replace(b"\n", sep)) == (poupou,)


def test_pem_chain(castor: tuple[x509.Certificate, x509.Certificate]) -> None:
    leaf, inter = castor
    assert parse_pem(escaped(pem(leaf) + pem(inter))) == (leaf, inter)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"", "empty value"),
        (b"hello", "no PEM certificate"),
        (b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----", "not an X.509"),
        (b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----", "no PEM"),
        (b"-----BEGIN CERTIFICATE-----\nA===\n-----END CERTIFICATE-----", "not base64"),
        (b"%ZZ-----BEGIN CERTIFICATE-----", "bad percent-escape"),
        (b"%4", "bad percent-escape"),
    ],
)
def test_pem_malformed(value: bytes, reason: str) -> None:
    with pytest.raises(ForwardedCertificateError, match=reason) as caught:
        parse_pem(value)
    assert str(caught.value).startswith("forwarded certificate header malformed: ")


def test_pem_text_outside(poupou: x509.Certificate) -> None:
    with pytest.raises(ForwardedCertificateError, match="outside"):
        parse_pem(b"junk" + pem(poupou))
    with pytest.raises(ForwardedCertificateError, match="outside"):
        parse_pem(pem(poupou) + b"junk")


def test_too_long_and_too_many(poupou: x509.Certificate) -> None:
    with pytest.raises(ForwardedCertificateError, match="longer than"):
        parse_pem(b" " * (MAX_VALUE_BYTES + 1))
    with pytest.raises(ForwardedCertificateError, match="more than"):
        parse_pem(pem(poupou) * 9)


# -- RFC 9440 ---------------------------------------------------------------------------------


def test_rfc9440(castor: tuple[x509.Certificate, x509.Certificate]) -> None:
    leaf, inter = castor
    assert parse_rfc9440(sf(der(leaf)), None) == (leaf,)
    assert parse_rfc9440(sf(der(leaf)), b" " + sf(der(inter)) + b" ") == (leaf, inter)


def test_rfc9440_unpadded(poupou: x509.Certificate) -> None:
    assert parse_rfc9440(b":" + base64.b64encode(der(poupou)).rstrip(b"=") + b":", None)


@pytest.mark.parametrize(
    "value", [b"", b":", b"abc", b":abc", b":a b:", b":YWJj:;x=1", b":-_-_:", b'"abc"']
)
def test_rfc9440_malformed(value: bytes) -> None:
    with pytest.raises(ForwardedCertificateError):
        parse_rfc9440(value, None)


def test_rfc9440_headers(castor: tuple[x509.Certificate, x509.Certificate]) -> None:
    leaf, inter = castor
    headers = [(b"Client-Cert", sf(der(leaf))), (b"Client-Cert-Chain", sf(der(inter)))]
    both = ForwardedHeader.named("Client-Cert, Client-Cert-Chain")
    assert both.format is ForwardedFormat.RFC9440
    assert both.chain(headers) == (leaf, inter)
    with pytest.raises(ForwardedCertificateError, match="more than once"):
        both.chain([(b"client-cert", sf(der(leaf)))] * 2)
    # Client-Cert-Chain is read only when named: a proxy that sets Client-Cert alone passes on
    # the chain a client sent.
    assert ForwardedHeader.named("Client-Cert").chain(headers) == (leaf,)


@pytest.mark.parametrize(
    ("names", "message"),
    [
        ("X_Client_Cert", "'_'"),
        ("X-Client-Cert X", "not a header name"),
        ("", "not a header name"),
        ("Client-Cert-Chain", "Client-Cert, Client-Cert-Chain"),
        ("X-Client-Cert, Client-Cert-Chain", "Client-Cert, Client-Cert-Chain"),
    ],
)
def test_header_names_that_cannot_work(names: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ForwardedHeader.named(names)


# -- Envoy's XFCC -----------------------------------------------------------------------------


def xfcc(cert: x509.Certificate, chain: bytes | None = None, by: bytes = b"spiffe://a/b") -> bytes:
    digest = hashlib.sha256(der(cert)).hexdigest().encode()
    element = b"By=" + by + b";Hash=" + digest + b';Cert="' + escaped(pem(cert)) + b'"'
    element += b';Subject="CN=x,O=\\"q;u,o\\"";URI=spiffe://c;DNS=a;DNS=b'
    if chain is not None:
        element += b";Chain=" + escaped(chain)
    return element


def test_xfcc_last_element(test_pki: PKIFiles, poupou: x509.Certificate) -> None:
    """Several hops: the last element is the nearest proxy's; the first is anyone's."""
    forged = test_pki.identities["untrusted"].certificate
    value = xfcc(forged) + b"," + xfcc(poupou)
    assert parse_xfcc(value) == (poupou,)
    header = ForwardedHeader.named("X-Forwarded-Client-Cert")
    assert header.format is ForwardedFormat.XFCC
    # Repeated header lines are one list, in order.
    assert header.chain([(XFCC_NAME, xfcc(forged)), (XFCC_NAME, xfcc(poupou))]) == (poupou,)


XFCC_NAME = b"x-forwarded-client-cert"


def test_xfcc_chain(castor: tuple[x509.Certificate, x509.Certificate]) -> None:
    leaf, inter = castor
    assert parse_xfcc(xfcc(leaf, chain=pem(leaf) + pem(inter))) == (leaf, inter)


def test_xfcc_mismatches(
    castor: tuple[x509.Certificate, x509.Certificate], poupou: x509.Certificate
) -> None:
    leaf, inter = castor
    with pytest.raises(ForwardedCertificateError, match="first of Chain"):
        parse_xfcc(xfcc(poupou, chain=pem(leaf) + pem(inter)))
    wrong = xfcc(poupou).replace(b"Hash=", b"Hash=00", 1)
    with pytest.raises(ForwardedCertificateError, match="Hash"):
        parse_xfcc(wrong)


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"By=spiffe://x",
        b'Cert="abc',
        b"Cert=abc",
        b"Bogus=1",
        b"Cert",
        b'Subject="a"b;Cert=x',
        b"Hash=1;Hash=2",
    ],
)
def test_xfcc_malformed(value: bytes) -> None:
    with pytest.raises(ForwardedCertificateError):
        parse_xfcc(value)


# -- the header as a whole --------------------------------------------------------------------


def test_absent_and_other_names(poupou: x509.Certificate) -> None:
    header = ForwardedHeader.named("X-Client-Cert")
    assert header.format is ForwardedFormat.PEM
    assert header.chain([(b"host", b"x")]) is None
    assert header.chain([(b"X-CLIENT-CERT", escaped(pem(poupou)))]) == (poupou,)
    assert ForwardedHeader.named("X-SSL-Cert").chain([(b"x-ssl-cert", pem(poupou))])


def test_certificate_headers_are_set_aside_from_every_request() -> None:
    conn = HTTPConnection(certificate_names=KNOWN_NAMES | {b"x-mine"})
    names = [
        b"X-Client-Cert", b"Client-Cert", b"client-cert-chain", b"X-Forwarded-Client-Cert",
        b"X-SSL-Cert", b"X-SSL-Client-Verify", b"SSL-Client-S-DN", b"X-Mine",
    ]  # fmt: skip
    head = b"GET / HTTP/1.1\r\nHost: a\r\n" + b"".join(n + b": x\r\n" for n in names)
    conn.receive_data(head + b"X-Other: y\r\n\r\n")
    request = conn.next_event()
    assert isinstance(request, Request)
    assert request.headers == [(b"Host", b"a"), (b"X-Other", b"y")]
    assert request.certificate_headers == [(n.lower(), b"x") for n in names]


# -- the verdict: the handshake's rules -------------------------------------------------------


@pytest.mark.parametrize("case", sorted(CLIENT_CASES))
def test_verify_chain_matches_handshake_rules(test_pki: PKIFiles, case: str) -> None:
    """Every kind of certificate gets the reason a handshake gives it."""
    crl = x509.load_pem_x509_crl(test_pki.crl_path.read_bytes())
    trust = TrustMaterial(
        anchors=(test_pki.ca.certificate,),
        intermediates=(test_pki.intermediate.certificate,),
        disallowed=(test_pki.identities["disallowed"].certificate,),
        crls=(crl,),
    )
    chain = (test_pki.identities[case].certificate,)
    verdict = ClientVerifier(trust).verify_chain(chain)
    assert verdict.present
    assert verdict.valid is (CLIENT_CASES[case] is None)
    assert verdict.error == CLIENT_CASES[case]


def test_verify_chain_empty() -> None:
    assert not ClientVerifier(TrustMaterial()).verify_chain(()).present


# -- the server's side: whom to believe, what the app sees ------------------------------------


def forwarding(
    test_pki: PKIFiles, mode: ClientCertMode = ClientCertMode.OPTIONAL
) -> ForwardedCertificates:
    verifier = ClientVerifier(TrustMaterial(anchors=(test_pki.ca.certificate,)))
    return ForwardedCertificates(
        ("127.0.0.1", "10.0.0.0/8"), "X-Client-Cert", verifier, mode, VerifyPolicy.STRICT
    )


def request_with(certificate_headers: list[tuple[bytes, bytes]]) -> Request:
    headers = [(b"Host", b"a")]
    return Request(
        "GET", b"/", b"/", "/", b"", "1.1", headers, True, certificate_headers=certificate_headers
    )


@pytest.mark.parametrize(
    ("peer", "trusted"),
    [
        *(("127.0.0.1", True), ("10.1.2.3", True), ("::ffff:10.0.0.1", True)),
        *(("127.0.0.2", False), ("::1", False), ("not-an-ip", False)),
    ],
)
def test_trusted_peers(test_pki: PKIFiles, peer: str, trusted: bool) -> None:
    assert forwarding(test_pki).trusts((peer, 1234)) is trusted


def test_request_facts(test_pki: PKIFiles, poupou: x509.Certificate) -> None:
    fwd = forwarding(test_pki)
    request = request_with([(b"x-client-cert", escaped(pem(poupou)))])
    facts = fwd.request_facts(request, ("127.0.0.1", 1), ("127.0.0.1", 80))
    cert = facts.client_certificate
    assert cert is not None and cert.valid and facts.refusal is None
    env = facts.wsgi_environ
    assert env["SSL_CLIENT_VERIFY"] == "SUCCESS" and env["SSL_CLIENT_S_DN"] == "CN=poupou"
    assert env["wsgi.url_scheme"] == "http" and "HTTPS" not in env
    tls = facts.asgi_extensions["tls"]
    assert tls["client_cert_name"] == "CN=poupou" and tls["client_cert_error"] is None
    assert (tls["server_cert"], tls["tls_version"], tls["cipher_suite"]) == (None, None, None)
    assert greeting(facts) == "Hello CN=poupou, your certificate is valid"


def test_request_facts_untrusted_peer(test_pki: PKIFiles, poupou: x509.Certificate) -> None:
    fwd = forwarding(test_pki, ClientCertMode.REQUIRE)
    request = request_with([(b"x-client-cert", escaped(pem(poupou)))])
    facts = fwd.request_facts(request, ("192.0.2.1", 1), None)
    cert = facts.client_certificate
    assert cert is not None and not cert.present
    assert facts.refusal == "client certificate required"
    assert "tls" not in facts.asgi_extensions
    assert facts.wsgi_environ["SSL_CLIENT_VERIFY"] == "NONE"
    assert greeting(facts) == "Hello from an insecure session."


def test_request_facts_malformed(test_pki: PKIFiles) -> None:
    with pytest.raises(ForwardedCertificateError):
        forwarding(test_pki).request_facts(
            request_with([(b"x-client-cert", b"junk")]), ("127.0.0.1", 1), None
        )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"trusted_proxies": ("127.0.0.1",)}, "needs what to believe from those peers"),
        ({"forwarded_cert_header": "X-Client-Cert"}, "needs --trusted-proxy"),
        ({"trusted_proxies": ("nope",), "forwarded_cert_header": "X"}, "--trusted-proxy nope"),
        ({"trusted_proxies": ("::1",), "forwarded_cert_header": "X"}, "--client-cert none"),
        (
            {"trusted_proxies": ("::1",), "forwarded_cert_header": "X_Client_Cert"},
            "--forwarded-cert-header X_Client_Cert: x_client_cert: header names with '_'",
        ),
    ],
)
def test_config_refuses(changes: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        ServerConfig(**changes)  # type: ignore[arg-type]


def test_config_behind_proxy(test_pki: PKIFiles) -> None:
    config = ServerConfig(
        trusted_proxies=("127.0.0.1",),
        forwarded_cert_header="x-forwarded-client-cert",
        client_cert=ClientCertMode.REQUIRE,
        client_ca_files=(str(test_pki.ca_cert),),
    )
    fwd = config.forwarded_certificates()
    assert fwd is not None and fwd.header.format is ForwardedFormat.XFCC
    assert fwd.verifier.has_anchors
