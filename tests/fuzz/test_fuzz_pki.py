"""The file loaders of ``mutls.pki`` under hypothesis: arbitrary bytes, and real PEM, DER, PKCS#12,
PVK and CRL files flipped, cut and spliced, either load or raise a ``MutlsError`` (the CLI's one
clear line); never another exception, never a hang."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from hypothesis import given
from hypothesis import strategies as st

from mutls import pki
from mutls.errors import MutlsError
from mutls.pki.describe import describe_bytes
from mutls.pki.identity import Identity
from mutls.pki.keys import load_private_key_bytes, load_pvk
from mutls.pki.pkcs12 import parse_p12

from budget import budget
from helpers import FIXTURES, PASSWORD, PKIFiles


def use_certificates(certs: list[x509.Certificate]) -> None:
    """What the commands read of a loaded certificate: a lazily parsed field must not raise."""
    for cert in certs:
        cert.subject.rfc4514_string()
        cert.issuer.rfc4514_string()
        cert.public_key()
        list(cert.extensions)
        cert.not_valid_after_utc  # noqa: B018


def use_crls(crls: list[x509.CertificateRevocationList]) -> None:
    for crl in crls:
        crl.issuer.rfc4514_string()
        list(crl.extensions)
        for revoked in crl:
            revoked.serial_number  # noqa: B018
            list(revoked.extensions)


def use_p12(data: bytes) -> None:
    _, cert, others = parse_p12(data, "fuzz.p12", PASSWORD)
    use_certificates([cert, *others] if cert is not None else others)


LOADERS: dict[str, Callable[[bytes], object]] = {
    "certificates": lambda data: use_certificates(pki.parse_certificates(data, "fuzz.pem")),
    "crls": lambda data: use_crls(pki.parse_crls(data, "fuzz.crl")),
    "key": lambda data: load_private_key_bytes(data, "fuzz.key"),
    "key-with-password": lambda data: load_private_key_bytes(data, "fuzz.key", PASSWORD),
    "pvk": lambda data: load_pvk(data, "fuzz.pvk"),
    "p12": use_p12,
    "identity": lambda data: Identity.from_p12_bytes(data, PASSWORD, "fuzz.p12"),
    "inspect": lambda data: describe_bytes(data, "fuzz.bin", lambda _prompt: PASSWORD),
}
EACH_LOADER = pytest.mark.parametrize("loader", list(LOADERS))


def only_mutls_errors(loader: str, data: bytes) -> None:
    try:
        LOADERS[loader](data)
    except MutlsError as error:
        assert str(error) and "\n" not in str(error), repr(error)


class Seeds(list[bytes]):
    """The seed files (short in hypothesis's report of a failing example)."""

    def __repr__(self) -> str:
        return f"<{len(self)} seed files>"


@pytest.fixture(scope="module")
def seeds(test_pki: PKIFiles) -> Seeds:
    """One real file of every kind the loaders read."""
    poupou = test_pki.identities["poupou"]
    files = [
        test_pki.cert("via-intermediate").read_bytes(),  # PEM chain
        test_pki.key("poupou").read_bytes(),  # PEM PKCS#8
        test_pki.p12("poupou").read_bytes(),  # AES-256 PKCS#12
        test_pki.crl_path.read_bytes(),  # PEM CRL
        poupou.certificate.public_bytes(serialization.Encoding.DER),
        poupou.key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(PASSWORD.encode()),
        ),
        pki.load_crls(test_pki.crl_path)[0].public_bytes(serialization.Encoding.DER),
        (FIXTURES / "root.key").read_bytes(),  # Mono PVK
        (FIXTURES / "root.cer").read_bytes(),  # Mono DER
        (FIXTURES / "poupou.p12").read_bytes(),  # Mono 3DES PKCS#12
    ]
    for data in files:  # the seeds themselves are fine for some loader
        assert any(_loads(name, data) for name in LOADERS)
    return Seeds(files)


def _loads(loader: str, data: bytes) -> bool:
    try:
        LOADERS[loader](data)
    except MutlsError:
        return False
    return True


@EACH_LOADER
@budget(150)
@given(data=st.binary(max_size=400))
def test_arbitrary_bytes(loader: str, data: bytes) -> None:
    only_mutls_errors(loader, data)


@EACH_LOADER
@budget(60)
@given(
    which=st.integers(0, 9),
    edits=st.lists(
        st.tuples(
            st.integers(0, 1 << 16),
            st.sampled_from(["flip", "cut", "delete", "insert", "splice"]),
            st.binary(min_size=1, max_size=8),
        ),
        min_size=1,
        max_size=3,
    ),
)
def test_mutated_real_files(
    seeds: list[bytes], loader: str, which: int, edits: list[tuple[int, str, bytes]]
) -> None:
    data = bytearray(seeds[which])
    for at, how, extra in edits:
        i = at % max(len(data), 1)
        if how == "flip":
            data[i] ^= extra[0] or 0x80
        elif how == "cut":
            del data[i:]
        elif how == "delete":
            del data[i : i + len(extra) * 16]
        elif how == "insert":
            data[i:i] = extra
        else:  # another file's bytes in the middle: plausible structure, wrong place
            other = seeds[(which + 1 + at) % len(seeds)]
            data[i:i] = other[: len(extra) * 64]
        if not data:
            break
    only_mutls_errors(loader, bytes(data))


@pytest.mark.parametrize(
    ("loader", "data"),
    [
        ("certificates", b"-----BEGIN CERTIFICATE-----\n\n-----END CERTIFICATE-----\n"),
        ("certificates", b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"),
        ("crls", b"-----BEGIN X509 CRL-----\n!!!!\n-----END X509 CRL-----\n"),
        ("key", b"-----BEGIN PRIVATE KEY-----\nMA==\n-----END PRIVATE KEY-----\n"),
        ("pvk", b"\x1e\xf1\xb5\xb0" + b"\x00" * 20),
        ("pvk", b"\x1e\xf1\xb5\xb0" + b"\xff" * 40),
        ("p12", b"\x30\x80" + b"\x00" * 30),
        ("inspect", b""),
    ],
)
def test_known_corner_cases(loader: str, data: bytes) -> None:
    only_mutls_errors(loader, data)


@pytest.mark.parametrize("loader", ["certificates", "inspect"])
def test_a_corrupt_field_inside_a_well_formed_certificate(test_pki: PKIFiles, loader: str) -> None:
    # Found by test_mutated_real_files: one flipped bit makes the issuer's UTF8String invalid,
    # the outer DER still loads, and cryptography parses the Name only on first use.
    cert = test_pki.identities["via-intermediate"].certificate
    der = cert.public_bytes(serialization.Encoding.DER)
    name = b"My Intermediate CA"
    assert der.count(name) == 1
    bad = der.replace(name, b"\xff" + name[1:])
    with pytest.raises(MutlsError, match="corrupt"):
        LOADERS[loader](bad)


def test_a_corrupt_field_inside_a_well_formed_crl(test_pki: PKIFiles) -> None:
    crl = pki.load_crls(test_pki.crl_path)[0]
    der = crl.public_bytes(serialization.Encoding.DER)
    bad = der.replace(b"My Own Test CA", b"\xffy Own Test CA")
    for loader in ("crls", "inspect"):
        with pytest.raises(MutlsError, match="corrupt"):
            LOADERS[loader](bad)
