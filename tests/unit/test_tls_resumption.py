"""Resumption never launders a verdict: TLS 1.2 tickets, TLS 1.2 session IDs and TLS 1.3.

OpenSSL runs no verify callback on a resumed session and reports its stored result as OK; the
engine verifies the stored certificate again, against the trust of the moment.
"""

from __future__ import annotations

import gc

import pytest

from mutls.pki.trust import TrustMaterial
from mutls.tls import ServerContext, TLSConnection

from helpers import CLIENT_CASES, PKIFiles
from tls_driver import (
    TLS12,
    TLS13,
    client_context,
    connect,
    full_trust,
    server_context,
)

KINDS = {
    "tls1.2-ticket": {"version": TLS12, "tickets": True},
    "tls1.2-session-id": {"version": TLS12, "tickets": False},
    "tls1.3": {"version": TLS13, "tickets": True},
}
EACH_KIND = pytest.mark.parametrize("kind", list(KINDS))


def verdict(server: TLSConnection) -> tuple[object, ...]:
    assert server.info is not None
    cert = server.info.client_certificate
    return (cert.present, cert.valid, cert.error, cert.error_code, cert.error_depth)


def first_and_resumed_or_not(
    test_pki: PKIFiles, context: ServerContext, name: str, kind: str, between: object = None
) -> tuple[TLSConnection, TLSConnection]:
    """A full handshake, then one that offers its session (``between`` runs in between)."""
    client_ctx = client_context(test_pki, test_pki.identities[name], **KINDS[kind])  # type: ignore[arg-type]
    first, client = connect(test_pki, context, client_ctx)
    session = client.get_session()
    assert session is not None
    if callable(between):
        between()
    second, _ = connect(test_pki, context, client_ctx, session)
    return first, second


def first_and_resumed(
    test_pki: PKIFiles, context: ServerContext, name: str, kind: str, between: object = None
) -> tuple[TLSConnection, TLSConnection]:
    """A full handshake, then one that resumes its session (``between`` runs in between)."""
    first, second = first_and_resumed_or_not(test_pki, context, name, kind, between)
    assert second.info is not None and second.info.resumed, "the session did not resume"
    assert second.info.client_certificate.resumed
    assert first.info is not None and not first.info.resumed
    return first, second


@pytest.fixture(scope="module")
def shared_context(test_pki: PKIFiles) -> ServerContext:
    return server_context(test_pki)


@EACH_KIND
@pytest.mark.parametrize("name", list(CLIENT_CASES))
def test_resumption_keeps_the_verdict(
    test_pki: PKIFiles, shared_context: ServerContext, name: str, kind: str
) -> None:
    first, second = first_and_resumed(test_pki, shared_context, name, kind)
    expected = CLIENT_CASES[name]
    assert verdict(first)[:3] == (True, expected is None, expected)
    assert verdict(second) == verdict(first)
    assert second.info is not None
    assert second.info.client_certificate.certificate == (test_pki.identities[name].certificate)


@EACH_KIND
def test_a_newly_disallowed_certificate_is_refused_on_resumption(
    test_pki: PKIFiles, kind: str
) -> None:
    context = server_context(test_pki)
    poupou = test_pki.identities["poupou"].certificate
    trust = full_trust(test_pki)
    banned = TrustMaterial(
        trust.anchors, trust.intermediates, (*trust.disallowed, poupou), trust.crls
    )
    first, second = first_and_resumed(
        test_pki, context, "poupou", kind, lambda: context.update_trust(banned)
    )
    assert verdict(first)[:3] == (True, True, None)
    assert verdict(second)[:3] == (True, False, "certificate is in the Disallowed store")


@EACH_KIND
def test_a_newly_revoked_certificate_is_refused_on_resumption(
    test_pki: PKIFiles, kind: str
) -> None:
    context = server_context(test_pki)
    poupou = test_pki.identities["poupou"].certificate
    revoked = test_pki.identities["revoked"].certificate
    trust = full_trust(test_pki)
    crl = test_pki.ca.crl([revoked, poupou])
    newer = TrustMaterial(trust.anchors, trust.intermediates, trust.disallowed, (crl,))
    first, second = first_and_resumed(
        test_pki, context, "poupou", kind, lambda: context.update_trust(newer)
    )
    assert verdict(first)[:3] == (True, True, None)
    assert verdict(second)[:3] == (True, False, "certificate revoked")


@EACH_KIND
def test_a_trust_change_also_judges_new_full_handshakes(test_pki: PKIFiles, kind: str) -> None:
    context = server_context(test_pki)
    context.update_trust(TrustMaterial(anchors=(test_pki.other_ca.certificate,)))
    client_ctx = client_context(test_pki, test_pki.identities["untrusted"], **KINDS[kind])  # type: ignore[arg-type]
    server, _ = connect(test_pki, context, client_ctx)
    assert verdict(server)[:3] == (True, True, None)


def test_a_ticket_resumes_valid_when_the_client_sent_its_intermediate(
    test_pki: PKIFiles,
) -> None:
    # A ticket carries the leaf alone; the exact list the client sent is remembered by its
    # digest (in the ticket), so the chain builds again even on a server that does not know
    # the intermediate itself, from exactly what the client sent.
    identity = test_pki.identities["via-intermediate"]
    context = server_context(test_pki)
    first, second = first_and_resumed(test_pki, context, "via-intermediate", "tls1.3")
    assert verdict(second) == verdict(first) == (True, True, None, None, None)
    assert second.info is not None
    assert second.info.client_certificate.chain == (identity.certificate, *identity.chain)


@pytest.mark.parametrize("kind", ["tls1.2-ticket", "tls1.3"])
def test_without_the_hint_a_ticket_is_declined_for_a_full_handshake(
    test_pki: PKIFiles, kind: str
) -> None:
    # Another worker issued the ticket, or the hint was evicted: never guess the chain.
    context = server_context(test_pki)
    forget = context.chain_hints.clear
    _, second = first_and_resumed_or_not(test_pki, context, "via-intermediate", kind, forget)
    assert second.info is not None and not second.info.resumed
    assert verdict(second)[:3] == (True, True, None)
    assert context.chain_hints.declined == 1


def test_sessions_do_not_cross_configurations(test_pki: PKIFiles) -> None:
    client_ctx = client_context(test_pki, test_pki.identities["untrusted"], version=TLS13)
    _, client = connect(test_pki, server_context(test_pki), client_ctx)
    session = client.get_session()
    other = server_context(test_pki, trust=TrustMaterial(anchors=(test_pki.ca.certificate,)))
    server, _ = connect(test_pki, other, client_ctx, session)
    assert server.info is not None and not server.info.resumed


def test_resumed_session_id_keeps_the_chain_in_memory(test_pki: PKIFiles) -> None:
    identity = test_pki.identities["via-intermediate"]
    context = server_context(test_pki)
    _, second = first_and_resumed(test_pki, context, "via-intermediate", "tls1.2-session-id")
    assert second.info is not None
    assert second.info.client_certificate.chain == (identity.certificate, *identity.chain)


def test_no_certificate_stays_absent_on_resumption(test_pki: PKIFiles) -> None:
    context = server_context(test_pki)
    client_ctx = client_context(test_pki, None, version=TLS13)
    first, client = connect(test_pki, context, client_ctx)
    second, _ = connect(test_pki, context, client_ctx, client.get_session())
    assert second.info is not None and second.info.resumed
    assert verdict(second) == verdict(first) == (False, False, None, None, None)


@EACH_KIND
def test_a_connection_dropped_without_close_notify_stays_resumable(
    test_pki: PKIFiles, kind: str
) -> None:
    # Most clients close TCP without close_notify; OpenSSL would then forget the session
    # (SSL_free before a shutdown marks it not resumable). The engine keeps it.
    context = server_context(test_pki)
    client_ctx = client_context(test_pki, test_pki.identities["poupou"], **KINDS[kind])  # type: ignore[arg-type]
    first, client = connect(test_pki, context, client_ctx)
    first.receive_data(b"")  # TCP closed, no close_notify
    del first
    gc.collect()
    second, _ = connect(test_pki, context, client_ctx, client.get_session())
    assert second.info is not None and second.info.resumed
