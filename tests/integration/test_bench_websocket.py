"""The bench's WebSocket echo row works: ``bench/wsload.py`` against ``mutls serve`` running the
bench app, as ``bench/run.py --metrics ws`` runs it. Only that numbers come out is checked."""

from __future__ import annotations

from pathlib import Path

import peers
import report
from pki import make_pki
from wsload import measure_ws


def test_the_echo_row_measures_mutls(tmp_path: Path) -> None:
    files = make_pki(tmp_path / "pki", "ecdsa-p256")
    peer = next(p for p in peers.PEERS if p.name == "mutls strict")
    with peers.running(peer, files, tmp_path / "work") as (pid, port):
        m = measure_ws(port, files, pid, connections=2, depth=4, size=32, warmup=0.2, duration=0.5)
    assert m.requests > 0 and m.errors == 0 and m.handshakes == 2
    assert m.server_cpu_seconds >= 0 and m.cpu_us_per_request >= 0
    assert "ws" in report.METRICS
