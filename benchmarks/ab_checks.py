"""Two service configurations side by side: short bursts of cold checks sent to each in turn, so that the VM's
drifting speed (+-20% within minutes on the 2-core machine) falls on both alike. A benchmark, not a test.

Caveats first: both services stay loaded (two process trees, ~1.2 GB per worker process); the idle one uses
~0.5% of a core while the other is measured. Each burst is ``--requests`` cold checks at ``--concurrency``,
every request a different headshot (as ``bench_checks``); the order within each round is random (seeded).
Configurations are ``BYLINECHECK_*`` environment variables (``--a KEY=VALUE ...``, ``--b KEY=VALUE ...``), or
``PYTHONPATH=DIR`` to run one side from another checkout (e.g. ``git worktree add /tmp/base HEAD``: its code and its
weights, since the weights folder is found beside the code). It
prints each burst and, per configuration, the median over bursts of checks/s, p50 and service CPU per check, and
in how many rounds B beat A on each. Writes JSON with ``--out``.

    .venv/bin/python -m benchmarks.ab_checks --b BYLINECHECK_PREPROCESS_WORKERS=2 --rounds 8
    .venv/bin/python -m benchmarks.ab_checks --workers 1 --workers-b 2 --rounds 8   # process counts
    .venv/bin/python -m benchmarks.ab_checks --a PYTHONPATH=/tmp/base --rounds 8       # the last commit against this tree
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import statistics
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.bench_checks import ExternalServer, run_level
from benchmarks.workload import articles, distinct_headshots

METRICS = ("checks_per_s", "p50_ms", "p99_ms", "service_cpu_s_per_check", "service_system_cpu_s_per_check",
           "service_minor_faults_per_check")
BETTER_HIGHER = {"checks_per_s"}


def _env(pairs: list[str]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not (key.startswith("BYLINECHECK_") or key == "PYTHONPATH"):
            raise SystemExit(f"expected BYLINECHECK_KEY=VALUE or PYTHONPATH=DIR, got {pair!r}")
        env[key] = value
    return env


def sign_test_p(wins: int, rounds: int) -> float:
    """Two-sided sign test: the chance of a split at least this uneven if neither configuration were better."""
    tail = min(wins, rounds - wins)
    p = 2 * sum(math.comb(rounds, k) for k in range(tail + 1)) / 2**rounds
    return min(1.0, p)


def compare(bursts: list[dict[str, Any]], rounds: int) -> dict[str, Any]:
    """Per configuration the median of each metric over its bursts, and B's wins over A round by round (with the
    sign test's p-value: 7 of 8 is p = 0.07, 8 of 8 p = 0.008)."""
    summary: dict[str, Any] = {}
    for name in ("A", "B"):
        mine = [b for b in bursts if b["config"] == name]
        summary[name] = {m: statistics.median(b[m] for b in mine) for m in METRICS}
    wins, pvalues = {}, {}
    for metric in METRICS:
        better = worse = 0
        for r in range(rounds):
            a, b = (next(x[metric] for x in bursts if x["round"] == r and x["config"] == c) for c in ("A", "B"))
            better += (b > a) if metric in BETTER_HIGHER else (b < a)
            worse += (b < a) if metric in BETTER_HIGHER else (b > a)
        wins[metric] = better
        pvalues[metric] = sign_test_p(better, better + worse) if better + worse else 1.0  # ties left out
    summary["b_better_in_rounds"] = wins
    summary["sign_test_p"] = pvalues
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--a", nargs="*", default=[], help="BYLINECHECK_KEY=VALUE or PYTHONPATH=DIR for configuration A")
    parser.add_argument("--b", nargs="*", default=[], help="BYLINECHECK_KEY=VALUE or PYTHONPATH=DIR for configuration B")
    parser.add_argument("--workers", type=int, default=2, help="worker processes of each service")
    parser.add_argument("--workers-b", type=int, default=None, help="worker processes of B's service (default: --workers)")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    envs = {"A": _env(args.a), "B": _env(args.b)}
    workers = {"A": args.workers, "B": args.workers_b or args.workers}
    texts = articles(32)
    images = distinct_headshots(2 * args.rounds * args.requests + 8)
    rng = random.Random(args.seed)
    servers: dict[str, ExternalServer] = {}
    bursts: list[dict[str, Any]] = []
    try:
        for name, env in envs.items():
            servers[name] = ExternalServer(workers[name], Path(tempfile.mkdtemp(prefix=f"bylinecheck-ab-{name}-")), env)
            warm = images[-8:][:4] if name == "A" else images[-4:]
            asyncio.run(run_level(servers[name].base, servers[name].token, 4, 4, texts, warm, servers[name]))
        used = 0
        for r in range(args.rounds):
            order = ["A", "B"]
            rng.shuffle(order)
            for name in order:
                server = servers[name]
                burst = images[used: used + args.requests]
                used += args.requests
                result = asyncio.run(run_level(server.base, server.token, args.concurrency, args.requests, texts, burst,
                                               server))
                row = {"round": r, "config": name, **{m: result[m] for m in METRICS},
                       "foreign_cpu_share": result["foreign_cpu_share"], "errors": result["errors"]}
                bursts.append(row)
                print(f"round {r} {name}: {row['checks_per_s']:6.2f} checks/s  p50 {row['p50_ms']:6.1f} ms  "
                      f"p99 {row['p99_ms']:6.1f} ms  svc {1000 * row['service_cpu_s_per_check']:5.1f} ms/check "
                      f"(sys {1000 * row['service_system_cpu_s_per_check']:4.1f}, "
                      f"{row['service_minor_faults_per_check']:5.0f} faults)  "
                      f"other {row['foreign_cpu_share'] or 0:.2f}  errors {row['errors']}", flush=True)
    finally:
        for server in servers.values():
            server.stop()
    summary = compare(bursts, args.rounds)
    for name in ("A", "B"):
        s = summary[name]
        print(f"{name} {envs[name] or '(defaults)'}: median checks/s {s['checks_per_s']:.2f}, p50 {s['p50_ms']:.1f} ms, "
              f"p99 {s['p99_ms']:.1f} ms, svc {1000 * s['service_cpu_s_per_check']:.1f} ms/check "
              f"(sys {1000 * s['service_system_cpu_s_per_check']:.1f}, {s['service_minor_faults_per_check']:.0f} faults)")
    print(f"B better than A in rounds (of {args.rounds}): {summary['b_better_in_rounds']}")
    print("sign test p (two-sided; small = a real difference): "
          + ", ".join(f"{m} {p:.3f}" for m, p in summary["sign_test_p"].items()))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"a": envs["A"], "b": envs["B"], "workers": workers["A"],
                                        "workers_b": workers["B"],
                                        "concurrency": args.concurrency, "requests": args.requests,
                                        "bursts": bursts, "summary": summary}, indent=2))


if __name__ == "__main__":
    main()
