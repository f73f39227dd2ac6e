"""Keys, names, certificates, PKCS#12, Mono PVK import and CRLs, on ``cryptography``.

The short way::

    from mutls import pki
    ca = pki.CertificateAuthority.create("CN=My Own Test CA")
    ca.write("root.pem", "root.key")
    ca.issue_server("localhost").write_p12("pollux.p12", "s3kr3t")
    ca.issue_client("CN=poupou").write_p12("poupou.p12", "s3kr3t")
    poupou = pki.Identity.from_p12("poupou.p12", "s3kr3t")
"""

from mutls.pki.authority import CLIENT_AUTH, SERVER_AUTH, CertificateAuthority
from mutls.pki.certs import (
    allows_client_auth,
    build_certificate,
    fingerprint,
    is_ca_certificate,
    load_certificate,
    load_certificates,
    parse_certificates,
    write_certificate,
)
from mutls.pki.crl import build_crl, load_crls, parse_crls, write_crl
from mutls.pki.describe import FileReport, describe_certificate, describe_file
from mutls.pki.identity import Identity
from mutls.pki.issuance import Issuer, Validity, issue_certificate
from mutls.pki.keys import (
    KeySpec,
    KeyType,
    PrivateKey,
    describe_key,
    generate_private_key,
    key_matches_certificate,
    load_private_key,
    write_private_key,
)
from mutls.pki.names import parse_eku, parse_general_name, parse_name
from mutls.pki.trust import TrustMaterial
from mutls.pki.weakness import weaknesses

__all__ = [
    "CLIENT_AUTH",
    "SERVER_AUTH",
    "CertificateAuthority",
    "FileReport",
    "Identity",
    "Issuer",
    "KeySpec",
    "KeyType",
    "PrivateKey",
    "TrustMaterial",
    "Validity",
    "allows_client_auth",
    "build_certificate",
    "build_crl",
    "describe_certificate",
    "describe_file",
    "describe_key",
    "fingerprint",
    "generate_private_key",
    "is_ca_certificate",
    "issue_certificate",
    "key_matches_certificate",
    "load_certificate",
    "load_certificates",
    "load_crls",
    "load_private_key",
    "parse_certificates",
    "parse_crls",
    "parse_eku",
    "parse_general_name",
    "parse_name",
    "weaknesses",
    "write_certificate",
    "write_crl",
    "write_private_key",
]
