"""A short ``make soak``: valid mTLS clients are still served while an attacker holds
half-handshakes and slowloris connections, uploads bodies in 1-byte chunks (each refused 400)
and floods the server with distinct-leaf handshakes carrying ~96 KB chains (each refused in the
handshake), and once the attack holds still the server's own timeouts give back every file
descriptor, and its memory comes back (no timing assertion: the rates and the fairness probe's
waits are printed by ``make soak``, not judged here)."""

from __future__ import annotations

import io
from pathlib import Path

import soak

SETTINGS = soak.Settings(
    clients=3,
    half_handshakes=40,
    slowloris=15,
    uploaders=1,
    flooders=1,
    probe_kib=64,
    unloaded_s=3.0,
    attack_s=4.0,
    timeout_handshake=2.0,
    timeout_header=2.0,
    fd_slack=2,
    rss_slack_bytes=32 * soak.MIB,  # generous: the allocator may keep what it was given
    rss_slack_ratio=0.5,
)


def test_valid_clients_are_served_under_attack_and_resources_come_back(tmp_path: Path) -> None:
    out = io.StringIO()
    recovered, _worst, rounds = soak.soak(1, SETTINGS, tmp_path, out)
    print(out.getvalue())
    (result,) = rounds
    assert result.attack_ready, "the attacker did not open its connections"
    attack = SETTINGS.half_handshakes + SETTINGS.slowloris
    assert result.peak_fds >= result.fds_before + attack // 2  # the attack did hold them
    assert result.unloaded_rate > 0 and result.attacked_ok > 0  # still served under attack
    assert result.uploads > 0 and result.uploads_refused == result.uploads
    assert result.floods_refused > 0 and result.floods == 0  # every chain over the cap refused
    assert result.fds_after <= result.fds_before + SETTINGS.fd_slack  # freed by the timeouts
    assert soak.rss_recovered(result.rss_before, result.rss_after, SETTINGS)
    assert recovered
    assert "summary:" in out.getvalue()
    assert "fairness (--min-chunk-average 0): 64 KiB" in out.getvalue()
