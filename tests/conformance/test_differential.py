"""Differential testing of the client-certificate verdict: one chain, one verdict.

Every chain of tests/chains.py is judged by every path of mutls (full and resumed handshakes of
TLS 1.3 and 1.2, ``verify_chain``, an XFCC header from a trusted proxy) and by ``openssl
verify``, cryptography's verifier and the Disallowed oracle (tests/differential.py). mutls's
paths must agree exactly; with the others they may differ only as
``differential.INTENTIONAL`` says, and mutls must never call valid what one of them refuses.

The hypothesis budget is derandomized and fixed; ``MUTLS_DIFF_SCALE=20`` multiplies it and draws
new chains each run (docs/tls.md, "Differential testing"). ``KNOWN`` holds the shapes that
found a bug or that must keep their verdict, run on every budget.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from OpenSSL import crypto

from budget import budget
from chains import Mutation, Plan, build, plans
from differential import INTENTIONAL, Judge
from helpers import PKIFiles

DEEP = int(os.environ.get("MUTLS_DIFF_SCALE", "1"))
EXAMPLES = 200
#: the suite's per-test timeout (120 s) grows with the budget: ~25-70 ms a case.
SCALED_TIMEOUT = pytest.mark.timeout(max(120, 30 * DEEP))

M = Mutation
#: shapes judged on every run: the bugs differential testing found, and valid controls.
KNOWN: dict[str, Plan] = {
    "valid, depth 1": Plan(),
    "valid, depth 3, one intermediate sent, one in the CA store": Plan(3, ("sent", "store")),
    "valid, two roots of one name": Plan(roots=2, same_name_roots=True, chain_root=1),
    # (1) the Disallowed walk takes what the client sent for the chain, and goes on from the last
    # certificate sent by name: a forgery, any other certificate, the order, or an issuer sent
    # past one in the CA store hides a Disallowed or weak CA
    "Disallowed intermediate in the CA store, a forgery of its name sent": Plan(
        2, ("store",), mutations=(M("disallowed", 1), M("forged", 1, "root-name/last"))
    ),
    "Disallowed intermediate in the CA store, another client's certificate sent": Plan(
        2, ("store",), mutations=(M("disallowed", 1), M("extra-sent", 0, "leaf"))
    ),
    "Disallowed root, the intermediates sent in reverse order": Plan(
        3, ("sent", "sent"), mutations=(M("sent-order", 0, "reversed"), M("disallowed", 3))
    ),
    "RSA-1024 root, the intermediates sent in reverse order": Plan(
        3, ("sent", "sent"), mutations=(M("sent-order", 0, "reversed"), M("rsa-1024", 3))
    ),
    "Disallowed intermediate in the CA store, the client sends the one above it": Plan(
        3, ("store", "both"), mutations=(M("disallowed", 1),)
    ),
    "RSA-1024 intermediate in the CA store, the client sends the one above it": Plan(
        3, ("store", "both"), mutations=(M("rsa-1024", 1),)
    ),
    # (2) the resumed verdict lost what the client sent
    "Disallowed intermediate sent, resumed": Plan(2, ("sent",), mutations=(M("disallowed", 1),)),
    "RSA-1024 intermediate sent, resumed": Plan(2, ("sent",), mutations=(M("rsa-1024", 1),)),
    "SHA-1-signed intermediate sent, resumed": Plan(2, ("sent",), mutations=(M("sha1", 1),)),
    # (3) two roots of one name, the old one Disallowed
    "leaf of the Disallowed root, anchors in order": Plan(
        roots=2, same_name_roots=True, mutations=(M("disallowed", 1),)
    ),
    "leaf of the Disallowed root, anchors reversed": Plan(
        roots=2, same_name_roots=True, mutations=(M("disallowed", 1), M("anchors-reversed"))
    ),
    "leaf of the new root, the other Disallowed": Plan(
        roots=2, same_name_roots=True, mutations=(M("other-root-disallowed"),)
    ),
    "leaf of the new root, the other Disallowed, anchors reversed": Plan(
        roots=2,
        same_name_roots=True,
        mutations=(M("other-root-disallowed"), M("anchors-reversed")),
    ),
    # (4) delta CRLs
    "leaf revoked by a delta CRL": Plan(crls=True, mutations=(M("revoked", 0, "delta"),)),
    "leaf revoked by a delta CRL of its intermediate": Plan(
        2, ("both",), crls=True, mutations=(M("revoked", 0, "delta"),)
    ),
    # (5) what cryptography cannot parse
    "leaf with a BER boolean": Plan(mutations=(M("unparseable", 0, "ber-boolean"),)),
    "leaf with a duplicate extension": Plan(
        mutations=(M("unparseable", 0, "duplicate-extension"),)
    ),
    "intermediate with a BER boolean, sent": Plan(
        2, ("sent",), mutations=(M("unparseable", 1, "ber-boolean"),)
    ),
    # (6) a leaf named like its issuer is taken for a self-signed root: nothing above it is seen
    "leaf named like its Disallowed intermediate": Plan(
        2, ("store",), mutations=(M("subject-as-issuer", 0), M("disallowed", 1))
    ),
    "leaf named like its Disallowed root": Plan(
        mutations=(M("subject-as-issuer", 0), M("disallowed", 1))
    ),
    "leaf named like its RSA-1024 root": Plan(
        mutations=(M("subject-as-issuer", 0), M("rsa-1024", 1))
    ),
    "SHA-1-signed leaf named like its root": Plan(
        mutations=(M("subject-as-issuer", 0), M("sha1", 0))
    ),
    # (7) an issuer name spelled another way (OpenSSL folds case and spaces) hides the issuer
    "issuer name in another case, Disallowed intermediate in the CA store": Plan(
        2, ("store",), mutations=(M("disallowed", 1), M("name-spelling", 1, "case"))
    ),
    "issuer name with other spaces, RSA-1024 intermediate in the CA store": Plan(
        2, ("store",), mutations=(M("rsa-1024", 1), M("name-spelling", 1, "spaces"))
    ),
    "issuer name in another case, SHA-1-signed intermediate in the CA store": Plan(
        2, ("store",), mutations=(M("sha1", 1), M("name-spelling", 1, "case"))
    ),
    # (8) the walk takes the first certificate with the issuer's name, not the issuer
    "Disallowed intermediate in the CA store behind a re-keyed look-alike": Plan(
        2,
        ("store",),
        mutations=(M("disallowed", 1), M("look-alike", 1, "same-issuer/store-first")),
    ),
    "a Disallowed re-keyed look-alike ahead of the intermediate": Plan(
        2, ("store",), mutations=(M("look-alike", 1, "same-issuer/store-first/disallowed"),)
    ),
    # (9) the CA store is OpenSSL's trusted store: a sent certificate cannot come above it
    "intermediate in the CA store, its issuer sent": Plan(3, ("store", "sent")),
    "intermediate in the CA store and sent, its issuer sent": Plan(3, ("both", "sent")),
    # (10) the Disallowed depth counts what the client sent, not the chain
    "Disallowed root, the leaf sent twice": Plan(
        mutations=(M("disallowed", 1), M("sent-order", 0, "leaf-twice"))
    ),
    # (11) a CRL issuer's own path is verified inside the verification: the callbacks took its
    # errors for the chain's (standalone) or failed it (handshake), so the paths disagreed
    "two roots of one name with CRLs, one expired, the root sent": Plan(
        1,
        (),
        roots=2,
        same_name_roots=True,
        crls=True,
        mutations=(M("crl-expired", 0), M("root-sent")),
    ),
    "an expired CRL of the root above a CA without one": Plan(
        2, ("sent",), crls=True, mutations=(M("crl-expired", 1), M("crl-missing", 0))
    ),
}


@pytest.fixture(scope="module")
def judge(test_pki: PKIFiles) -> Judge:
    return Judge(test_pki)


@pytest.mark.parametrize("name", list(KNOWN))
def test_known_shapes(judge: Judge, name: str) -> None:
    judgement = judge(build(KNOWN[name]))
    assert not judgement.disagreements and not judgement.violations, judgement.report()


@SCALED_TIMEOUT
@budget(EXAMPLES, DEEP)
@given(plan=plans())
def test_one_chain_one_verdict(judge: Judge, plan: Plan) -> None:
    """mutls's paths agree exactly; openssl and cryptography only as INTENTIONAL says."""
    judgement = judge(build(plan))
    assert not judgement.disagreements, judgement.report()


@SCALED_TIMEOUT
@budget(EXAMPLES, DEEP)
@given(plan=plans())
def test_never_valid_where_an_independent_verifier_is_not(judge: Judge, plan: Plan) -> None:
    """No path of mutls calls valid what openssl, cryptography or the Disallowed rule refuses
    (beyond the lenient intentional differences of ``differential.INTENTIONAL``)."""
    judgement = judge(build(plan))
    assert not judgement.violations, judgement.report()


# -- the generator itself -----------------------------------------------------------------------


def test_a_plain_chain_has_its_one_path() -> None:
    case = build(Plan(3, ("sent", "both")))
    assert [[c.label for c in p] for p in case.paths()] == [["leaf", "I1", "I2", "R0"]]
    assert case.clean_path() is not None and not case.unparseable
    assert [c.label for c in case.sent] == ["leaf", "I1", "I2"]
    assert [c.label for c in case.intermediates] == ["I2"]


@pytest.mark.parametrize("variant", ["duplicate-extension", "ber-boolean"])
def test_unparseable_certificates_parse_in_openssl_and_keep_their_signature(variant: str) -> None:
    case = build(Plan(2, ("store",), mutations=(M("unparseable", 1, variant),)))
    forged = case.sent[1]
    assert forged.x509 is None  # cryptography refuses it ...
    assert crypto.load_certificate(crypto.FILETYPE_ASN1, forged.der)  # ... OpenSSL does not
    assert [c.label for c in next(case.paths())] == ["leaf", "I1", "R0"]


def test_sha1_is_a_sha1_signature_that_verifies() -> None:
    case = build(Plan(2, ("sent",), mutations=(M("sha1", 1), M("rsa-1024", 2))))
    inter = case.sent[1].x509
    assert inter is not None and inter.signature_hash_algorithm is not None
    assert inter.signature_hash_algorithm.name == "sha1"
    assert next(case.paths(), None) is not None


#: one plan that shows each intentional difference (against openssl or cryptography).
#: a sent intermediate cryptography cannot parse, and a same-key look-alike in the CA store.
UNUSED_UNPARSEABLE = Plan(
    2,
    ("sent",),
    mutations=(
        M("unparseable", 1, "duplicate-extension"),
        M("look-alike", 1, "same-key/store-first"),
    ),
)
INTENTIONAL_EXAMPLES: dict[str, Plan] = {
    "disallowed": Plan(mutations=(M("disallowed", 0),)),
    "ca-as-client": Plan(mutations=(M("ca-as-client"),)),
    "unparseable": Plan(mutations=(M("unparseable", 0, "ber-boolean"),)),
    "sent-root-ignored": Plan(2, ("sent",), mutations=(M("root-sent"), M("untrusted-root"))),
    "crl-missing": Plan(2, ("sent",), crls=True, mutations=(M("crl-missing", 0),)),
    "weak-leaf-key-in-cryptography": Plan(mutations=(M("rsa-1024", 0),)),
    "no-crl-in-cryptography": Plan(crls=True, mutations=(M("revoked", 0, "base"),)),
    "name-spelling": Plan(2, ("sent",), mutations=(M("name-spelling", 1, "case"),)),
    "unused-unparseable": UNUSED_UNPARSEABLE,
    "unparseable-forwarded": UNUSED_UNPARSEABLE,
    "openssl-one-path": Plan(
        2, ("sent",), mutations=(M("sha1", 1), M("look-alike", 1, "same-key/store-first"))
    ),
    "same-name-crl-issuers": Plan(
        1,
        (),
        roots=2,
        same_name_roots=True,
        crls=True,
        mutations=(M("crl-expired", 0), M("root-sent")),
    ),
}


def test_every_intentional_difference_has_its_example() -> None:
    assert set(INTENTIONAL_EXAMPLES) == set(INTENTIONAL)
    assert all(reason for _, reason in INTENTIONAL.values())


@pytest.mark.parametrize("kind", list(INTENTIONAL_EXAMPLES))
def test_an_intentional_difference_is_told_apart(judge: Judge, kind: str) -> None:
    """Each explanation fires for its example (the example's other findings are the other
    tests' business)."""
    judgement = judge(build(INTENTIONAL_EXAMPLES[kind]))
    assert any(d.split(" vs ")[0] == kind for d in judgement.differences), judgement.report()
