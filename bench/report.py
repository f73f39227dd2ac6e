"""Turn the samples of one run into medians, min–max, ratios to uvicorn and nginx, and tables."""

from __future__ import annotations

import math
import statistics
from typing import Any

#: metric name -> (column title of its rate, column title of its CPU figure)
METRICS = {
    "new": ("full mTLS handshakes/s", "CPU µs per full handshake"),
    "keepalive": ("keep-alive req/s", "CPU µs per keep-alive req"),
    "resume": ("resumed handshakes/s", "CPU µs per resumed"),
    "ws": ("WebSocket echo msgs/s", "CPU µs per WebSocket msg"),
}
REFERENCES = ("uvicorn", "nginx")

Samples = dict[str, dict[str, list[dict[str, Any]]]]  # peer -> metric -> samples


def spread(values: list[float]) -> dict[str, float]:
    """Median, min and max of ``values`` (NaN-free)."""
    clean = [v for v in values if not math.isnan(v)]
    if not clean:
        return {"median": math.nan, "min": math.nan, "max": math.nan}
    return {"median": statistics.median(clean), "min": min(clean), "max": max(clean)}


def summarise(samples: Samples) -> dict[str, dict[str, dict[str, Any]]]:
    """peer -> metric -> {rate, cpu_us: spread; errors, resumed_share, ratios}."""
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    for peer, by_metric in samples.items():
        for metric, runs in by_metric.items():
            handshakes = sum(r["handshakes"] for r in runs)
            summary.setdefault(peer, {})[metric] = {
                "rate": spread([r["rate"] for r in runs]),
                "cpu_us": spread([r["cpu_us"] for r in runs]),
                "busy": spread([r["rate"] * r["cpu_us"] / 1e4 for r in runs]),
                "errors": sum(r["errors"] + r["bad_status"] for r in runs),
                "resumed_share": sum(r["resumed"] for r in runs) / handshakes
                if handshakes
                else None,
                "rounds": len(runs),
            }
    for metrics in summary.values():
        for metric, figures in metrics.items():
            figures["ratios"] = {
                ref: {
                    what: _ratio(figures[what]["median"], summary, ref, metric, what)
                    for what in ("rate", "cpu_us")
                }
                for ref in REFERENCES
            }
    return summary


def _ratio(value: float, summary: dict[str, Any], ref: str, metric: str, what: str) -> float:
    try:
        base = summary[ref][metric][what]["median"]
    except KeyError:
        return math.nan
    return value / base if base and not math.isnan(base) else math.nan


def idle_ratios(idle: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    """peer -> {uvicorn, nginx}: bytes per idle connection as a ratio."""
    out: dict[str, dict[str, float]] = {}
    for peer, figures in idle.items():
        out[peer] = {}
        for ref in REFERENCES:
            base = idle.get(ref, {}).get("bytes_per_connection")
            value = figures.get("bytes_per_connection")
            out[peer][ref] = value / base if base and value is not None else math.nan
    return out


def _n(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "–"
    return f"{value:,.0f}"


def _cell(s: dict[str, float], rounds: int) -> str:
    if math.isnan(s["median"]):
        return "–"
    if rounds < 2:
        return _n(s["median"])
    return f"{_n(s['median'])} ({_n(s['min'])}–{_n(s['max'])})"


def _r(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.2f}"


def figures_table(summary: dict[str, dict[str, dict[str, Any]]], peers: list[str]) -> str:
    """The measured figures: median (min–max) over the rounds."""
    metrics = [m for m in METRICS if any(m in summary.get(p, {}) for p in peers)]
    head = ["server (1 worker unless ×2)"]
    for m in metrics:
        head += list(METRICS[m])
    if "resume" in metrics:
        head.append("resumed %")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for peer in peers:
        if peer not in summary:
            continue
        row = [peer]
        for m in metrics:
            f = summary[peer].get(m)
            if f is None:
                row += ["–", "–"]
                continue
            warn = f" ⚠{f['errors']} errors" if f["errors"] else ""
            row += [_cell(f["rate"], f["rounds"]) + warn, _cell(f["cpu_us"], f["rounds"])]
        if "resume" in metrics:
            share = summary[peer].get("resume", {}).get("resumed_share")
            row.append("–" if share is None else f"{share * 100:.0f}%")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def ratios_table(summary: dict[str, dict[str, dict[str, Any]]], peers: list[str]) -> str:
    """Every median as a ratio to uvicorn's and to nginx's from the same run ("uvicorn / nginx")."""
    metrics = [m for m in METRICS if any(m in summary.get(p, {}) for p in peers)]
    head = ["server"]
    for m in metrics:
        head += [f"{METRICS[m][0]} ×", f"{METRICS[m][1]} ×"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for peer in peers:
        if peer not in summary:
            continue
        row = [peer]
        for m in metrics:
            f = summary[peer].get(m)
            for what in ("rate", "cpu_us"):
                if f is None:
                    row.append("–")
                    continue
                r = f["ratios"]
                row.append(f"{_r(r['uvicorn'][what])} / {_r(r['nginx'][what])}")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def idle_table(idle: dict[str, dict[str, Any]], peers: list[str]) -> str:
    """Resident memory of each server tree while it holds the idle mTLS connections."""
    ratios = idle_ratios(idle)
    head = [
        "server",
        "connections held",
        "RSS before (MB)",
        "RSS holding them (MB)",
        "KB per connection",
        "× uvicorn / nginx",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for peer in peers:
        f = idle.get(peer)
        if f is None:
            continue
        if "error" in f:
            lines.append(f"| {peer} | {f['error'][:80]} | | | | |")
            continue
        held = f"{f['open']:,} of {f['connections']:,}"
        per = f"{f['bytes_per_connection'] / 1024:,.1f}"
        if f["open"] < f["connections"]:
            # memory of the closed ones need not have gone back to the system
            held += " ⚠ the server closed the others (its idle timeout?)"
            per += " (unreliable)"
        lines.append(
            f"| {peer} | {held} | {f['rss_before'] / 2**20:,.1f} | "
            f"{f['rss_with_connections'] / 2**20:,.1f} | {per} | "
            f"{_r(ratios[peer]['uvicorn'])} / {_r(ratios[peer]['nginx'])} |"
        )
    return "\n".join(lines)


def busy_table(summary: dict[str, dict[str, dict[str, Any]]], peers: list[str]) -> str:
    """How busy the server core was in each window (far below 100%: not the limit)."""
    metrics = [m for m in METRICS if any(m in summary.get(p, {}) for p in peers)]
    head = ["server", *(METRICS[m][0] for m in metrics)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for peer in peers:
        if peer not in summary:
            continue
        row = [peer]
        for m in metrics:
            f = summary[peer].get(m)
            row.append("–" if f is None else f"{f['busy']['median']:.0f}%")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def _median(summary: dict[str, Any], peer: str, metric: str, what: str = "cpu_us") -> float:
    try:
        return float(summary[peer][metric][what]["median"])
    except KeyError:
        return math.nan


def targets_table(
    summaries: dict[str, dict[str, dict[str, Any]]],
    idle: dict[str, dict[str, Any]],
    peer: str = "mutls strict",
) -> str:
    """The performance issue's targets for ``peer`` (server CPU per request, same run), each
    as measured / limit, and whether met; the moonshots are reported beside them."""
    rows: list[tuple[str, float, float, str]] = []  # (target, measured, limit, unit)

    def against(metric: str, what: str, limit: float) -> None:
        rows.append((what, _median(summary, peer, metric), limit, "µs"))

    for key, summary in summaries.items():
        full = _median(summary, "uvicorn", "new")
        against("new", f"CPU per full handshake ({key}) ≤ 0.5× uvicorn", 0.5 * full)
        against("new", f"CPU per full handshake ({key}) ≤ nginx", _median(summary, "nginx", "new"))
        if "keepalive" in summary.get(peer, {}):
            uvicorn = _median(summary, "uvicorn", "keepalive")
            against("keepalive", "CPU per keep-alive request ≤ 0.75× uvicorn", 0.75 * uvicorn)
            against(
                "keepalive", "CPU per keep-alive request ≤ granian",
                _median(summary, "granian", "keepalive"),
            )  # fmt: skip
            against("keepalive", "moonshot: keep-alive ≤ 0.5× uvicorn", 0.5 * uvicorn)
        if "resume" in summary.get(peer, {}):
            against(
                "resume", "CPU per resumed handshake ≤ nginx", _median(summary, "nginx", "resume")
            )
            against("resume", "moonshot: resumed ≤ granian", _median(summary, "granian", "resume"))
            share = summary[peer]["resume"].get("resumed_share") or 0.0
            rows.append(
                ("resumption works (share of handshakes resumed)", share * 100, math.nan, "%")
            )
    held = idle.get(peer, {})
    if held.get("bytes_per_connection") is not None:
        complete = held["open"] >= held["connections"]
        rows.append(
            ("idle mTLS connection ≤ 30 KB" + ("" if complete else " (unreliable: closed early)"),
             held["bytes_per_connection"] / 1024, 30.0 if complete else math.nan, "KB")
        )  # fmt: skip
    lines = [f"| target ({peer}) | measured | limit | met |", "|---|---|---|---|"]
    for target, measured, limit, unit in rows:
        if math.isnan(limit):
            met = "yes" if unit == "%" and measured > 0 else "–"
            limit_text = "–"
        else:
            met = "–" if math.isnan(measured) else ("yes" if measured <= limit else "**no**")
            limit_text = f"{_n(limit)} {unit}"
        shown = f"{measured:.2f} {unit}" if unit == "×" else f"{_n(measured)} {unit}"
        lines.append(f"| {target} | {shown} | {limit_text} | {met} |")
    return "\n".join(lines)
