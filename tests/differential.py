"""One chain, one verdict: a :class:`chains.Case` judged by every path of mutls and by
independent verifiers, and the differences between them explained or reported.

mutls's paths: full handshakes (TLS 1.3, TLS 1.2 with a ticket, TLS 1.2 with a session ID) and
the resumption of each on the same ``ServerContext``, ``ClientVerifier.verify_chain`` and the
forwarded-certificate path (an Envoy XFCC header from a trusted proxy). They must agree exactly.

Independent verdicts: ``openssl verify -purpose sslclient -auth_level 2`` (the system binary, with
``-crl_check_all -use_deltas`` when the case has CRLs), ``cryptography.x509.verification``'s
client verifier (no CRL support), and the case's own oracle (:meth:`chains.Case.clean_path`:
a certificate is never valid when every signature path from it to an anchor passes a Disallowed
certificate). A difference between mutls and them must be one of :data:`INTENTIONAL`; every
other one is a disagreement, and mutls calling valid what one of them does not (beyond the
lenient kinds of :data:`INTENTIONAL`) is a violation of its one promise.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import os
import re
import subprocess
import time
import traceback
import urllib.parse
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.x509.verification import PolicyBuilder, Store, VerificationError
from OpenSSL import SSL

from mutls.apps.forwarded_certificates import ForwardedCertificates
from mutls.http.events import Request
from mutls.http.forwarded_certificates import ForwardedCertificateError
from mutls.tls import ClientCertificate, ClientCertMode, ServerContext, TLSError, VerifyPolicy
from mutls.tls.verify import ClientVerifier

from chains import Case, Cert, Plan
from helpers import PKIFiles
from tls_driver import TLS12, TLS13, client_context, connect, server_context

# OpenSSL's verification error codes that the explanations below name.
UNABLE_TO_GET_ISSUER = 2
UNABLE_TO_GET_CRL = 3
#: OpenSSL's errors about a CRL or found through one (signature, dates, scope, path, revoked).
CRL_ERRORS = frozenset({6, 8, 11, 12, 15, 16, 23, 33, 35, 36, 44, 54})
CRL_HAS_EXPIRED = 12
SELF_SIGNED_IN_CHAIN = 19
UNABLE_TO_GET_ISSUER_LOCALLY = 20
CERT_REVOKED = 23
INVALID_PURPOSE = 26
DISALLOWED = 28
EE_KEY_TOO_SMALL = 66
WEAK = {EE_KEY_TOO_SMALL, 67, 68}  # EE key too small, CA key too small, CA digest too weak

#: the intentional differences between mutls and the independent verifiers, and why. "lenient"
#: ones are where mutls says valid and the other does not: the never-valid check allows them.
INTENTIONAL: dict[str, tuple[bool, str]] = {
    "disallowed": (
        False,
        "Disallowed has no equivalent in openssl or cryptography: mutls refuses a chain whose "
        "every path passes a Disallowed certificate, or that carries one the client sent",
    ),
    "ca-as-client": (
        False,
        "mutls refuses a CA certificate as a client certificate; OpenSSL accepts one whose "
        "keyUsage allows digitalSignature",
    ),
    "unparseable": (
        False,
        "mutls refuses what cryptography cannot parse (it could not report on it); OpenSSL "
        "accepts a BER boolean",
    ),
    "sent-root-ignored": (
        False,
        "the reason only: a root the client sends along is ignored, so an unknown issuer reads "
        "'unable to get local issuer certificate' where OpenSSL says 'self-signed certificate "
        "in certificate chain'",
    ),
    "crl-missing": (
        True,
        "a CA without a CRL in the trust is not checked by mutls; -crl_check_all fails with "
        "'unable to get certificate CRL'",
    ),
    "unused-unparseable": (
        True,
        "a certificate the client sent that OpenSSL's chain does not use does not count, even "
        "when cryptography cannot parse it; cryptography refuses to read the whole list",
    ),
    "unparseable-forwarded": (
        False,
        "the forwarded path cannot read a header holding a certificate cryptography cannot "
        "parse: it answers 400 (and verify_chain is never given such a list), where a "
        "handshake may judge a chain that does not use that certificate",
    ),
    "openssl-one-path": (
        False,
        "OpenSSL builds one chain and does not go back to another issuer of the same name when "
        "the one it chose has a weak key or digest; cryptography tries every path",
    ),
    "same-name-crl-issuers": (
        False,
        "the reason only: two CAs of one name, each with a CRL: OpenSSL takes the CRL from its "
        "store in mutls and from the command line's list in openssl verify, and refuses for "
        "the one it took",
    ),
    "weak-leaf-key-in-cryptography": (
        False,
        "cryptography's client verifier does not check the client's own key size; mutls, as "
        "OpenSSL at security level 2, refuses an RSA key under 2048 bits",
    ),
    "no-crl-in-cryptography": (
        False,
        "cryptography's verifier has no CRL support: a revoked certificate, or one whose CA's "
        "CRL expired, is valid there",
    ),
    "name-spelling": (
        True,
        "cryptography matches an issuer name byte for byte; OpenSSL (hence mutls) compares "
        "names in canonical form (case and spaces folded, any string type), as RFC 5280 7.1 "
        "asks",
    ),
}
LENIENT = {kind for kind, (lenient, _) in INTENTIONAL.items() if lenient}


@dataclass(frozen=True)
class Verdict:
    """Valid or not, and why (an OpenSSL code and depth when there is one)."""

    valid: bool
    error: str | None = None
    code: int | None = None
    depth: int | None = None
    crashed: bool = False
    detail: str = ""
    #: every error code openssl verify reported, in order (its callback goes on after some).
    codes: tuple[int, ...] = ()
    #: openssl's verdict without CRL checks, when its first error was about CRLs.
    without_crls: Verdict | None = None

    @classmethod
    def of(cls, cert: ClientCertificate) -> Verdict:
        if not cert.present:
            return cls(False, "no certificate", crashed=True)
        return cls(cert.valid, cert.error, cert.error_code, cert.error_depth)

    @property
    def key(self) -> tuple[object, ...]:
        """What two mutls paths must have in common."""
        return (self.valid, self.error, self.code, self.depth)

    def __str__(self) -> str:
        if self.valid:
            text = "valid"
        else:
            where = f" (code {self.code} at depth {self.depth})" if self.code is not None else ""
            text = f"NOT valid: {self.error}{where}"
        text += f" [{self.detail}]" if self.detail else ""
        return text + (f"; without CRLs: {self.without_crls}" if self.without_crls else "")


# -- mutls's paths ---------------------------------------------------------------------------

HANDSHAKES = {
    "tls1.3": (TLS13, True),
    "tls1.2 ticket": (TLS12, True),
    "tls1.2 session id": (TLS12, False),
}
#: the client's ciphers: security level 0, or OpenSSL refuses to load a weak certificate.
CLIENT_CIPHERS = "DEFAULT:@SECLEVEL=0"


def _guarded(run: Callable[[], Verdict]) -> Verdict:
    """``run()``, with a failed handshake and a crash as verdicts (never valid)."""
    try:
        return run()
    except TLSError as exc:
        return Verdict(False, f"handshake failed: {exc}", detail=f"alert {exc.alert}")
    except Exception as exc:
        line = traceback.format_exception_only(exc)[-1].strip()
        return Verdict(False, f"crashed: {line}", crashed=True)


def handshakes(case: Case, test_pki: PKIFiles, context: ServerContext) -> dict[str, Verdict]:
    """A full handshake of each kind, then its resumption on the same context."""
    verdicts = {}
    for name, (version, tickets) in HANDSHAKES.items():
        with warnings.catch_warnings():
            # pyOpenSSL's own X509 (deprecated) carries what cryptography cannot parse
            warnings.simplefilter("ignore", DeprecationWarning)
            client_ctx = client_context(
                test_pki, case.sender(), version=version, tickets=tickets, ciphers=CLIENT_CIPHERS
            )
        # Both ends stay alive until the resumption: OpenSSL makes the session of a client
        # freed without close_notify unresumable.
        kept: list[object] = []
        run = functools.partial(_connect, test_pki, context, client_ctx, kept)
        verdicts[name] = _guarded(run)
        if kept:
            verdicts[f"{name} resumed"] = _guarded(functools.partial(run, resume=True))
    return verdicts


def _connect(
    test_pki: PKIFiles,
    context: ServerContext,
    client_ctx: SSL.Context,
    kept: list[object],
    *,
    resume: bool = False,
) -> Verdict:
    session = kept[-1].get_session() if resume else None  # type: ignore[attr-defined]
    server, client = connect(test_pki, context, client_ctx, session)
    kept += [server, client]
    assert server.info is not None
    if resume and not server.info.resumed:
        return Verdict(False, "the session did not resume", crashed=True)
    return Verdict.of(server.info.client_certificate)


def verify_chain(case: Case) -> Verdict:
    """``ClientVerifier.verify_chain`` on what the client sent, as cryptography loads it."""
    if case.unparseable:
        return Verdict(False, "cryptography cannot parse the chain: not given to verify_chain")
    chain = tuple(c.x509 for c in case.sent)
    return _guarded(lambda: Verdict.of(ClientVerifier(case.trust()).verify_chain(chain)))  # type: ignore[arg-type]


def xfcc(sent: list[Cert]) -> bytes:
    """Envoy's X-Forwarded-Client-Cert for ``sent``: the leaf's hash and the URL-encoded chain."""
    digest = hashlib.sha256(sent[0].der).hexdigest()
    chain = urllib.parse.quote_from_bytes(b"".join(c.pem for c in sent), safe=b"")
    return f'Hash={digest};Chain="{chain}"'.encode()


def forwarded(case: Case) -> Verdict:
    """The verdict on the chain forwarded by a trusted proxy in an XFCC header."""
    fwd = ForwardedCertificates(
        ("127.0.0.1",),
        "X-Forwarded-Client-Cert",
        ClientVerifier(case.trust()),
        ClientCertMode.OPTIONAL,
        VerifyPolicy.REPORT,
    )
    headers = [(b"x-forwarded-client-cert", xfcc(case.sent))]
    # The HTTP connection sets certificate headers aside from what the app sees.
    request = Request(
        "GET", b"/", b"/", "/", b"", "1.1", [], keep_alive=True, certificate_headers=headers
    )

    def run() -> Verdict:
        try:
            facts = fwd.request_facts(request, ("127.0.0.1", 1), None)
        except ForwardedCertificateError as exc:
            return Verdict(False, f"400: {exc}")
        assert facts.client_certificate is not None
        return Verdict.of(facts.client_certificate)

    return _guarded(run)


def mutls_verdicts(case: Case, test_pki: PKIFiles) -> dict[str, Verdict]:
    """Every path of mutls, by name."""
    context = _guarded_context(case, test_pki)
    if isinstance(context, Verdict):
        return {"server context": context}
    return {
        **handshakes(case, test_pki, context),
        "verify_chain": verify_chain(case),
        "forwarded (XFCC)": forwarded(case),
    }


def _guarded_context(case: Case, test_pki: PKIFiles) -> ServerContext | Verdict:
    try:
        return server_context(test_pki, trust=case.trust())
    except Exception as exc:
        return Verdict(False, f"crashed: {exc!r}", crashed=True)


# -- the independent verifiers ---------------------------------------------------------------

#: what a pipe surely holds before its reader runs (Linux: 64 KiB).
PIPE_BUFFER = 60_000
_OPENSSL_ERROR = re.compile(r"^error (\d+) at (\d+) depth lookup: (.*)$", re.M)


class OpenSSLVerify:
    """``openssl verify``: one process per case, its inputs given through pipes (no files)."""

    @staticmethod
    def arguments(case: Case, *, crls: bool = True) -> tuple[list[str], list[bytes]]:
        """The command line for ``case`` (anchors, the helpers: sent and CA store, the CRLs,
        the leaf), and what each ``/dev/fd/N`` in it is to read, in order."""
        inputs: list[bytes] = []

        def given(pems: list[bytes]) -> str:
            inputs.append(b"".join(pems))
            return f"/dev/fd/{{{len(inputs) - 1}}}"  # numbered once the pipes exist

        args = ["openssl", "verify", "-no-CApath", "-no-CAstore", "-show_chain"]
        args += ["-purpose", "sslclient", "-auth_level", "2"]
        if case.anchors:
            args += ["-CAfile", given([c.pem for c in case.anchors])]
        else:
            args.append("-no-CAfile")
        untrusted = [c.pem for c in (*case.sent[1:], *case.intermediates)]
        if untrusted:
            args += ["-untrusted", given(untrusted)]
        if case.crls and crls:
            args += ["-crl_check_all", "-use_deltas", "-CRLfile", given([c.pem for c in case.crls])]
        return [*args, given([case.leaf.pem])], inputs

    def start(self, case: Case) -> Callable[[], Verdict]:
        """Start verifying ``case``; the function returned waits for the verdict (and, when
        the first error is about CRLs, verifies again without them)."""
        process = self._spawn(*self.arguments(case))

        def wait() -> Verdict:
            verdict = self.verdict(process)
            if verdict.code is not None and crl_scope(case, verdict) is not None:
                again = self.verdict(self._spawn(*self.arguments(case, crls=False)))
                verdict = dataclasses.replace(verdict, without_crls=again)
            return verdict

        return wait

    @staticmethod
    def _spawn(args: list[str], inputs: list[bytes]) -> subprocess.Popen[str]:
        """Run ``args`` with each input in a pipe of its own (a few KB: the pipe holds it)."""
        fds = []
        for data in inputs:
            read, write = os.pipe()
            assert len(data) < PIPE_BUFFER, "openssl reads only once it runs"
            os.write(write, data)
            os.close(write)
            fds.append(read)
        try:
            return subprocess.Popen(
                [a.format(*fds) for a in args],
                pass_fds=fds,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        finally:
            for fd in fds:
                os.close(fd)

    @staticmethod
    def verdict(process: subprocess.Popen[str]) -> Verdict:
        stdout, stderr = process.communicate(timeout=60)
        if process.returncode == 0 and ": OK" in stdout:
            chain = re.findall(r"^depth=\d+: (.*)$", stdout, re.M)
            return Verdict(True, detail="chain " + " <- ".join(chain))
        errors = _OPENSSL_ERROR.findall(stderr)
        if not errors:
            return Verdict(False, f"openssl failed: {stderr.strip()[:300]}", crashed=True)
        code, depth, text = errors[0]
        others = "; ".join(f"{c} at {d}: {t}" for c, d, t in errors[1:])
        detail = f"then {others}" if others else ""
        codes = tuple(int(c) for c, _, _ in errors)
        return Verdict(False, text, int(code), int(depth), detail=detail, codes=codes)


def cryptography_verdict(case: Case) -> Verdict:
    """``cryptography.x509.verification``'s client verifier (no CRLs) on the same inputs."""
    leaf = case.leaf.x509
    helpers = [c.x509 for c in (*case.sent[1:], *case.intermediates)]
    anchors = [c.x509 for c in case.anchors]
    if leaf is None or None in helpers:
        return Verdict(False, "cryptography cannot parse the chain")
    if not anchors:
        return Verdict(False, "no trust anchor")
    now = dt.datetime.now(dt.UTC)
    policy = PolicyBuilder().store(Store(anchors)).time(now)  # type: ignore[arg-type]
    verifier = policy.build_client_verifier()
    try:
        verifier.verify(leaf, helpers)  # type: ignore[arg-type]
    except VerificationError as exc:
        return Verdict(False, str(exc).split(" (encountered")[0][:160])
    return Verdict(True)


# -- judging -----------------------------------------------------------------------------------


def _justified_disallowed(case: Case) -> bool:
    """Whether the Disallowed rule may refuse ``case``: a Disallowed certificate is on a
    signature path from the leaf to an anchor (on every one of them, it must), or the client
    sent one (documented: "a certificate of the chain, sent or ours")."""
    banned = {c.der for c in case.disallowed}
    on_a_path = any(c.der in banned for path in case.paths() for c in path)
    return on_a_path or case.clean_path() is None or bool(case.sent_disallowed())


def _cas_without_crl(case: Case) -> list[Cert]:
    issuers = {crl.issuer for crl in case.crls}  # Cert is hashed by identity (eq=False)
    pool = (*case.sent[1:], *case.intermediates, *case.anchors)
    return [c for c in pool if c.is_ca and c not in issuers]


def crl_scope(case: Case, theirs: Verdict) -> str | None:
    """The CRL difference behind openssl's first error, if it is one: a CA without a CRL."""
    if theirs.code == UNABLE_TO_GET_CRL and _cas_without_crl(case):
        return "crl-missing"
    return None


def openssl_difference(case: Case, mine: Verdict, theirs: Verdict) -> str | None:
    """The intentional difference that explains ``mine`` (mutls) against openssl's ``theirs``
    when they differ in validity or reason; ``None`` when none does."""
    plan = case.plan
    if not mine.valid and mine.code == DISALLOWED:
        return "disallowed" if _justified_disallowed(case) else None
    if not mine.valid and case.unparseable:
        return "unparseable"
    if not mine.valid and mine.code == INVALID_PURPOSE and plan.has("ca-as-client"):
        return "ca-as-client"
    if theirs.valid:
        return None
    scope = crl_scope(case, theirs)
    if scope is not None and theirs.without_crls is not None:
        # openssl stopped at a CRL check mutls does not make: the rest must agree
        without = theirs.without_crls
        if (without.valid, without.code) == (mine.valid, mine.code):
            return scope
        if not mine.valid and mine.code in CRL_ERRORS:
            return scope  # a CRL above the missing one, which openssl never reached
        return openssl_difference(case, mine, without)
    if mine.valid:
        return None
    if (mine.code, theirs.code) == (UNABLE_TO_GET_ISSUER_LOCALLY, SELF_SIGNED_IN_CHAIN):
        return "sent-root-ignored"
    same_names = plan.same_name_roots or any(
        plan.has(kind) for kind in ("look-alike", "subject-as-issuer", "name-spelling")
    )
    if mine.code in CRL_ERRORS and theirs.code in CRL_ERRORS and same_names:
        return "same-name-crl-issuers"
    return None


def cryptography_difference(case: Case, mine: Verdict, theirs: Verdict) -> str | None:
    """The intentional difference that explains ``mine`` (mutls) against cryptography's
    ``theirs`` when they differ in validity; ``None`` when none does."""
    plan = case.plan
    if not mine.valid and mine.code == DISALLOWED:
        return "disallowed" if _justified_disallowed(case) else None
    if not mine.valid and mine.code in (CERT_REVOKED, CRL_HAS_EXPIRED):
        return "no-crl-in-cryptography"
    if not mine.valid and mine.code == INVALID_PURPOSE and plan.has("ca-as-client"):
        return "ca-as-client"
    if not mine.valid and mine.code == EE_KEY_TOO_SMALL and plan.get("rsa-1024", 0):
        return "weak-leaf-key-in-cryptography"
    if mine.valid and plan.has("name-spelling"):
        return "name-spelling"
    if mine.valid and (theirs.error or "").startswith("cryptography cannot parse"):
        unparseable = {c.der for c in case.unparseable}
        clean = [p for p in case.paths() if not any(c.der in unparseable for c in p)]
        return "unused-unparseable" if clean else None
    if not mine.valid and mine.code in WEAK and theirs.valid:
        if any(not any(_weak(c) for c in p) for p in case.paths()):
            return "openssl-one-path"
    if not mine.valid and mine.code in CRL_ERRORS:
        return "no-crl-in-cryptography"
    return None


@dataclass
class Judgement:
    """Every verdict on one case, and what their differences mean."""

    case: Case
    mutls: dict[str, Verdict]
    openssl: Verdict
    cryptography: Verdict
    differences: list[str] = field(default_factory=list)
    disagreements: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)

    def report(self) -> str:
        """The case and every verdict, for a failure message."""
        width = max(len(name) for name in self.mutls)
        lines = [self.case.describe(), "verdicts:"]
        lines += [f"  mutls {name:<{width}}  {verdict}" for name, verdict in self.mutls.items()]
        lines.append(f"  openssl verify {' ' * (width - 9)}  {self.openssl}")
        lines.append(f"  cryptography   {' ' * (width - 9)}  {self.cryptography}")
        if self.differences:
            lines.append(f"intentional differences: {', '.join(self.differences)}")
        for title, items in (
            ("DISAGREEMENTS", self.disagreements),
            ("NEVER-VALID", self.violations),
        ):
            lines += [f"{title}:", *(f"  - {item}" for item in items)] if items else []
        return "\n".join(lines)


def compare(case: Case, mutls: dict[str, Verdict], openssl: Verdict, crypto: Verdict) -> Judgement:
    """Hold mutls's paths to one verdict, and explain every difference with the others."""
    judgement = Judgement(case, mutls, openssl, crypto)
    disagree, differ = judgement.disagreements.append, judgement.differences.append
    for name, verdict in mutls.items():
        if verdict.crashed:
            disagree(f"mutls {name}: {verdict.error}")
    sound = {n: v for n, v in mutls.items() if not v.crashed}
    if case.unparseable:
        unread = {n for n, v in sound.items() if _unread(v)}
        if unread and len(unread) < len(sound):
            differ("unparseable-forwarded vs mutls handshakes")
            sound = {n: v for n, v in sound.items() if n not in unread}
    reference_name = next(iter(sound), None)
    if reference_name is None:
        return judgement
    reference = sound[reference_name]
    for name, verdict in sound.items():
        if case.unparseable:  # refused one way or another: only validity can be compared
            same = verdict.valid == reference.valid
        else:
            same = verdict.key == reference.key
        if not same:
            disagree(f"mutls {name} says {verdict}, but mutls {reference_name} says {reference}")
    if openssl.crashed:
        disagree(f"openssl verify: {openssl.error}")
    elif reference.valid != openssl.valid or reference.code != openssl.code:
        kind = openssl_difference(case, reference, openssl)
        if kind is None:
            what = "validity" if reference.valid != openssl.valid else "reason"
            disagree(f"{what}: mutls says {reference}, openssl says {openssl}")
        else:
            differ(f"{kind} vs openssl")
    if reference.valid != crypto.valid:
        kind = cryptography_difference(case, reference, crypto)
        if kind is None:
            disagree(f"validity: mutls says {reference}, cryptography says {crypto}")
        else:
            differ(f"{kind} vs cryptography")
    for name, verdict in sound.items():
        if verdict.valid:
            judgement.violations += never_valid(case, name, openssl, crypto)
    return judgement


def _unread(verdict: Verdict) -> bool:
    """A verdict of a path that could not read the list at all (see unparseable-forwarded)."""
    error = verdict.error or ""
    return not verdict.valid and error.startswith(("cryptography cannot parse", "400:"))


def _weak(cert: Cert) -> bool:
    return any(note in ("sha1", "rsa-1024") for note in cert.notes) and not cert.self_issued


def never_valid(case: Case, name: str, openssl: Verdict, crypto: Verdict) -> list[str]:
    """Why mutls path ``name``, which says valid, must not (empty when nothing says so)."""
    valid = Verdict(True)
    problems = []
    if not openssl.valid and openssl_difference(case, valid, openssl) not in LENIENT:
        problems.append(f"mutls {name} says valid, openssl verify says {openssl}")
    if not crypto.valid and cryptography_difference(case, valid, crypto) not in LENIENT:
        problems.append(f"mutls {name} says valid, cryptography says {crypto}")
    if case.clean_path() is None:
        banned = [c.label for c in case.disallowed]
        problems.append(
            f"mutls {name} says valid, but no signature path from the leaf to an anchor is "
            f"free of Disallowed certificates ({', '.join(banned) or 'none'}) and within validity"
        )
    return problems


# -- the session's tally -----------------------------------------------------------------------


#: the kinds of disagreement the terminal summary lists (the most frequent first).
SUMMARY_SHAPES = 20


@dataclass
class Tally:
    """What the differential tests saw this session (printed in the terminal summary)."""

    cases: int = 0
    seconds: float = 0.0
    differences: Counter[str] = field(default_factory=Counter)
    disagreements: Counter[str] = field(default_factory=Counter)
    violations: int = 0

    def lines(self) -> list[str]:
        rate = self.seconds / self.cases * 1000 if self.cases else 0
        lines = [f"{self.cases} cases judged in {self.seconds:.1f} s ({rate:.0f} ms a case)"]
        lines += [f"intentional difference {k}: {n}" for k, n in sorted(self.differences.items())]
        shapes = self.disagreements.most_common()
        lines += [f"DISAGREEMENT {k}: {n}" for k, n in shapes[:SUMMARY_SHAPES]]
        if len(shapes) > SUMMARY_SHAPES:
            lines.append(f"(and {len(shapes) - SUMMARY_SHAPES} more kinds of disagreement)")
        if self.violations:
            lines.append(f"NEVER-VALID violations: {self.violations} cases")
        return lines


TALLY = Tally()


class Judge:
    """Judges cases with one server identity; a plan is judged once (hypothesis replays
    plans while it shrinks)."""

    def __init__(self, test_pki: PKIFiles) -> None:
        self.test_pki = test_pki
        self.openssl = OpenSSLVerify()
        self.judged: dict[Plan, Judgement] = {}

    def __repr__(self) -> str:  # hypothesis prints the arguments of a failing example
        return "judge"

    def __call__(self, case: Case) -> Judgement:
        """Every verdict on ``case``, and their comparison."""
        known = self.judged.get(case.plan)
        if known is not None:
            return known
        start = time.perf_counter()
        openssl = self.openssl.start(case)  # runs while mutls judges
        mutls = mutls_verdicts(case, self.test_pki)
        judgement = compare(case, mutls, openssl(), cryptography_verdict(case))
        TALLY.seconds += time.perf_counter() - start
        TALLY.cases += 1
        TALLY.differences.update(set(judgement.differences))
        TALLY.disagreements.update(_shape(d) for d in judgement.disagreements)
        TALLY.violations += bool(judgement.violations)
        self.judged[case.plan] = judgement
        return judgement


def _shape(disagreement: str) -> str:
    """A disagreement without its particulars, to count alike ones together."""
    text = re.sub(r"\(code .*?\)|\[.*?\]|; without CRLs.*", "", disagreement)
    return " ".join(text.split())[:160]
