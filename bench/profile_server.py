"""Profile one server under one kind of load: the harness's pieces, plus py-spy if asked.

    .venv/bin/python bench/profile_server.py --mode new --seconds 5
    .venv/bin/python bench/profile_server.py --mode keepalive --py-spy /tmp/ka.txt
    .venv/bin/python bench/profile_server.py --mode idle --connections 10000

``--mode`` is one of the load generator's: ``new`` (full handshakes), ``resume``, ``keepalive``,
or ``idle`` (RSS per held connection). ``--py-spy FILE`` records the server while the load runs
(``pip install py-spy`` into .venv; ``--native`` shows the C frames too) and writes collapsed
stacks, summarised on stdout by self time and by inclusive time per function.
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from load import build_loadgen, measure, measure_idle
from peers import PEERS, running
from pki import make_pki


def summarise(path: Path, top: int = 40) -> str:
    """Self and inclusive sample shares per frame, from py-spy's collapsed stacks."""
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        frames = stack.split(";")
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            incl[frame] += count
    out = [f"{total} samples", "-- self --"]
    out += [f"{100 * n / total:5.1f}% {f}" for f, n in own.most_common(top)]
    out += ["-- inclusive --"]
    out += [f"{100 * n / total:5.1f}% {f}" for f, n in incl.most_common(top)]
    return "\n".join(out)


def main() -> int:
    """Run one profile; print the CPU per request (and the py-spy summary)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer", default="mutls strict", help="a name from bench/peers.py")
    parser.add_argument(
        "--mode", default="keepalive", choices=("new", "resume", "keepalive", "idle")
    )
    parser.add_argument("--key", default="ecdsa-p256")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=0, help="default: as the harness")
    parser.add_argument("--py-spy", type=Path, help="write py-spy's collapsed stacks here")
    parser.add_argument("--native", action="store_true", help="py-spy --native")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--strace", action="store_true", help="count the server's system calls")
    args = parser.parse_args()
    peer = next(p for p in PEERS if p.name == args.peer)
    conns = args.connections or {"new": 16, "resume": 16, "keepalive": 32, "idle": 1000}[args.mode]
    with tempfile.TemporaryDirectory(prefix="mutls-profile-") as tmp:
        work = Path(tmp)
        files = make_pki(work / args.key, args.key)
        binary = build_loadgen(work)
        with running(peer, files, work / "server") as (pid, port):
            if args.mode == "idle":
                idle = measure_idle(binary, port, files, pid, connections=conns, open_timeout=120)
                print(
                    f"idle: {idle.open} open, {idle.bytes_per_connection / 1024:.1f} KB each "
                    f"(rss {idle.rss_before >> 20} -> {idle.rss_with_connections >> 20} MiB)"
                )
                return 0
            spy = None
            if args.strace:
                spy = subprocess.Popen(
                    ["strace", "-c", "-f", "-p", str(pid)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )
                time.sleep(1.0)
            elif args.py_spy is not None:
                command = [
                    str(Path(sys.executable).parent / "py-spy"), "record", "-p", str(pid),
                    "-f", "raw", "-o", str(args.py_spy), "-r", "400",
                    "-d", str(int(args.seconds * args.repeat + 1)),
                ]  # fmt: skip
                # --native needs to stop the process for each sample (py-spy refuses otherwise)
                command.append("--native" if args.native else "--nonblocking")
                spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                time.sleep(1.0)
            for _ in range(args.repeat):
                m = measure(
                    binary, port, files, pid, mode=args.mode, connections=conns,
                    warmup=0.5, duration=args.seconds,
                )  # fmt: skip
                print(
                    f"{args.peer} {args.mode}: {m.rate:,.0f}/s, "
                    f"{m.cpu_us_per_request:,.0f} µs CPU per request, "
                    f"resumed {m.resumed}/{m.handshakes}, errors {m.errors}, "
                    f"core busy {100 * m.server_cpu_seconds / m.seconds:.0f}%"
                )
            if spy is not None and args.strace:
                spy.send_signal(2)
                print(spy.communicate(timeout=30)[1].decode(errors="replace"))
            elif spy is not None and args.py_spy is not None:
                _, err = spy.communicate(timeout=args.seconds * args.repeat + 60)
                if not args.py_spy.exists():
                    print(f"py-spy failed: {err.decode(errors='replace')[-500:]}")
                    return 1
                print(summarise(args.py_spy))
    return 0


if __name__ == "__main__":
    sys.exit(main())
