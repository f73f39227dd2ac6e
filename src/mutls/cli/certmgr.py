"""``mutls certmgr``: Mono's certmgr verbs on mutls's certificate stores, plus root installers.

The article's command works as written::

    mutls certmgr --add -c Trust root.cer

Options may come in any order (``-list -c Trust -v`` lists verbosely, where Mono's parser
silently ignored the ``-v``). The store library is :mod:`mutls.store`; this module only parses,
calls it and prints.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mutls import store
from mutls.cli.common import ArgumentParser, add_password_options, password_from
from mutls.errors import UsageError, WrongPasswordError
from mutls.pki.certs import load_certificates
from mutls.pki.crl import load_crls
from mutls.pki.files import PUBLIC, write_file
from mutls.pki.identity import Identity
from mutls.pki.keys import PrivateKey
from mutls.store.install import InstallOptions, Target, change_root, import_p12_into_nss
from mutls.store.report import (
    certificate_details,
    crl_details,
    is_self_signed,
    trust_warning,
)
from mutls.store.tools import Outcome

HELP = "manage certificate stores (Trust, CA, My, ...) and install roots (Mono certmgr)"

EPILOG = """\
Mono's verbs (STORE is My, AddressBook, CA, Trust or Disallowed, any case):
  mutls certmgr -add -c Trust root.cer          add certificates (DER/PEM, one or a bundle)
  mutls certmgr -add -c My poupou.p12 -p PASS   import a P12 (certificate + key, key 0600)
  mutls certmgr -add -crl Trust root.crl        add a CRL (Trust or CA)
  mutls certmgr -list -c Trust [-v]             one line per certificate (-v: details)
  mutls certmgr -del -c Trust SELECTOR          SELECTOR: fingerprint, unique prefix, or CN
  mutls certmgr -put -c Trust SELECTOR FILE     export (DER; -pem for PEM)
  mutls certmgr -ssl https://host:port [-c STORE] [--yes]
                                                fetch a server's chain: leaf -> STORE
                                                (AddressBook), intermediates -> CA, the root
                                                -> Trust after you confirm (or --yes)
  -m uses the machine store, --mono Mono's own layout (~/.config/.mono/certs).
  mutls certmgr --import-mono [STORE...]        copy Mono's stores into mutls's

Beyond Mono (each target reported on its own line; no target flag = all of them):
  mutls certmgr --install-root root.cer [--system] [--nss] [--java]
  mutls certmgr --uninstall-root root.cer [--system] [--nss] [--java]
  mutls certmgr --install-p12 poupou.p12 [-p PASS] [--nssdb DIR]   (for browsers)
"""


def build_parser() -> argparse.ArgumentParser:
    """Mono's single-dash verbs (and their double-dash spellings), then the modern options."""
    parser = ArgumentParser(
        prog="mutls certmgr",
        description=HELP,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        add_help=False,
    )
    parser.add_argument("-h", "-?", "--help", action="help", help="show this help")
    verbs = parser.add_argument_group("actions (one of)").add_mutually_exclusive_group()
    for verb, spellings, text in (
        ("add", ("-add", "--add"), "add certificates, a P12 or CRLs to STORE"),
        ("del", ("-del", "--del", "-delete", "--delete"), "remove SELECTOR from STORE"),
        ("put", ("-put", "--put"), "export SELECTOR from STORE to FILE"),
        ("list", ("-list", "--list", "-lst"), "list STORE"),
        ("ssl", ("-ssl", "--ssl", "-tls", "--tls"), "fetch and add the chain of a TLS server"),
        ("import-mono", ("--import-mono",), "copy Mono's stores (all, or STOREs) into mutls's"),
    ):
        verbs.add_argument(*spellings, dest="verb", action="store_const", const=verb, help=text)
    for verb, flag, metavar, text in (
        ("install-root", "--install-root", "CERT", "install a root: system, NSS, Java"),
        ("uninstall-root", "--uninstall-root", "CERT", "undo --install-root exactly"),
        ("install-p12", "--install-p12", "P12", "import a client P12 into NSS databases"),
    ):
        verbs.add_argument(flag, dest=verb.replace("-", "_"), metavar=metavar, help=text)
    kinds = parser.add_argument_group("object types")
    kinds.add_argument("-c", "--c", "-cert", "--cert", dest="crl", action="store_false",
                       help="certificates (the default)")  # fmt: skip
    kinds.add_argument("-crl", "--crl", dest="crl", action="store_true", help="CRLs")
    kinds.add_argument("-ctl", "--ctl", dest="ctl", action="store_true", help=argparse.SUPPRESS)
    parser.set_defaults(crl=False)
    opts = parser.add_argument_group("options")
    opts.add_argument("--store", "-s", dest="store", metavar="STORE", help="the store (or give "
                      "it as the first operand)")  # fmt: skip
    opts.add_argument("-m", "--machine", action="store_true", help="the machine store")
    opts.add_argument("--mono", action="store_true", help="Mono's layout (~/.config/.mono/certs)")
    opts.add_argument("-v", "--verbose", action="store_true", help="details")
    opts.add_argument("-pem", "--pem", action="store_true", help="-put writes PEM (default DER)")
    opts.add_argument("-p", "--password", metavar="PASSWORD", help="the P12's password")
    add_password_options(parser, "the P12's password")
    opts.add_argument("-y", "--yes", action="store_true", help="-ssl: trust the root unasked")
    opts.add_argument("-f", "--force", action="store_true", help="-put: overwrite FILE")
    opts.add_argument("--timeout", type=float, default=10.0, help="-ssl: seconds (10)")
    where = parser.add_argument_group("--install-root targets")
    where.add_argument("--system", dest="targets", action="append_const", const=Target.SYSTEM,
                       help="Debian's system store (update-ca-certificates)")  # fmt: skip
    where.add_argument("--nss", dest="targets", action="append_const", const=Target.NSS,
                       help="NSS: Chromium ~/.pki/nssdb, Firefox profiles")  # fmt: skip
    where.add_argument("--java", dest="targets", action="append_const", const=Target.JAVA,
                       help="Java: keytool -cacerts (or --java-keystore)")  # fmt: skip
    where.add_argument("--nssdb", action="append", default=[], metavar="DIR",
                       help="this NSS database instead of the discovered ones")  # fmt: skip
    where.add_argument("--java-keystore", metavar="FILE", help="this keystore, not -cacerts")
    where.add_argument("--java-storepass", default="changeit", metavar="PASS",
                       help="keystore password (changeit)")  # fmt: skip
    parser.add_argument("operands", nargs="*", metavar="STORE/FILE/SELECTOR/URL")
    return parser


def main(argv: Sequence[str]) -> int:
    """Run ``mutls certmgr``."""
    parser = build_parser()
    args, install_verb = _parse(parser, argv)
    if args.ctl:
        raise UsageError("-ctl: certificate trust lists are not supported (nor were they by Mono)")
    if install_verb is not None:
        return _install(args, install_verb)
    if args.verb is None:
        raise UsageError("give an action: -add, -del, -put, -list or -ssl (see --help)")
    if args.verb == "ssl":
        return _ssl(args)
    if args.verb == "import-mono":
        return _import_mono(args)
    name, rest = _store_and_rest(args)
    opened = store.open_store(name, machine=args.machine, mono=args.mono)
    return {"add": _add, "del": _delete, "put": _put, "list": _list}[args.verb](opened, rest, args)


def _parse(
    parser: argparse.ArgumentParser, argv: Sequence[str]
) -> tuple[argparse.Namespace, str | None]:
    args = parser.parse_intermixed_args(list(argv))
    for verb in ("install-root", "uninstall-root", "install-p12"):
        path = getattr(args, verb.replace("-", "_"))
        if path is not None:
            args.install_file = path
            return args, verb
    return args, None


def _store_and_rest(args: argparse.Namespace) -> tuple[str, list[str]]:
    operands: list[str] = list(args.operands)
    if args.store:
        return args.store, operands
    if not operands:
        raise UsageError(f"-{args.verb}: which store? e.g. -{args.verb} -c Trust")
    first = operands[0]
    if not _is_store_name(first):
        # `-add root.cer -c Trust`: take the one operand that names a store.
        named = [o for o in operands if _is_store_name(o)]
        if len(named) == 1:
            operands.remove(named[0])
            return named[0], operands
    return first, operands[1:]


def _is_store_name(text: str) -> bool:
    try:
        store.StoreName.parse(text)
    except store.StoreError:
        return False
    return True


def _expect(rest: list[str], count: int, usage: str) -> list[str]:
    if len(rest) != count:
        raise UsageError(f"expected {usage}, got {len(rest)} operand(s): {' '.join(rest) or '-'}")
    return rest


# -- the verbs ------------------------------------------------------------------------------------


def _add(opened: store.CertificateStore, files: list[str], args: argparse.Namespace) -> int:
    if not files:
        raise UsageError(f"-add: which file? e.g. -add -c {opened.name.value} root.cer")
    if args.crl:
        crls = [crl for f in files for crl in load_crls(f)]
        for crl in crls:
            _add_crl(opened, crl)
        return 0
    certs: list[x509.Certificate] = []
    keys: dict[str, PrivateKey] = {}
    issuers: list[x509.Certificate] = []
    for path in files:  # everything is read before anything is written
        if _is_p12(path):
            identity = _open_p12(path, args)
            certs.append(identity.certificate)
            issuers.extend(identity.chain)
            if opened.name.holds_keys:
                keys[store.StoredCertificate(identity.certificate, Path(path)).fingerprint] = (
                    identity.key
                )
            else:
                _warn(f"{path}: private key not stored (keys belong in the My store)")
        else:
            certs.extend(load_certificates(path))
    if opened.name is store.StoreName.TRUST:
        for cert in certs:
            warning = trust_warning(cert)
            if warning:
                _warn(warning)
    for cert, result in zip(certs, opened.add_all(certs, key_for=keys), strict=True):
        _report(result, opened, store.StoredCertificate(cert, Path()).describe())
    _add_issuers(issuers, args)
    return 0


def _add_issuers(issuers: list[x509.Certificate], args: argparse.Namespace) -> None:
    """A P12's intermediates go to CA (they help build chains); its root is never trusted
    silently."""
    intermediates = [c for c in issuers if c.issuer != c.subject]
    roots = [c for c in issuers if c.issuer == c.subject]
    if intermediates:
        ca = store.open_store(store.StoreName.CA, machine=args.machine, mono=args.mono)
        for cert, result in zip(intermediates, ca.add_all(intermediates), strict=True):
            _report(result, ca, store.StoredCertificate(cert, Path()).describe())
    for root in roots:
        print(
            f"note: the P12 also holds the root {root.subject.rfc4514_string()}; it was not "
            "trusted (to trust it: mutls certmgr -add -c Trust ROOT.cer)"
        )


def _add_crl(opened: store.CertificateStore, crl: x509.CertificateRevocationList) -> None:
    """Add one CRL, saying what it replaced (an older one is refused with a StoreError)."""
    added = opened.add_crl(crl)
    _report(added.result, opened, store.StoredCRL(crl, opened.crl_path(crl)).describe())
    for old in added.replaced:
        print(f"  replaced: {old.describe()}")


def _delete(opened: store.CertificateStore, rest: list[str], args: argparse.Namespace) -> int:
    (selector,) = _expect(rest, 1, "-del -c STORE SELECTOR")
    if args.crl:
        print(f"removed from {opened.name.value}: {opened.remove_crl(selector).describe()}")
    else:
        print(f"removed from {opened.name.value}: {opened.remove(selector).describe()}")
    return 0


def _put(opened: store.CertificateStore, rest: list[str], args: argparse.Namespace) -> int:
    selector, target = _expect(rest, 2, "-put -c STORE SELECTOR FILE")
    encoding = serialization.Encoding.PEM if args.pem else serialization.Encoding.DER
    if args.crl:
        crl_entry = opened.find_crl(selector)
        data, described = crl_entry.crl.public_bytes(encoding), crl_entry.describe()
    else:
        entry = opened.find(selector)
        data, described = entry.certificate.public_bytes(encoding), entry.describe()
    write_file(target, data, mode=PUBLIC, overwrite=args.force)
    print(f"wrote {target} ({'PEM' if args.pem else 'DER'}): {described}")
    return 0


def _list(opened: store.CertificateStore, rest: list[str], args: argparse.Namespace) -> int:
    _expect(rest, 0, "-list -c STORE")
    entries = opened.crls() if args.crl else opened.certificates()
    if not entries:
        kind = "CRLs" if args.crl else "certificates"
        print(f"no {kind} in store {opened.label}", file=sys.stderr)
    for entry in entries:
        print(entry.describe())
        if args.verbose:
            lines = (
                crl_details(entry)
                if isinstance(entry, store.StoredCRL)
                else certificate_details(entry, mono=args.mono)
            )
            print("".join(f"    {line}\n" for line in lines))
    return 0


def _ssl(args: argparse.Namespace) -> int:
    from mutls.store.server_chain import fetch_chain

    operands = list(args.operands)
    named = [o for o in operands if "://" not in o and _is_store_name(o)]
    leaf_store = args.store or (named[0] if named else "AddressBook")
    urls = [o for o in operands if o not in named[:1]]
    (url,) = _expect(urls, 1, "-ssl URL")
    chain = fetch_chain(url, timeout=args.timeout)
    refused = False
    for index, cert in enumerate(chain):
        described = store.StoredCertificate(cert, Path()).describe()
        if is_self_signed(cert):
            target = store.open_store("Trust", machine=args.machine, mono=args.mono)
            if cert in target:
                print(f"already in Trust: {described}")
                continue
            answer = _confirm_root(cert, args.yes)
            if answer is None:
                refused = True
                continue
            if not answer:
                print(f"not added to Trust: {described}")
                continue
        elif index == 0:
            target = store.open_store(leaf_store, machine=args.machine, mono=args.mono)
        else:
            target = store.open_store("CA", machine=args.machine, mono=args.mono)
        _report(target.add(cert), target, described)
    if not any(is_self_signed(c) for c in chain):
        print("note: the server did not send its root; add it with -add -c Trust ROOT.cer")
    return 1 if refused else 0


def _confirm_root(cert: x509.Certificate, yes: bool) -> bool | None:
    """True to trust, False when the user says no, None when nobody could be asked."""
    subject = cert.subject.rfc4514_string()
    if yes:
        return True
    if not sys.stdin or not sys.stdin.isatty():
        print(
            f"mutls certmgr: not added to Trust: {subject} is a root, and there is no terminal "
            "to confirm on (re-run with --yes to trust it)",
            file=sys.stderr,
        )
        return None
    print(f"{subject} is a root: trusting it accepts every certificate it issues.")
    for line in certificate_details(store.StoredCertificate(cert, Path()), mono=False):
        print(f"    {line}")
    try:
        reply = input("Add it to the Trust store? [y/N] ").strip().lower()
    except EOFError:  # Ctrl-D: the default answer, no
        print()
        return False
    return reply in {"y", "yes"}


def _import_mono(args: argparse.Namespace) -> int:
    """Bring an article-era user's trust along: every certificate and CRL of Mono's stores."""
    names = [store.StoreName.parse(n) for n in [*args.operands, *filter(None, [args.store])]]
    copied = 0
    for name in names or list(store.StoreName):
        source = store.open_store(name, machine=args.machine, mono=True)
        target = store.open_store(name, machine=args.machine)
        certs = [e.certificate for e in source.certificates()]
        if name is store.StoreName.TRUST:
            for warning in filter(None, map(trust_warning, certs)):
                _warn(warning)
        for cert, result in zip(certs, target.add_all(certs), strict=True):
            _report(result, target, store.StoredCertificate(cert, Path()).describe())
            copied += 1
        if name.holds_crls:
            for entry in source.crls():
                try:
                    _add_crl(target, entry.crl)
                except store.StoreError as exc:  # mutls's store has a newer one: keep it
                    print(f"not imported: {exc}")
                copied += 1
    if not copied:
        print(f"nothing to import: Mono's stores under {store.store_root(mono=True)} are empty")
    return 0


# -- beyond Mono ----------------------------------------------------------------------------------


def _install(args: argparse.Namespace, verb: str) -> int:
    path = args.install_file
    if args.operands:
        raise UsageError(f"--{verb} {path}: unexpected operand(s) {' '.join(args.operands)}")
    options = InstallOptions(args.nssdb, args.java_keystore, args.java_storepass)
    outcomes: list[Outcome] = []
    if verb == "install-p12":
        if args.targets and args.targets != [Target.NSS]:
            raise UsageError("--install-p12 imports into NSS databases only (browsers)")
        identity_password = _p12_password(path, args)
        Identity.from_p12(path, identity_password)  # a wrong password fails before NSS is touched
        outcomes = import_p12_into_nss(Path(path), identity_password, args.nssdb)
    else:
        for cert in load_certificates(path):
            warning = trust_warning(cert)
            if warning and verb == "install-root":
                _warn(warning)
            outcomes += change_root(
                cert, args.targets or (), options, install=verb == "install-root"
            )
    for outcome in outcomes:
        print(outcome, file=sys.stdout if outcome.ok else sys.stderr)
    return 0 if outcomes and all(o.ok for o in outcomes) else 1


# -- helpers --------------------------------------------------------------------------------------


def _is_p12(path: str) -> bool:
    return Path(path).suffix.lower() in {".p12", ".pfx"}


def _p12_password(path: str, args: argparse.Namespace) -> str:
    password = password_from(args, args.password, f"Password for {path}: ")
    return password or ""


def _open_p12(path: str, args: argparse.Namespace) -> Identity:
    try:
        return Identity.from_p12(path, _p12_password(path, args))
    except WrongPasswordError as exc:
        raise WrongPasswordError(f"{exc} (give it with -p, --pass-file or --pass-env)") from None


def _report(result: store.AddResult, opened: store.CertificateStore, described: str) -> None:
    name = opened.name.value
    if result is store.AddResult.ADDED:
        print(f"added to {name}: {described}")
    elif result is store.AddResult.KEY_ADDED:
        print(f"key added to {name}: {described}")
    else:
        print(f"already in {name}: {described} (nothing changed)")


def _warn(message: str) -> None:
    print(f"mutls certmgr: warning: {message}", file=sys.stderr)
