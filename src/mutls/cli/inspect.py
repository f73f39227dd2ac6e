"""``mutls inspect FILE...``: what a certificate, key, PKCS#12, PVK or CRL file holds, and what
about it strict verifiers will refuse."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from mutls.cli.common import ArgumentParser, add_password_options, password_from
from mutls.errors import MutlsError
from mutls.passwords import prompt_password
from mutls.pki.describe import (
    CertificateReport,
    ChainNode,
    CRLReport,
    FileReport,
    KeyReport,
    describe_file,
    pair_keys_across_files,
)

HELP = "show what certificate, key, PKCS#12, PVK and CRL files hold, and what is weak"


def build_parser() -> argparse.ArgumentParser:
    """Files, a password for PKCS#12 and encrypted keys, and ``--json``."""
    parser = ArgumentParser(prog="mutls inspect", description=HELP)
    parser.add_argument("files", nargs="+", metavar="FILE")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument(
        "--pass", dest="password", metavar="PASSWORD", help="password of PKCS#12 files and keys"
    )
    add_password_options(parser, "the password of PKCS#12 files and keys")
    return parser


def main(argv: Sequence[str]) -> int:
    """Describe every file; a file that cannot be read is one line on stderr and exit 2."""
    args = build_parser().parse_args(argv)
    given: list[str | None] = []

    def password(prompt: str) -> str | None:
        if args.password is None and args.pass_file is None and args.pass_env is None:
            return prompt_password(prompt)
        if not given:  # resolve once: a --pass-env or --pass-file serves every file
            given.append(password_from(args, args.password, None))
        return given[0]

    reports: list[FileReport] = []
    failed = 0
    for path in args.files:
        try:
            reports.append(describe_file(path, password))
        except MutlsError as exc:
            failed += 1
            print(f"mutls inspect: {exc}", file=sys.stderr)
    pair_keys_across_files(reports)
    if args.json:
        print(json.dumps([r.as_dict() for r in reports], indent=2))
    else:
        print("\n".join(render(r) for r in reports), end="")
    return 2 if failed else 0


def render(report: FileReport) -> str:
    """A file's report as indented text."""
    lines = [f"{report.path}: {report.kind}"]
    lines += [f"  {note}" for note in report.notes]
    for cert in report.certificates:
        lines += _certificate(cert)
    if report.chain:
        lines.append("  Chain:")
        for root in report.chain:
            lines += _tree(root, "    ", "    ")
    for key in report.keys:
        lines += _key(key)
    for crl in report.crls:
        lines += _crl(crl)
    return "\n".join(lines) + "\n\n"


def _certificate(cert: CertificateReport) -> list[str]:
    if cert.status == "EXPIRED":
        days = f"EXPIRED {_days(-cert.days_left)} ago"
    elif cert.status != "valid":
        days = cert.status
    else:
        days = f"{_days(cert.days_left)} left"
    issuer = f"{cert.issuer} (self-signed)" if cert.self_signed else cert.issuer
    rows = [
        ("Issuer", issuer),
        ("Serial", cert.serial),
        ("Valid", f"{cert.not_before} to {cert.not_after} ({days})"),
        ("Key", cert.key),
        ("Signature", cert.signature_algorithm),
        ("EKU", ", ".join(cert.eku) if cert.eku is not None else "(none: any purpose)"),
        ("Key usage", ", ".join(cert.key_usage) if cert.key_usage is not None else "(none)"),
        ("SAN", ", ".join(cert.san) or "(none)"),
        ("Constraints", cert.basic_constraints or "(no basicConstraints)"),
        ("SHA-256", cert.sha256),
        ("SHA-1", cert.sha1),
    ]
    lines = [f"  Certificate: {cert.subject}"]
    lines += [f"    {label + ':':<13}{value}" for label, value in rows]
    lines += [f"    WARNING: {warning}" for warning in cert.warnings]
    return lines


def _days(count: int) -> str:
    return f"{count} day" if count == 1 else f"{count} days"


def _tree(node: ChainNode, first: str, rest: str) -> list[str]:
    lines = [f"{first}{node.subject}"]
    for i, child in enumerate(node.children):
        last = i == len(node.children) - 1
        branch, more = ("└── ", "    ") if last else ("├── ", "│   ")
        lines += _tree(child, rest + branch, rest + more)
    return lines


def _key(key: KeyReport) -> list[str]:
    owner = f", matches {key.matches}" if key.matches else ""
    lines = [f"  Private key: {key.key} ({key.format}){owner}"]
    lines += [f"    WARNING: {warning}" for warning in key.warnings]
    return lines


def _crl(crl: CRLReport) -> list[str]:
    if crl.next_update is None:
        until = "no next update"
    elif crl.status == "EXPIRED":
        until = f"{crl.next_update} (EXPIRED: stale, verifiers reject it)"
    else:
        until = f"{crl.next_update} ({_days(crl.days_left or 0)} left)"
    revoked = ", ".join(crl.revoked) if crl.revoked else "none"
    return [
        f"  CRL from {crl.issuer}",
        f"    {'Updated:':<13}{crl.last_update}",
        f"    {'Next update:':<13}{until}",
        f"    {'Signature:':<13}{crl.signature_algorithm}",
        f"    {'Revoked:':<13}{revoked}",
    ]
