"""Ticket keys shared by contexts (workers, generations, machines): ``mutls.tls.tickets``.

Two contexts built apart (as two machines, or a generation after a reload) resume each other's
tickets with the same keys, and not with others; a ticket under a key that is no longer first
is accepted and renewed; the verdict is judged again on the second context, never carried.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from OpenSSL import SSL

from mutls.errors import UsageError
from mutls.pki.identity import Identity
from mutls.pki.trust import TrustMaterial
from mutls.tls.tickets import TicketKey, TicketKeys, file_warnings

from helpers import PKIFiles, run_mutls
from tls_driver import TLS12, TLS13, client_context, connect, full_trust, server_context

VERSIONS = pytest.mark.parametrize("version", [TLS12, TLS13], ids=["tls1.2", "tls1.3"])


def key_file(path: Path, size: int = 80) -> str:
    path.write_bytes(os.urandom(size))
    path.chmod(0o600)
    return str(path)


#: OpenSSL's SSL_MODE_NO_AUTO_CHAIN (ssl.h): a client sends its certificate alone, not the
#: chain it could build from the roots it trusts.
NO_AUTO_CHAIN = 0x8


def leaf_client(test_pki: PKIFiles, version: int) -> SSL.Context:
    """A client that sends its certificate alone: another context has no hint of a longer
    list (see ``ChainHints``), so only such a ticket resumes there."""
    identity = test_pki.identities["poupou"]
    context = client_context(
        test_pki, Identity(identity.certificate, identity.key), version=version
    )
    context.set_mode(NO_AUTO_CHAIN)
    return context


def resumed_across(test_pki: PKIFiles, first: object, second: object, version: int) -> bool:
    client_ctx = leaf_client(test_pki, version)
    _, client = connect(test_pki, first, client_ctx)  # type: ignore[arg-type]
    server, _ = connect(test_pki, second, client_ctx, client.get_session())  # type: ignore[arg-type]
    assert server.info is not None
    return bool(server.info.resumed)


@VERSIONS
def test_two_contexts_with_the_same_keys_resume_each_other(
    test_pki: PKIFiles, tmp_path: Path, version: int
) -> None:
    keys = TicketKeys.load([key_file(tmp_path / "t.key")])
    assert resumed_across(
        test_pki,
        server_context(test_pki, ticket_keys=keys),
        server_context(test_pki, ticket_keys=keys),
        version,
    )


@VERSIONS
def test_different_keys_do_not_resume(test_pki: PKIFiles, tmp_path: Path, version: int) -> None:
    one = TicketKeys.load([key_file(tmp_path / "a.key")])
    two = TicketKeys.load([key_file(tmp_path / "b.key")])
    assert not resumed_across(
        test_pki,
        server_context(test_pki, ticket_keys=one),
        server_context(test_pki, ticket_keys=two),
        version,
    )
    # and OpenSSL's own per-context keys never resume on another context
    assert not resumed_across(test_pki, server_context(test_pki), server_context(test_pki), version)


@VERSIONS
def test_an_older_key_decrypts_and_the_ticket_is_renewed(
    test_pki: PKIFiles, tmp_path: Path, version: int
) -> None:
    old = key_file(tmp_path / "old.key")
    new = key_file(tmp_path / "new.key", 48)  # nginx's older form decrypts too
    before = server_context(test_pki, ticket_keys=TicketKeys.load([old]))
    after = server_context(test_pki, ticket_keys=TicketKeys.load([new, old]))
    only_new = server_context(test_pki, ticket_keys=TicketKeys.load([new]))
    client_ctx = leaf_client(test_pki, version)
    _, client = connect(test_pki, before, client_ctx)
    server, client = connect(test_pki, after, client_ctx, client.get_session())
    assert server.info is not None and server.info.resumed
    renewed = client.get_session()
    # the renewed ticket is under the new (first) key: it resumes where the old key is gone
    server, _ = connect(test_pki, only_new, client_ctx, renewed)
    assert server.info is not None and server.info.resumed


def test_a_resumed_session_on_another_context_is_judged_there(
    test_pki: PKIFiles, tmp_path: Path
) -> None:
    keys = TicketKeys.load([key_file(tmp_path / "t.key")])
    trust = full_trust(test_pki)
    poupou = test_pki.identities["poupou"].certificate
    banned = TrustMaterial(trust.anchors, trust.intermediates, (poupou,), trust.crls)
    first = server_context(test_pki, ticket_keys=keys)
    second = server_context(test_pki, trust=banned, ticket_keys=keys)
    client_ctx = leaf_client(test_pki, TLS13)
    one, client = connect(test_pki, first, client_ctx)
    two, _ = connect(test_pki, second, client_ctx, client.get_session())
    assert one.info is not None and one.info.client_certificate.valid
    assert two.info is not None and two.info.resumed
    cert = two.info.client_certificate
    assert (cert.valid, cert.error) == (False, "certificate is in the Disallowed store")


def test_nginx_byte_orders() -> None:
    data = bytes(range(80))
    long = TicketKey.from_bytes(data)
    assert (long.name, long.hmac_key, long.aes_key) == (data[:16], data[16:48], data[48:])
    short = TicketKey.from_bytes(data[:48])
    assert (short.name, short.aes_key, short.hmac_key) == (data[:16], data[16:32], data[32:48])
    assert "hmac" not in repr(long) and data[16:48].hex() not in repr(long)


@pytest.mark.parametrize("size", [0, 47, 79, 81, 160])
def test_a_key_file_of_another_size_is_refused(tmp_path: Path, size: int) -> None:
    path = tmp_path / "bad.key"
    path.write_bytes(b"x" * size)
    with pytest.raises(UsageError, match=r"--ticket-key-file .*bad.key: \d+ bytes, must be 80"):
        TicketKeys.load([str(path)])


def test_a_key_file_must_be_a_regular_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a regular file"):
        TicketKeys.load([str(tmp_path)])
    with pytest.raises(UsageError, match="No such file"):
        TicketKeys.load([str(tmp_path / "missing.key")])


def test_a_readable_key_file_is_warned_about(tmp_path: Path) -> None:
    private = key_file(tmp_path / "private.key")
    shared = key_file(tmp_path / "shared.key")
    Path(shared).chmod(0o644)
    warned = file_warnings([private, shared])
    assert len(warned) == 1 and "shared.key is readable by everyone" in warned[0]


def test_the_command_line_refuses_a_bad_key_file_in_one_line(
    test_pki: PKIFiles, tmp_path: Path
) -> None:
    bad = tmp_path / "short.key"
    bad.write_bytes(b"x" * 32)
    args = ["serve", "--p12", test_pki.p12("server"), "--pkpwd", "s3kr3t", "--port", "0"]
    result = run_mutls(*args, "--ticket-key-file", bad)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"mutls serve: --ticket-key-file {bad}: 32 bytes, must be 80 (or nginx's older 48); "
        "make one with `openssl rand 80 > ticket.key`"
    )
    result = run_mutls("serve", "--port", "0", "--ticket-key-file", key_file(tmp_path / "k"))
    assert result.returncode == 2 and "--ticket-key-file needs TLS" in result.stderr


def test_a_tls13_client_keeps_resuming_with_the_ticket_it_was_given_last(
    test_pki: PKIFiles, tmp_path: Path
) -> None:
    # A TLS 1.3 client uses a ticket once: each resumption must hand it a new one (renewed),
    # or its next connection is a full handshake.
    keys = TicketKeys.load([key_file(tmp_path / "t.key")])
    contexts = [server_context(test_pki, ticket_keys=keys) for _ in range(2)]
    client_ctx = leaf_client(test_pki, TLS13)
    _, client = connect(test_pki, contexts[0], client_ctx)
    resumed = []
    for turn in range(6):
        server, client = connect(test_pki, contexts[turn % 2], client_ctx, client.get_session())
        assert server.info is not None
        resumed.append(server.info.resumed)
    assert all(resumed), resumed
