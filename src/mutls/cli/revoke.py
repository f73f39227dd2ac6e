"""``mutls revoke``: record that a CA revoked a certificate (``openssl ca -revoke``).

Only the CA's record changes (:mod:`mutls.pki.revocation`); ``mutls makecrl`` then publishes
it. The CA's key is not read, so revoking needs no password::

    mutls revoke -iv root.key -ic root.cer poupou.pem --reason keyCompromise
    mutls revoke -iv root.key -ic root.cer --serial 5F3A0C... --reason superseded
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509

from mutls.cli.common import ArgumentParser, add_ca_options, add_password_options, password_from
from mutls.errors import PKIError, UsageError
from mutls.pki.certs import load_certificate
from mutls.pki.identity import Identity
from mutls.pki.revocation import REASONS, RevocationDatabase, parse_reason, reason_name

HELP = "revoke a certificate: record it in the CA's revocation list (openssl ca -revoke)"


def build_parser() -> argparse.ArgumentParser:
    """``mutls revoke``'s options."""
    parser = ArgumentParser(prog="mutls revoke", description=HELP)
    parser.add_argument("cert", nargs="?", metavar="CERT", help="the certificate (PEM, DER, P12)")
    parser.add_argument("--serial", metavar="HEX", help="revoke by serial number (hex)")
    parser.add_argument(
        "--reason",
        default="unspecified",
        metavar="REASON",
        help=f"why: {', '.join(REASONS)} (default unspecified)",
    )
    parser.add_argument(
        "--list", action="store_true", help="list what the CA has revoked, and revoke nothing"
    )
    add_ca_options(parser)
    add_password_options(parser, "the P12's password")
    return parser


def main(argv: Sequence[str]) -> int:
    """Record one revocation (or list them)."""
    args = build_parser().parse_args(list(argv))
    ca_cert = load_certificate(args.ca_cert)
    database = RevocationDatabase(ca_cert, args.ca_key, args.db)
    if args.list:
        return _list(database)
    reason = parse_reason(args.reason)
    serial, subject = _target(args, ca_cert)
    entry, added = database.revoke(serial, reason, subject=subject)
    who = f"{entry.subject} (serial {entry.serial:X})" if entry.subject else f"{entry.serial:X}"
    when = entry.date.strftime("%Y-%m-%d %H:%M:%S UTC")
    if not added:
        print(
            f"already revoked: {who} on {when} ({reason_name(entry.reason)}); nothing changed",
        )
        return 0
    count = len(database.read().revoked)
    print(f"revoked {who} on {when}: {reason_name(entry.reason)}")
    print(f"  recorded in {database.path} ({count} revoked by this CA)")
    print(f"  publish it: mutls makecrl -iv {args.ca_key} -ic {args.ca_cert} -out CRLFILE")
    return 0


def _target(args: argparse.Namespace, ca_cert: x509.Certificate) -> tuple[int, str | None]:
    """(serial, subject) of what to revoke: a certificate this CA issued, or a bare serial."""
    if (args.cert is None) == (args.serial is None):
        raise UsageError("give the certificate to revoke, or --serial HEX (one of them)")
    if args.serial is not None:
        text = args.serial.strip().replace(":", "")
        try:
            serial = int(text[2:] if text.lower().startswith("0x") else text, 16)
        except ValueError:
            raise UsageError(f"--serial {args.serial}: not a hexadecimal number") from None
        if serial <= 0:
            raise UsageError(f"--serial {args.serial}: must be positive")
        return serial, None
    cert = _read(args.cert, args)
    if cert.issuer != ca_cert.subject or not _signed_by(cert, ca_cert):
        raise PKIError(
            f"{args.cert} was not issued by {args.ca_cert} (its issuer is "
            f"{cert.issuer.rfc4514_string() or 'empty'}): revoke it with its own CA"
        )
    return cert.serial_number, cert.subject.rfc4514_string()


def _read(path: str, args: argparse.Namespace) -> x509.Certificate:
    if Path(path).suffix.lower() in {".p12", ".pfx"}:
        password = password_from(args, None, f"Password for {path}: ")
        return Identity.from_p12(path, password).certificate
    return load_certificate(path)


def _signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except Exception:  # InvalidSignature, or a key type that cannot sign this way
        return False
    return True


def _list(database: RevocationDatabase) -> int:
    record = database.read()
    if not record.revoked:
        print(f"{record.issuer} has revoked nothing ({database.path})", file=sys.stderr)
    for entry in record.revoked:
        when = entry.date.strftime("%Y-%m-%d %H:%M:%S UTC")
        print(f"{entry.serial:X} {when} {reason_name(entry.reason)} {entry.subject or ''}".rstrip())
    return 0
