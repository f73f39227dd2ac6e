"""The benchmark's pieces work: /proc readers, the load generator against nginx, the tables.

Only that numbers come out is checked, never how big they are (speed is the benchmark's job).
"""

from __future__ import annotations

import math
import subprocess
import sys
import time
from pathlib import Path

import load
import peers
import procstat
import pytest
import report
from pki import make_pki

from tools import need


def test_proc_readers_see_a_child_and_its_cpu() -> None:
    busy = "import time\nend = time.monotonic() + 30\nwhile time.monotonic() < end: pass\n"
    spawn = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {busy!r}])"
    parent = subprocess.Popen([sys.executable, "-c", spawn], start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while len(procstat.process_tree(parent.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        tree = procstat.process_tree(parent.pid)
        assert tree[0] == parent.pid and len(tree) == 2
        cpu = procstat.tree_cpu_seconds(parent.pid)
        assert isinstance(cpu, float) and cpu >= 0
        assert procstat.tree_rss_bytes(parent.pid) > 0
    finally:
        peers.stop(parent)


def test_report_renders_medians_and_ratios() -> None:
    def sample(rate: float, cpu: float) -> dict[str, float]:
        return {
            "rate": rate,
            "cpu_us": cpu,
            "errors": 0,
            "bad_status": 0,
            "handshakes": 1,
            "resumed": 1,
        }

    samples = {
        "nginx": {"new": [sample(900, 1100), sample(1000, 1000)]},
        "uvicorn": {"new": [sample(600, 1500)]},
    }
    summary = report.summarise(samples)
    assert summary["uvicorn"]["new"]["ratios"]["nginx"]["cpu_us"] == pytest.approx(1500 / 1050)
    table = report.figures_table(summary, ["nginx", "uvicorn"])
    assert "950 (900–1,000)" in table and "1,500" in table
    assert "1.43" in report.ratios_table(summary, ["nginx", "uvicorn"])


@pytest.fixture(scope="module")
def loadgen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    need("gcc", "/usr/include/openssl/ssl.h", "nginx")
    if peers.nginx_binary() is None:
        pytest.skip("nginx with its SSL module is not installed")
    return load.build_loadgen(tmp_path_factory.mktemp("loadgen"))


def test_one_tiny_measurement_against_nginx(loadgen: Path, tmp_path: Path) -> None:
    files = make_pki(tmp_path / "pki", "ecdsa-p256")
    nginx = peers.Peer("nginx", "nginx")
    with peers.running(nginx, files, tmp_path / "nginx", ready_timeout=15) as (pid, port):
        for mode in ("new", "resume", "keepalive"):
            m = load.measure(
                loadgen, port, files, pid, mode=mode, connections=2, warmup=0.2, duration=0.5
            )
            assert m.requests > 0 and m.errors == 0 and m.bad_status == 0, (mode, m)
            assert not math.isnan(m.cpu_us_per_request) and m.cpu_us_per_request >= 0
            if mode == "resume":
                assert m.resumed > 0
        idle = load.measure_idle(loadgen, port, files, pid, connections=20, open_timeout=15)
        assert idle.open == 20 and idle.errors == 0
        assert idle.rss_with_connections > 0
    assert not Path(f"/proc/{pid}").exists(), "nginx was not stopped"
