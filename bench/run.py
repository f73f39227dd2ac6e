"""`make bench`: mTLS servers against each other, from one run, on a 2-core machine.

Each server requires and verifies a client certificate, runs one worker pinned to core 0 while
the load generator runs on core 1, and is measured in interleaved rounds (A B C … A B C …).
Every figure is also given as a ratio to uvicorn's and to nginx's from the same run.

    .venv/bin/python bench/run.py            # the full run (< 15 minutes)
    .venv/bin/python bench/run.py --quick    # about 2 minutes, for development
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import signal
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from http2 import http2_table, run_http2
from load import BenchError, build_loadgen, measure, measure_idle
from peers import (
    BENCH_DIR,
    PEERS,
    Peer,
    ServerStartError,
    ensure_debian_packages,
    ensure_peers_venv,
    mutls_serve_status,
    running,
    software_versions,
)
from pki import KEY_TYPES, BenchPKI, make_pki
from report import (
    busy_table,
    figures_table,
    idle_table,
    ratios_table,
    summarise,
    targets_table,
)
from wsload import measure_ws

#: connections the generator keeps busy per metric: enough to keep one server core saturated.
CONNECTIONS = {"new": 16, "resume": 16, "keepalive": 32, "ws": 16}
#: the WebSocket echo row: messages in flight per connection, bytes per message.
WS_DEPTH, WS_SIZE = 16, 32
#: every figure, in the order measured; "ws" only for the servers that take WebSockets here.
ALL_METRICS = ("new", "keepalive", "resume", "ws")
WS_KINDS = ("uvicorn", "mutls")
RESULTS_DIR = BENCH_DIR / "results"
RESULTS_MD = BENCH_DIR / "RESULTS.md"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line; ``--quick`` only changes the defaults of the others."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="2 rounds, short windows, 1,000 idle")
    p.add_argument("--rounds", type=int, help="interleaved rounds (default 5, quick 2)")
    p.add_argument("--duration", type=float, help="measured seconds per figure (2, quick 1)")
    p.add_argument("--warmup", type=float, help="warm-up seconds before each (0.75, quick 0.3)")
    p.add_argument("--idle", type=int, help="idle mTLS connections held (10000, quick 1000; 0 off)")
    p.add_argument(
        "--keys",
        default=",".join(KEY_TYPES),
        help="key types, comma-separated (ecdsa-p256,rsa-2048); RSA measures full handshakes",
    )
    p.add_argument("--peers", help="only these servers, comma-separated (e.g. nginx,uvicorn)")
    p.add_argument(
        "--metrics",
        default=",".join(ALL_METRICS),
        help="only these figures, comma-separated (new,keepalive,resume,ws; e.g. "
        "--metrics ws --peers uvicorn,mutls --idle 0 for the WebSocket row alone)",
    )
    p.add_argument("--no-install", action="store_true", help="never install (fail instead)")
    p.add_argument("--note", help="a sentence put at the top of the report (e.g. the load)")
    p.add_argument(
        "--only-http2", action="store_true", help="run only the HTTP/2 row (h2load; no idle)"
    )
    p.add_argument("--no-http2", action="store_true", help="leave the HTTP/2 row out")
    p.add_argument(
        "--http2-requests", type=int, help="h2load requests per HTTP/2 figure (20000, quick 5000)"
    )
    p.add_argument(
        "--results-md",
        type=Path,
        help="where the table goes (default bench/RESULTS.md; none with --only-http2, whose "
        "partial table must not replace the whole one)",
    )
    args = p.parse_args(argv)
    quick = args.quick
    args.rounds = args.rounds or (2 if quick else 5)
    args.duration = args.duration or (1.0 if quick else 2.0)
    args.warmup = args.warmup if args.warmup is not None else (0.3 if quick else 0.75)
    args.idle = args.idle if args.idle is not None else (1000 if quick else 10000)
    args.keys = [k.strip() for k in args.keys.split(",") if k.strip()]
    args.metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    for metric in args.metrics:
        if metric not in ALL_METRICS:
            p.error(f"--metrics: unknown figure {metric!r}; use {', '.join(ALL_METRICS)}")
    args.http2_requests = args.http2_requests or (5000 if quick else 20000)
    if args.only_http2:
        args.idle = 0
    for key in args.keys:
        if key not in KEY_TYPES:
            p.error(f"--keys: unknown key type {key!r}; use {', '.join(KEY_TYPES)}")
    return args


def log(message: str) -> None:
    """Progress on stderr, so stdout carries only the table."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
    }


def choose_peers(args: argparse.Namespace) -> tuple[list[Peer], dict[str, str]]:
    """The peers to run and, for the others, why they are skipped."""
    wanted = {p.strip() for p in args.peers.split(",")} if args.peers else None
    ok, has_workers, why = mutls_serve_status()
    chosen, skipped = [], {}
    for peer in PEERS:
        if wanted is not None and peer.name not in wanted and peer.kind not in wanted:
            continue
        if peer.kind == "mutls" and not ok:
            skipped[peer.name] = why
        elif peer.kind == "mutls" and peer.workers > 1 and not has_workers:
            skipped[peer.name] = "`mutls serve` has no --workers yet"
        else:
            chosen.append(peer)
    return chosen, skipped


def _sample(m: Any) -> dict[str, Any]:
    return {**asdict(m), "rate": m.rate, "cpu_us": m.cpu_us_per_request}


def run_rounds(
    args: argparse.Namespace,
    peers: list[Peer],
    pkis: dict[str, BenchPKI],
    loadgen: Path,
    work: Path,
    failures: dict[str, str],
    skipped: dict[str, str],
) -> dict[str, dict[str, dict[str, list[dict[str, Any]]]]]:
    """key type -> peer -> metric -> one sample per round, peers interleaved in each round."""
    samples: dict[str, dict[str, dict[str, list[dict[str, Any]]]]] = {k: {} for k in args.keys}
    for round_no in range(args.rounds):
        # rotate who goes first so no server always runs right after the same neighbour
        order = peers[round_no % len(peers) :] + peers[: round_no % len(peers)]
        for key in args.keys:
            mine = ALL_METRICS if key == "ecdsa-p256" else ("new",)
            for peer in order:
                if peer.name in skipped:
                    continue
                metrics = [
                    m for m in mine if m in args.metrics and (m != "ws" or peer.kind in WS_KINDS)
                ]
                if not metrics:
                    continue
                log(f"round {round_no + 1}/{args.rounds} {key} {peer.name}")
                try:
                    with running(peer, pkis[key], work / peer.name.replace(" ", "-")) as (
                        pid,
                        port,
                    ):
                        for metric in metrics:
                            if metric == "ws":
                                m = measure_ws(
                                    port,
                                    pkis[key],
                                    pid,
                                    connections=CONNECTIONS[metric],
                                    depth=WS_DEPTH,
                                    size=WS_SIZE,
                                    warmup=args.warmup,
                                    duration=args.duration,
                                )
                            else:
                                m = measure(
                                    loadgen,
                                    port,
                                    pkis[key],
                                    pid,
                                    mode=metric,
                                    connections=CONNECTIONS[metric],
                                    warmup=args.warmup,
                                    duration=args.duration,
                                )
                            samples[key].setdefault(peer.name, {}).setdefault(metric, [])
                            samples[key][peer.name][metric].append(_sample(m))
                except ServerStartError as error:
                    skipped[peer.name] = f"did not start: {error}"
                    log(f"  skipping {peer.name} from now on: {error}")
                except BenchError as error:
                    failures[f"{peer.name} {key} round {round_no + 1}"] = str(error)
                    log(f"  FAILED: {error}")
    return samples


def run_idle(
    args: argparse.Namespace,
    peers: list[Peer],
    files: BenchPKI,
    loadgen: Path,
    work: Path,
) -> dict[str, dict[str, Any]]:
    """Each server fresh, holding ``--idle`` mTLS connections: resident memory per connection."""
    idle: dict[str, dict[str, Any]] = {}
    for peer in peers:
        log(f"idle {args.idle:,} connections: {peer.name}")
        try:
            with running(peer, files, work / f"idle-{peer.name.replace(' ', '-')}") as (pid, port):
                im = measure_idle(
                    loadgen, port, files, pid, connections=args.idle, open_timeout=120
                )
            idle[peer.name] = {**asdict(im), "bytes_per_connection": im.bytes_per_connection}
        except BenchError as error:
            idle[peer.name] = {"error": str(error)}
            log(f"  FAILED: {error}")
    return idle


def render(result: dict[str, Any]) -> str:
    """The Markdown report of one run."""
    s = result["settings"]
    m = result["machine"]
    names = [p for p in result["peers"]]
    out = [
        f"# mutls benchmark, {result['date']}",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, Linux {m['kernel']}, Python {m['python']}; "
        f"load average {' '.join(m['loadavg_at_start'])} at start, "
        f"{' '.join(m.get('loadavg_at_end', ['?']))} at the end; "
        f"the run took {result.get('elapsed_seconds', 0):.0f} s.",
        f"Server pinned to core 0, load generator to core 1; {s['rounds']} interleaved rounds of "
        f"{s['warmup']} s warm-up + {s['duration']} s measured per figure; median (min–max); "
        f"TLS 1.3, client certificate required and verified by every server. "
        f"CPU = the server process tree's user+system time per request (/proc).",
        "No server writes an access log (nginx `access_log off`, uvicorn and granian "
        "`--no-access-log`, hypercorn's is off by default, mutls `--no-access-log`).",
        "Figures move ~15% between runs on a shared machine: compare servers only within one run.",
        "",
    ]
    if result.get("note"):
        out += [f"**Note:** {result['note']}", ""]
    for key, summary in result["summary"].items():
        if not summary:
            continue  # (--only-http2)
        out += [f"## {key}", "", figures_table(summary, names), ""]
        out += [
            f"Ratios of each median to uvicorn's / nginx's ({key}, same run):",
            "",
            ratios_table(summary, names),
            "",
            f"Server core busy during the window (median of the server tree's CPU time over the "
            f"window; well below 100% means the load generator or the shared machine was the "
            f"limit, so read the CPU figures, not the rates) ({key}):",
            "",
            busy_table(summary, names),
            "",
        ]
    if result.get("http2"):
        from http2 import CONNECTIONS as H2_CONNECTIONS
        from http2 import STREAMS as H2_STREAMS

        out += [
            f"## HTTP/2 (h2load, {H2_CONNECTIONS} connections x {H2_STREAMS} streams in flight, "
            f"{s.get('http2_requests', '?')} requests per figure, {s['keys'][0]})",
            "",
            "h2load sends no client certificate: each server asks for one (granian cannot "
            "without requiring it, so it asks for none); CPU includes the 4 handshakes.",
            "",
            http2_table(result["http2"]),
            "",
        ]
    if result["idle"]:
        out += [
            f"## Idle mTLS connections ({s['idle']:,}, ecdsa-p256, fresh server each)",
            "",
            idle_table(result["idle"], names),
            "",
        ]
    if any(p.startswith("mutls strict") for p in names) and any(result["summary"].values()):
        out += [
            "## The performance targets, from this run (server CPU per request, mutls with "
            "`--no-access-log` as the peers run without theirs)",
            "",
            targets_table(result["summary"], result["idle"]),
            "",
        ]
    out += ["## Software", ""]
    out += [f"- {name}: {text}" for name, text in result["versions"].items()]
    if result["skipped"]:
        out += ["", "## Skipped", ""]
        out += [f"- {name}: {why}" for name, why in result["skipped"].items()]
    if result["failures"]:
        out += ["", "## Failures", ""]
        out += [f"- {name}: {why}" for name, why in result["failures"].items()]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the table; write bench/results/ and bench/RESULTS.md."""
    args = parse_args(argv)
    # SIGTERM (make interrupted, a CI timeout) unwinds like Ctrl-C, so every server is stopped
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    started = time.monotonic()
    try:
        if not args.no_install:
            ensure_debian_packages(log)
            ensure_peers_venv(log)
        peers, skipped = choose_peers(args)
        for name, why in skipped.items():
            log(f"skipping {name}: {why}")
        if not peers:
            raise BenchError("no server to measure (see the skipped lines)")
        with tempfile.TemporaryDirectory(prefix="mutls-bench-") as tmp:
            work = Path(tmp)
            loadgen = build_loadgen(work)
            pkis = {key: make_pki(work / f"pki-{key}", key) for key in args.keys}
            result: dict[str, Any] = {
                "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
                "machine": machine(),
                "settings": {
                    "rounds": args.rounds,
                    "duration": args.duration,
                    "warmup": args.warmup,
                    "idle": args.idle,
                    "keys": args.keys,
                    "connections": CONNECTIONS,
                    "metrics": args.metrics,
                    "websocket": {"depth": WS_DEPTH, "message_bytes": WS_SIZE},
                    "quick": args.quick,
                    "http2_requests": args.http2_requests,
                },
                "versions": {
                    name: text
                    for name, text in software_versions().items()
                    if name == "loadgen" or any(p.kind == name for p in peers)
                },
                "peers": [p.name for p in peers],
                "skipped": skipped,
                "note": args.note,
                "failures": {},
            }
            samples = (
                {key: {} for key in args.keys}
                if args.only_http2
                else run_rounds(
                    args, peers, pkis, loadgen, work, result["failures"], result["skipped"]
                )
            )
            if not args.no_http2:
                result["http2"] = run_http2(
                    [p for p in peers if p.name not in result["skipped"]],
                    pkis[args.keys[0]],
                    work,
                    rounds=args.rounds,
                    requests=args.http2_requests,
                    log=log,
                    failures=result["failures"],
                )
            peers = [p for p in peers if p.name not in result["skipped"]]
            result["samples"] = samples
            result["summary"] = {key: summarise(samples[key]) for key in args.keys}
            result["idle"] = (
                run_idle(args, peers, pkis[args.keys[0]], loadgen, work) if args.idle else {}
            )
    except BenchError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 1
    result["elapsed_seconds"] = round(time.monotonic() - started, 1)
    result["machine"]["loadavg_at_end"] = Path("/proc/loadavg").read_text().split()[:3]
    text = render(result)
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H%M%SZ")
    (RESULTS_DIR / f"{stamp}.json").write_text(json.dumps(result, indent=1, default=str))
    (RESULTS_DIR / f"{stamp}.md").write_text(text)
    results_md = args.results_md or (None if args.only_http2 else RESULTS_MD)
    if results_md is not None:
        results_md.write_text(text)
    print(text)
    log(f"done in {result['elapsed_seconds']:.0f} s; written to {RESULTS_DIR}/{stamp}.json|md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
