"""Allow rules: what each condition admits (and, as important, what it does not), one line for
a rule file that cannot be understood, and the admission the server derives from them."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from mutls import pki
from mutls.authz import Access, AllowRules, RuleError, UserName, admit, authorization_status
from mutls.tls import ClientCertificate, ClientCertMode, VerifyPolicy

from helpers import PKIFiles


def client(
    ca: pki.CertificateAuthority, name: str, *san: str, valid: bool = True
) -> ClientCertificate:
    """A verdict on a certificate issued by ``ca`` (the rules never verify: the engine did)."""
    leaf = ca.issue(name, eku=(pki.CLIENT_AUTH,), san=san).certificate
    error = None if valid else "certificate has expired"
    return ClientCertificate(present=True, valid=valid, error=error, chain=(leaf,))


def admits(rule: str, cert: ClientCertificate) -> bool:
    return AllowRules.parse(f"[[allow]]\n{rule}\n", "allow.toml").check(cert).authorized


@pytest.mark.parametrize(
    ("rule", "name", "san", "admitted"),
    [
        ('subject = "CN=poupou, O=Example"', "CN=poupou,O=Example", (), True),
        ('subject = "cn=POUPOU,o=example"', "CN=poupou,O=Example", (), True),  # RFC 5280 7.1
        ('subject = "/O=Example/CN=poupou"', "CN=poupou,O=Example", (), True),  # OpenSSL's form
        ('subject = "CN=poupou"', "CN=poupou,O=Example", (), False),  # exact: all of it
        ('subject_pattern = "CN=*,O=Example"', "CN=castor,O=Example", (), True),
        ('subject_pattern = "CN=*,O=Example"', "CN=x,OU=evil,O=Example", (), False),
        ('subject_pattern = "CN=*,O=Example"', "CN=x\\,O=Example,O=Evil", (), False),
        ('subject_pattern = "CN=svc-?,OU=*"', "CN=svc-1,OU=ops", (), True),
        ('dns = "*.svc.example.org"', "CN=a", ("DNS:web.svc.example.org",), True),
        ('dns = "*.svc.example.org"', "CN=a", ("DNS:a.b.svc.example.org",), False),
        ('dns = ["x.org", "*.SVC.example.org"]', "CN=a", ("DNS:Web.svc.example.org",), True),
        ('email = "*@example.org"', "CN=a", ("email:first.last@EXAMPLE.org",), True),
        ('email = "*@example.org"', "CN=a", ("email:x@example.org.evil",), False),
        ('email = "*@example.org"', "CN=a", ("email:x@sub.example.org",), False),
        ('uri = "https://id.example.org/**"', "CN=a", ("URI:https://id.example.org/a/b",), True),
        ('uri = "https://id.example.org/*"', "CN=a", ("URI:https://id.example.org/a/b",), False),
        ('spiffe = "spiffe://example.org/ns/*/sa/web"', "CN=",
         ("URI:spiffe://example.org/ns/prod/sa/web",), True),
        ('spiffe = "spiffe://example.org/ns/*/sa/web"', "CN=a",
         ("URI:spiffe://example.org/ns/prod/x/sa/web",), False),
        ('spiffe = "spiffe://example.org/**"', "CN=a",
         ("URI:spiffe://example.org/ns/prod/sa/web",), True),
        ('spiffe = "spiffe://example.org/**"', "CN=a",  # an SVID has exactly one URI SAN
         ("URI:spiffe://example.org/a", "URI:spiffe://example.org/b"), False),
        ('spiffe = "spiffe://example.org/**"', "CN=a",  # no dot segments in a SPIFFE ID
         ("URI:spiffe://example.org/a/../b",), False),
        ('spiffe = "spiffe://example.org/**"', "CN=a", ("URI:spiffe://evil.org/x",), False),
        ('uri = "spiffe://example.org/**"', "CN=a", ("DNS:example.org",), False),
        ('dns = "x.example.org"\nsubject = "CN=a"', "CN=a", ("DNS:x.example.org",), True),
        ('dns = "x.example.org"\nsubject = "CN=b"', "CN=a", ("DNS:x.example.org",), False),
    ],
)  # fmt: skip
def test_what_a_condition_admits(
    test_pki: PKIFiles, rule: str, name: str, san: tuple[str, ...], admitted: bool
) -> None:
    subject = name if name != "CN=" else "CN=svid"
    assert admits(rule, client(test_pki.ca, subject, *san)) is admitted


def test_issuer_key_and_fingerprint(test_pki: PKIFiles) -> None:
    cert = client(test_pki.ca, "CN=poupou")
    leaf = cert.certificate
    assert leaf is not None
    spki = leaf.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pin = base64.b64encode(hashlib.sha256(spki).digest()).decode()
    fingerprint = ":".join(f"{b:02X}" for b in bytes.fromhex(cert.fingerprint_sha256 or ""))
    assert admits('issuer = "CN=My Own Test CA"', cert)
    assert not admits('issuer = "CN=Untrusted Test CA"', cert)
    assert admits('issuer_pattern = "CN=My * CA"', cert)
    assert admits(f'spki_sha256 = "sha256//{pin}"', cert)
    assert admits(f'spki_sha256 = "{hashlib.sha256(spki).hexdigest()}"', cert)
    assert admits(f'fingerprint_sha256 = "{fingerprint}"', cert)
    assert not admits(f'fingerprint_sha256 = "{"00" * 32}"', cert)


def test_the_verdict_names_the_rule_and_never_admits_an_invalid_certificate(
    test_pki: PKIFiles,
) -> None:
    rules = AllowRules.parse(
        '[[allow]]\nname = "ops"\nsubject = "CN=poupou"\n[[allow]]\nsubject = "CN=castor"\n',
        "allow.toml",
    )
    castor = rules.check(client(test_pki.ca, "CN=castor"))
    assert (castor.authorized, castor.rule) == (True, "rule 2 of allow.toml")
    assert rules.check(client(test_pki.ca, "CN=poupou")).rule == "ops"
    expired = rules.check(client(test_pki.ca, "CN=poupou", valid=False))
    assert not expired.authorized
    assert expired.reason == "client certificate not valid: certificate has expired"
    mallory = rules.check(client(test_pki.ca, "CN=mallory"))
    assert mallory.reason == "CN=mallory matches no rule of allow.toml"
    assert rules.check(ClientCertificate.absent()).reason == "no client certificate"
    assert authorization_status(castor) == "ALLOWED:rule 2 of allow.toml"
    assert authorization_status(mallory) == "DENIED:CN=mallory matches no rule of allow.toml"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[allow]]\nsubjet = 'CN=x'", "rule 1 of allow.toml: unknown key 'subjet'"),
        ("[[allow]]\nname = 'x'", "rule 1 of allow.toml: no condition, so it would admit"),
        ("", "allow.toml: no [[allow]] rule: nobody would be admitted"),
        ("allow = 3", "allow.toml: 'allow' must be [[allow]] tables"),
        ("[allow]\ndns = 'x'", "allow.toml: 'allow' must be [[allow]] tables"),
        ("remote_user = 'cn'", "allow.toml: unknown key 'remote_user'"),
        ("[[allow]\n", "allow.toml: not valid TOML: "),
        ("[[allow]]\ndns = []", "rule 1 of allow.toml: dns: expected a string or a non-empty"),
        ("[[allow]]\ndns = 3", "rule 1 of allow.toml: dns: expected a string"),
        ("[[allow]]\nspiffe = 'https://x'", "rule 1 of allow.toml: spiffe: 'https://x' is not a"),
        ("[[allow]]\nspki_sha256 = 'abc'", "rule 1 of allow.toml: spki_sha256 'abc': expected a"),
        ("[[allow]]\nsubject = 'XX=y'", "rule 1 of allow.toml: subject: invalid name 'XX=y'"),
    ],
)
def test_a_rule_file_that_cannot_be_understood_is_one_line(text: str, message: str) -> None:
    with pytest.raises(RuleError) as raised:
        AllowRules.parse(text, "allow.toml")
    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)


def test_load_names_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match=r"nope.toml: no such allow-rules file"):
        AllowRules.load(tmp_path / "nope.toml")


def test_admission_strict_refuses_the_unauthorized_report_lets_the_app_see(
    test_pki: PKIFiles,
) -> None:
    rules = AllowRules.parse('[[allow]]\nsubject = "CN=poupou"\n', "allow.toml")
    access = Access(rules, UserName.EMAIL)
    poupou = client(test_pki.ca, "CN=poupou", "email:poupou@example.org")
    mallory = client(test_pki.ca, "CN=mallory", "email:mallory@example.org")
    optional, strict, report = ClientCertMode.OPTIONAL, VerifyPolicy.STRICT, VerifyPolicy.REPORT
    assert admit(poupou, optional, strict, access).refusal is None
    assert admit(poupou, optional, strict, access).remote_user == "poupou@example.org"
    refused = admit(mallory, optional, strict, access)
    assert refused.refusal == (
        "client certificate not authorized: CN=mallory matches no rule of allow.toml"
    )
    seen = admit(mallory, optional, report, access)
    assert seen.refusal is None and seen.authorization is not None
    assert not seen.authorization.authorized
    assert seen.remote_user == "mallory@example.org"  # authenticated, not authorized
    expired = admit(client(test_pki.ca, "CN=poupou", valid=False), optional, report, access)
    assert expired.remote_user is None  # nobody vouches for the name
    strict_expired = admit(client(test_pki.ca, "CN=poupou", valid=False), optional, strict, access)
    assert strict_expired.refusal == "client certificate not valid: certificate has expired"
    # without a certificate the mode decides, as without rules
    assert admit(ClientCertificate.absent(), optional, strict, access).refusal is None
    assert (
        admit(ClientCertificate.absent(), ClientCertMode.REQUIRE, strict, access).refusal
        == "client certificate required"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cn", "poupou"),
        ("SSL_CLIENT_S_DN_CN", "poupou"),
        ("email", "poupou@example.org"),
        ("SSL_CLIENT_SAN_Email_0", "poupou@example.org"),
        ("subject", "CN=poupou"),
        ("dns", "poupou.example.org"),
        ("uri", "spiffe://example.org/user/poupou"),
        ("spiffe", "spiffe://example.org/user/poupou"),
    ],
)
def test_remote_user_sources(test_pki: PKIFiles, text: str, expected: str) -> None:
    cert = client(
        test_pki.ca, "CN=poupou", "email:poupou@example.org", "DNS:poupou.example.org",
        "URI:spiffe://example.org/user/poupou",
    )  # fmt: skip
    assert UserName.parse(text).of(cert) == expected


def test_an_unknown_remote_user_source_is_one_line() -> None:
    with pytest.raises(RuleError, match=r"^--remote-user uid: use one of cn, email"):
        UserName.parse("uid")
