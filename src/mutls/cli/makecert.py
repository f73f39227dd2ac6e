"""``mutls makecert``: Mono's makecert, option for option, with modern defaults.

The article's commands work as written::

    mutls makecert -r -n "CN=My Own Test CA" -sv root.key root.cer
    mutls makecert -iv root.key -ic root.cer -eku -n "CN=pollux" -p12 pollux.p12 s3kr3t
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from mutls.cli.common import ArgumentParser, add_password_options, password_from
from mutls.errors import UsageError
from mutls.pki.certs import certificate_bytes, signature_hash
from mutls.pki.files import PRIVATE, PUBLIC, write_files
from mutls.pki.identity import Identity
from mutls.pki.issuance import (
    Issuer,
    Validity,
    choose_eku,
    issue_certificate,
    read_san_file,
    subject_key,
)
from mutls.pki.keys import KeySpec, KeyType, describe_key, private_key_pem
from mutls.pki.names import parse_general_name, parse_name
from mutls.pki.pkcs12 import p12_bytes
from mutls.pki.weakness import weaknesses

HELP = "create keys and certificates: a CA, server and client certificates (Mono makecert)"

EPILOG = """\
the article's commands:
  mutls makecert -r -n "CN=My Own Test CA" -sv root.key root.cer
  mutls makecert -iv root.key -ic root.cer -eku -n "CN=pollux" -p12 pollux.p12 s3kr3t
  mutls makecert -iv root.key -ic root.cer -eku -n "CN=poupou" -p12 poupou.p12 s3kr3t

-p12 FILE PASSWORD is Mono's form; PASSWORD may be file:PATH or env:VAR to keep it off the
command line, or be left out (with --pass-file, --pass-env, or a prompt).
"""


def build_parser() -> argparse.ArgumentParser:
    """Mono's single-dash options, then the modern long ones."""
    parser = ArgumentParser(
        prog="mutls makecert",
        description=HELP,
        epilog=EPILOG,
        add_help=False,  # Mono's -h is the path length
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    mono = parser.add_argument_group("Mono makecert options")
    mono.add_argument("-n", dest="name", metavar="DN", help='subject, e.g. "CN=poupou"')
    mono.add_argument("-r", dest="self_signed", action="store_true", help="self-signed (a root CA)")
    mono.add_argument(
        "-sv",
        dest="subject_key",
        metavar="KEYFILE",
        help="subject's private key: reused if present, else created (PEM, 0600)",
    )
    mono.add_argument(
        "-iv",
        dest="issuer_key",
        metavar="KEYFILE",
        help="issuer's private key (PEM, DER or Mono .pvk)",
    )
    mono.add_argument(
        "-ic", dest="issuer_cert", metavar="CERTFILE", help="issuer's certificate (PEM or DER .cer)"
    )
    mono.add_argument("-in", dest="issuer_name", metavar="DN", help="issuer's name")
    mono.add_argument("-#", dest="serial", type=_serial, metavar="SERIAL", help="serial number")
    mono.add_argument(
        "-a",
        dest="algorithm",
        default="sha256",
        metavar="HASH",
        help="sha256 (default), sha384 or sha512; sha1 and md5 are refused",
    )
    mono.add_argument("-b", dest="begin", metavar="MM/dd/yyyy", help="start of validity")
    mono.add_argument("-e", dest="end", metavar="MM/dd/yyyy", help="end of validity")
    mono.add_argument("-m", dest="months", type=int, metavar="MONTHS", help="validity in months")
    mono.add_argument(
        "-cy",
        dest="cert_type",
        choices=["authority", "end"],
        help="a CA (authority) or a leaf (end)",
    )
    mono.add_argument(
        "-h",
        dest="path_length",
        type=int,
        metavar="PATHLEN",
        help="how many CAs may follow this one in a chain",
    )
    mono.add_argument(
        "-eku",
        dest="eku",
        nargs="?",
        const="",
        metavar="OIDS",
        help="serverAuth,clientAuth or dotted OIDs; bare: both",
    )
    mono.add_argument(
        "-p12",
        "--p12",
        dest="p12",
        metavar="FILE",
        help="-p12 FILE PASSWORD: a PKCS#12 with the key and chain (password: see below)",
    )
    mono.add_argument("-alt", dest="alt_file", metavar="FILE", help="SANs, one DNS name a line")
    mono.add_argument("output", nargs="?", help="the certificate (.cer/.der DER, else PEM)")
    mono.add_argument("--p12-password", dest="p12_password", help=argparse.SUPPRESS)
    modern = parser.add_argument_group("modern options")
    modern.add_argument(
        "--key-type",
        metavar="TYPE",
        help="ec (P-256, default), p384, rsa, rsa3072, rsa4096 or ed25519",
    )
    modern.add_argument(
        "--san",
        action="append",
        default=[],
        metavar="NAME",
        help="DNS:x, IP:1.2.3.4, email:a@b or URI:… (repeatable)",
    )
    modern.add_argument("--days", type=int, help="validity in days (CA 3650, leaf 825)")
    modern.add_argument(
        "--crl-url",
        action="append",
        default=[],
        metavar="URL",
        help="a CRL Distribution Point: where the issuer's CRL is published (repeatable)",
    )
    modern.add_argument("--client", action="store_true", help="a client certificate (clientAuth)")
    modern.add_argument("--server", action="store_true", help="a server certificate (serverAuth)")
    modern.add_argument("--ca", action="store_true", help="a CA (-cy authority), e.g. intermediate")
    modern.add_argument(
        "--legacy",
        action="store_true",
        help="an RSA-2048 key (unless --key-type) in the 3DES PKCS#12, for old Windows and Java 8",
    )
    modern.add_argument(
        "--p12-cipher",
        choices=("3des", "aes256"),
        help="3des (default: what Mono 6.8, old Windows and macOS read, and every newer reader "
        "too) or aes256 (AES-256/PBKDF2, SHA-256 MAC: OpenSSL 3's default)",
    )
    modern.add_argument("--force", action="store_true", help="overwrite existing files")
    add_password_options(parser, "the PKCS#12 password")
    modern.add_argument("--help", action="help", help="show this help and exit")
    return parser


def _serial(text: str) -> int:
    try:
        return int(text, 16) if text.lower().startswith("0x") else int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def split_p12_password(argv: Sequence[str]) -> list[str]:
    """Rewrite Mono's two-argument ``-p12 FILE PASSWORD`` for argparse.

    The word after FILE is the password unless it is an option, or the password comes from
    --pass-file/--pass-env; a lone ``-p12 FILE`` then takes it from those, or a prompt.
    """
    args = list(argv)
    out: list[str] = []
    elsewhere = any(a in {"--pass-file", "--pass-env"} for a in args)
    i = 0
    while i < len(args):
        out.append(args[i])
        if args[i] == "-p12" and i + 1 < len(args):
            out.append(args[i + 1])
            i += 2
            if i < len(args) and not args[i].startswith("-") and not elsewhere:
                out += ["--p12-password", args[i]]
                i += 1
            continue
        i += 1
    return out


def main(argv: Sequence[str]) -> int:
    """Make one certificate (and key, and PKCS#12) as Mono's makecert would, but modern."""
    args = build_parser().parse_args(split_p12_password(argv))
    hash_name = args.algorithm
    signature_hash(hash_name)  # refuse sha1/md5 before anything else happens
    if args.name is None:
        raise UsageError('missing -n NAME, the subject (e.g. -n "CN=poupou")')
    if args.output is None and args.p12 is None:
        raise UsageError("nothing to write: give an output certificate file and/or -p12 FILE")
    if args.subject_key is None and args.p12 is None:
        raise UsageError(
            f"{args.output}: the new private key would be lost: keep it with -sv KEYFILE or -p12"
        )
    legacy_p12 = _legacy_p12(args)
    for url in args.crl_url:
        if "://" not in url:
            raise UsageError(f"--crl-url {url}: expected a URL, e.g. http://ca.example/root.crl")
    is_ca = _is_ca(args)
    issuer = _issuer(args)
    if issuer is not None and (weak := issuer.warnings()):
        for warning in weak:
            print(f"mutls makecert: warning: issuer {issuer.source}: {warning}", file=sys.stderr)
        print(
            f"mutls makecert: warning: verifiers will reject chains through {issuer.source}; "
            're-issue a root: mutls makecert -r -n "CN=..." -sv new-root.key new-root.cer',
            file=sys.stderr,
        )
    spec = _key_spec(args)
    key, created = subject_key(args.subject_key, spec, explicit_type=args.key_type is not None)
    san = [parse_general_name(s) for s in args.san]
    if args.alt_file:
        san += read_san_file(args.alt_file)
    cert = issue_certificate(
        parse_name(args.name),
        key.public_key(),
        signer=issuer,
        self_key=key,
        is_ca=is_ca,
        path_length=args.path_length,
        eku=choose_eku(args.eku, client=args.client, server=args.server, is_ca=is_ca),
        san=san,
        validity=Validity.from_options(args.begin, args.end, args.months, args.days),
        serial=args.serial,
        hash_name=hash_name,
        crl_urls=args.crl_url,
    )
    chain = (
        ()
        if issuer is None or issuer.certificate is None
        else (
            issuer.certificate,
            *issuer.chain,
        )
    )
    identity = Identity(cert, key, chain)
    # e.g. a reused RSA-1024 -sv key, or a server CN with a space that cannot be a SAN host
    for warning in weaknesses(cert, issues_others=is_ca):
        print(f"mutls makecert: warning: {args.name}: {warning}", file=sys.stderr)
    outputs: list[tuple[str, bytes, int]] = []
    if created and args.subject_key:
        outputs.append((args.subject_key, private_key_pem(key), PRIVATE))
    if args.output:
        outputs.append((args.output, certificate_bytes(cert, args.output), PUBLIC))
    if args.p12:
        password = password_from(args, args.p12_password, "Enter Export Password:", confirm=True)
        if not password:
            raise UsageError(f"-p12 {args.p12}: a PKCS#12 file needs a non-empty password")
        data = p12_bytes(
            key, cert, chain, password, legacy=legacy_p12, friendly_name=identity.common_name
        )
        outputs.append((args.p12, data, PRIVATE))
    write_files(outputs, overwrite=args.force)
    _report(identity, is_ca, outputs, created)
    return 0


def _is_ca(args: argparse.Namespace) -> bool:
    if args.ca and args.cert_type == "end":
        raise UsageError("--ca and -cy end contradict each other")
    if args.ca or args.cert_type == "authority":
        return True
    return bool(args.self_signed and args.cert_type != "end")


def _issuer(args: argparse.Namespace) -> Issuer | None:
    if args.self_signed:
        if args.issuer_key or args.issuer_cert or args.issuer_name:
            raise UsageError("-r (self-signed) cannot be combined with -iv, -ic or -in")
        return None
    if args.issuer_key is None:
        if args.issuer_cert:
            raise UsageError(f"-ic {args.issuer_cert}: missing the issuer's key (-iv KEYFILE)")
        raise UsageError(
            "no issuer: give -r for a self-signed root, or -iv KEYFILE -ic CERTFILE to sign with "
            "a CA (Mono's built-in test root is public and not supported)"
        )
    name = parse_name(args.issuer_name) if args.issuer_name else None
    return Issuer.load(args.issuer_key, args.issuer_cert, name)


def _legacy_p12(args: argparse.Namespace) -> bool:
    """3DES with a SHA-1 MAC unless asked otherwise: makecert is Mono's tool, and Mono 6.8's
    X509Certificate2 and certmgr cannot read AES-256/PBKDF2 ("Unable to decode certificate");
    OpenSSL 3, NSS, Java, Node, Windows and macOS read the 3DES form too."""
    if args.legacy and args.p12_cipher == "aes256":
        raise UsageError("--legacy and --p12-cipher aes256 contradict each other")
    return bool(args.p12_cipher != "aes256")


def _key_spec(args: argparse.Namespace) -> KeySpec | None:
    if args.key_type is not None:
        return KeySpec.parse(args.key_type)
    # Old Windows and Java 8 clients sign client authentication with RSA only.
    return KeySpec(KeyType.RSA, 2048) if args.legacy else None


def _report(
    identity: Identity, is_ca: bool, outputs: list[tuple[str, bytes, int]], created: bool
) -> None:
    cert = identity.certificate
    role = "CA" if is_ca else "certificate"
    until = cert.not_valid_after_utc.strftime("%Y-%m-%d")
    print(f"{identity.subject}: {role}, {describe_key(identity.key)}, valid until {until}")
    for path, _data, mode in outputs:
        print(f"  wrote {path}" + (" (private, 0600)" if mode == PRIVATE else ""))
    if not created:
        print("  (reused the existing key)")
    print("Success")
