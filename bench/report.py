#!/usr/bin/env python3
"""Turns bench/compare.sh and bench/cluster.sh results (one JSON per run)
into the markdown tables of docs/benchmarks.md (medians over runs, ratios
against Nchan and the floor, or against the servers named by --vs) and a PNG
of p99 latency against publish rate.

    python3 bench/report.py [--vs SERVER]... RESULTS_DIR [PNG_PATH]
"""
import glob
import json
import os
import statistics
import sys
from collections import defaultdict

SERVERS = ["ssehub", "nchan", "floor"]
# Saturated fan-out is compared against these (label, server); --vs replaces them.
VS = [("Nchan", "nchan"), ("floor", "floor")]
# The fan-out scenario's latency cut (the "until p99 passes 100 ms").
P99_CUT_MS = 100


def load(results):
    runs = defaultdict(list)  # (scenario, server) -> [result]
    for path in sorted(glob.glob(os.path.join(results, "*.json"))):
        with open(path) as f:
            d = json.load(f)
        runs[(d["scenario"], d["server"])].append(d["result"])
    return runs


def names(runs):
    """Servers present: compare.sh's in their usual order, then any other
    label (a cluster.sh setup) in alphabetical order."""
    present = {s for (_, s) in runs}
    return [s for s in SERVERS if s in present] + sorted(present - set(SERVERS))


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, digits=1):
    if v is None:
        return "n/a"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


def ratio(a, b):
    return f"{a / b:.2f}x" if a and b else "n/a"


def idle(runs):
    rows = ["| server | runs | KiB RSS per subscription | connects/s | CPU s over the idle window |", "| --- | --- | --- | --- | --- |"]
    for s in names(runs):
        rs = runs.get(("idle", s))
        if not rs:
            continue
        rows.append(f"| {s} | {len(rs)} | {fmt(med([r['rss_per_subscription_kib'] for r in rs]), 2)} | "
                    f"{fmt(med([r['connects_per_s'] for r in rs]))} | {fmt(med([r['idle_cpu_s'] for r in rs]), 2)} |")
    return "\n".join(rows)


def fanout_steps(rs):
    """(payload, rate) -> list of step dicts across runs."""
    steps = defaultdict(list)
    for r in rs:
        for st in r["steps"]:
            steps[(st["payload"], st["rate"])].append(st)
    return steps


def best_under(r, limit_ms):
    """A run's best deliveries/s among the steps that delivered everything
    with p99 at most limit_ms (the issue's cut), or None."""
    ok = [st["deliveries_per_s"] for st in r["steps"]
          if st["latency"]["p99_ms"] <= limit_ms and st["delivered"] >= st["expected"]]
    return max(ok) if ok else None


def fanout(runs):
    out = []
    servers = names(runs)
    fan = {s: runs.get(("fanout", s), []) for s in servers}
    best = {s: med([r["max_deliveries_per_s"] for r in fan[s]]) for s in servers}
    cut = {s: med([best_under(r, P99_CUT_MS) for r in fan[s]]) for s in servers}
    vs = " | ".join(f"vs {label}" for label, _ in VS)
    out.append(f"| server | best deliveries/s (median) | {vs} | best with p99 <= {P99_CUT_MS} ms | {vs} |")
    out.append("| --- | --- |" + " --- |" * (2 * len(VS) + 1))
    for s in servers:
        if best[s]:
            out.append(f"| {s} | {fmt(best[s])} | " + " | ".join(ratio(best[s], best.get(ref)) for _, ref in VS)
                       + f" | {fmt(cut[s])} | " + " | ".join(ratio(cut[s], cut.get(ref)) for _, ref in VS) + " |")
    out.append("")
    out.append("| payload | publishes/s | server | deliveries/s | p50 ms | p99 ms | p99.9 ms | max ms | CPU µs/delivery | gaps | dups |")
    out.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    per = {s: fanout_steps(fan[s]) for s in servers}
    keys = sorted({k for s in servers for k in per[s]})
    for payload, rate in keys:
        for s in servers:
            sts = per[s].get((payload, rate))
            if not sts:
                continue
            lat = lambda k: med([x["latency"][k] for x in sts])
            out.append(f"| {payload} B | {fmt(rate, 0)} | {s} | {fmt(med([x['deliveries_per_s'] for x in sts]))} | "
                       f"{fmt(lat('p50_ms'))} | {fmt(lat('p99_ms'))} | {fmt(lat('p999_ms'))} | {fmt(lat('max_ms'))} | "
                       f"{fmt(med([x['server_cpu_us_per_delivery'] for x in sts]), 2)} | {sum(x['gaps'] for x in sts)} | {sum(x['dups'] for x in sts)} |")
    out.append("")
    out.append(against_floor(per))
    return "\n".join(out), per


def against_floor(per):
    """ssehub's median p99 and CPU per delivery over the floor's, at each
    rate both reached."""
    if "ssehub" not in per or "floor" not in per:
        return ""
    rows = ["| payload | publishes/s | p99, ssehub / floor | CPU per delivery, ssehub / floor |", "| --- | --- | --- | --- |"]
    for key in sorted(set(per["ssehub"]) & set(per["floor"])):
        a, b = per["ssehub"][key], per["floor"][key]
        m = lambda sts, f: med([f(x) for x in sts])
        p99 = lambda x: x["latency"]["p99_ms"]
        cpu = lambda x: x["server_cpu_us_per_delivery"]
        rows.append(f"| {key[0]} B | {fmt(key[1], 0)} | {ratio(m(a, p99), m(b, p99))} | {ratio(m(a, cpu), m(b, cpu))} |")
    return "\n".join(rows)


def plot(per, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing: no plot", file=sys.stderr)
        return
    payloads = sorted({p for s in per for (p, _) in per[s]})
    fig, axes = plt.subplots(1, len(payloads), figsize=(6 * len(payloads), 4), squeeze=False)
    for ax, payload in zip(axes[0], payloads):
        for s in per:
            # Achieved deliveries, not the requested rate: a server that
            # slows its publishers down would otherwise look better than it is.
            pts = sorted((med([x["deliveries_per_s"] for x in sts]), med([x["latency"]["p99_ms"] for x in sts])) for (p, _), sts in per[s].items() if p == payload)
            if pts:
                ax.plot([r for r, _ in pts], [v for _, v in pts], marker="o", label=s)
        ax.set_yscale("log")
        ax.set_xlabel("deliveries per second achieved (10,000 subscribers, one topic)")
        ax.set_ylabel("p99 publish-to-receive, ms")
        ax.set_title(f"fan-out, {payload}-byte payload")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}", file=sys.stderr)


def simple(runs, scenario, fields):
    rows = ["| server | runs | " + " | ".join(f for f, _ in fields) + " |", "| --- | --- |" + " --- |" * len(fields)]
    for s in names(runs):
        rs = runs.get((scenario, s))
        if rs:
            rows.append(f"| {s} | {len(rs)} | " + " | ".join(fmt(med([get(r) for r in rs]), 2) for _, get in fields) + " |")
    return "\n".join(rows)


def storm(runs):
    """Every run's recovery, since a run where not everyone came back has no time."""
    rows = ["| server | recovery s, each run (n/a: not all back within 60 s) | recovered, each run | gaps, each run | dups, each run |",
            "| --- | --- | --- | --- | --- |"]
    for s in names(runs):
        rs = runs.get(("storm", s))
        if rs:
            each = lambda key, d=2: ", ".join(fmt(r.get(key), d) if r.get(key) is not None else "n/a" for r in rs)
            rows.append(f"| {s} | {each('recovery_s')} | {each('recovered', 0)} | {each('gaps', 0)} | {each('dups', 0)} |")
    return "\n".join(rows)


def main():
    args = sys.argv[1:]
    vs = []
    while len(args) >= 2 and args[0] == "--vs":
        vs.append((args[1], args[1]))
        args = args[2:]
    if vs:
        VS[:] = vs
    if not args or args[0].startswith("--"):
        sys.exit(__doc__)
    results = args[0]
    png = args[1] if len(args) > 1 else None
    runs = load(results)
    if any(scenario == "idle" for (scenario, _) in runs):
        print("### Idle\n\n" + idle(runs) + "\n")
    table, per = fanout(runs)
    print("### Fan-out\n\n" + table + "\n")
    if runs.get(("storm", "ssehub")) or runs.get(("storm", "nchan")):
        print("### Storm\n\n" + storm(runs) + "\n")
    if runs.get(("slow", "ssehub")):
        print("### Slow readers\n\n" + simple(runs, "slow", [
            ("healthy p99 ms, alone", lambda r: r["without_stalled"]["healthy"]["latency"]["p99_ms"]),
            ("healthy p99 ms, with 50 stalled", lambda r: r["with_stalled"]["healthy"]["latency"]["p99_ms"]),
            ("server RSS KiB after, with stalled", lambda r: r["with_stalled"]["healthy"]["server_rss_kib"])]) + "\n")
    if runs.get(("rooms", "ssehub")):
        print("### Rooms\n\n" + simple(runs, "rooms", [
            ("deliveries owed", lambda r: r["expected"]), ("delivered", lambda r: r["delivered"]),
            ("missing", lambda r: r.get("missing", 0)), ("deliveries/s", lambda r: r["deliveries_per_s"]),
            ("p99 ms", lambda r: r["latency"]["p99_ms"]), ("gaps", lambda r: r["gaps"]), ("dups", lambda r: r["dups"])]) + "\n")
    if png:
        plot(per, png)


if __name__ == "__main__":
    main()
