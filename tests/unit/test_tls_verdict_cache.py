"""The verdict cache of the TLS engine never reuses a verdict beyond what decided it.

A verdict is kept per trust generation (one ``ClientVerifier``); one found by verifying again
(resumption) lives a few seconds at most, and a trust change starts from nothing.
"""

from __future__ import annotations

import pytest

from mutls.pki.trust import TrustMaterial
from mutls.tls import ServerContext, TLSConnection, verdicts

from helpers import CLIENT_CASES, PKIFiles
from tls_driver import TLS13, client_context, connect, full_trust, server_context


def resumed(test_pki: PKIFiles, context: ServerContext, name: str) -> TLSConnection:
    client_ctx = client_context(test_pki, test_pki.identities[name], version=TLS13)
    _, client = connect(test_pki, context, client_ctx)
    server, _ = connect(test_pki, context, client_ctx, client.get_session())
    assert server.info is not None and server.info.resumed
    return server


def test_each_certificate_keeps_its_own_verdict(test_pki: PKIFiles) -> None:
    context = server_context(test_pki)
    for _ in range(2):  # the second round is answered from the cache
        for name, expected in CLIENT_CASES.items():
            server = resumed(test_pki, context, name)
            assert server.info is not None
            cert = server.info.client_certificate
            assert (cert.valid, cert.error) == (expected is None, expected), name
            assert cert.certificate == test_pki.identities[name].certificate


def test_a_rechecked_verdict_expires(test_pki: PKIFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    context = server_context(test_pki)
    first = resumed(test_pki, context, "poupou")
    again = resumed(test_pki, context, "poupou")
    assert first.info is not None and again.info is not None
    assert again.info.client_certificate is first.info.client_certificate  # reused
    later = verdicts.time.monotonic() + verdicts.RECHECK_REUSE_S + 1
    monkeypatch.setattr(verdicts.time, "monotonic", lambda: later)
    fresh = resumed(test_pki, context, "poupou")
    assert fresh.info is not None
    assert fresh.info.client_certificate is not first.info.client_certificate


def test_a_trust_change_is_not_answered_from_the_cache(test_pki: PKIFiles) -> None:
    context = server_context(test_pki)
    assert resumed(test_pki, context, "poupou").info.client_certificate.valid  # type: ignore[union-attr]
    trust = full_trust(test_pki)
    poupou = test_pki.identities["poupou"].certificate
    context.update_trust(
        TrustMaterial(trust.anchors, trust.intermediates, (*trust.disallowed, poupou), trust.crls)
    )
    server = resumed(test_pki, context, "poupou")
    assert server.info is not None
    assert server.info.client_certificate.error == "certificate is in the Disallowed store"


def test_the_bounded_cache_keeps_its_entry_and_byte_bounds() -> None:
    from mutls.tls.bounded import BoundedCache

    cache: BoundedCache[str, int] = BoundedCache(100, max_item_bytes=40, max_entries=3)
    assert not cache.put("huge", 0, 41)  # would push everything else out
    for name in "abc":
        assert cache.put(name, 1, 30)
    assert cache.size == (3, 90)
    cache.touch("a")
    cache.put("d", 2, 30)  # 120 bytes: the oldest, now "b", goes
    assert "b" not in cache and cache.size == (3, 90)
    cache.put("c", 3, 10)  # a replaced entry counts once
    assert cache.get("c") == 3 and cache.size == (3, 70)
    cache.put("e", 4, 1)  # a fourth entry: the oldest ("a") goes
    assert "a" not in cache and cache.size == (3, 41)
    cache.clear()
    assert cache.size == (0, 0) and cache.get("d") is None
