"""``python -m bench``: Stepline's benchmarks, side by side with DBOS Transact.

    python -m bench                         every scenario, 5 runs each
    python -m bench --quick --runs 1        small sizes, for a smoke check
    python -m bench --scenarios 1,2 --json out.json

Each run is a fresh subprocess with a fresh database; the cases of a scenario run
interleaved (A, B, A, B …) and the table shows the median, min and max over the runs and,
where there is a peer, the median of the per-round ratios (>1: Stepline is better).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sqlite3
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from bench._harness import Size, run_scenario, summarise

SCENARIOS = {
    1: "bench.s1_throughput",
    2: "bench.s2_step_latency",
    3: "bench.s3_rest_create",
    4: "bench.s4_event_roundtrip",
    5: "bench.s5_idle_scale",
    6: "bench.s6_postgres",
}


def machine() -> dict[str, Any]:
    with open("/proc/meminfo") as meminfo:
        total_kb = int(meminfo.readline().split()[1])
    try:
        dbos_version: str | None = metadata.version("dbos")
    except metadata.PackageNotFoundError:
        dbos_version = None
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(total_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
        "stepline": metadata.version("stepline"),
        "dbos": dbos_version,
    }


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke check)")
    parser.add_argument("--scenarios", default="1,2,3,4,5,6", help="e.g. 1,2,4")
    parser.add_argument("--runs", type=int, default=5, help="runs per case (default 5)")
    parser.add_argument("--json", dest="json_path", help="write every result to this file")
    parser.add_argument("--no-peer", action="store_true", help="Stepline only, no DBOS")
    parser.add_argument(
        "--peer-large", action="store_true", help="DBOS also runs the 10,000 x 10 throughput"
    )
    parser.add_argument("--million", action="store_true", help="idle scale: 1,000,000 too")
    parser.add_argument("--wake-rate", type=int, default=1_000, help="idle scale wake-ups/s")
    return parser.parse_args(argv)


def print_table(rows: list[dict[str, Any]]) -> None:
    header = f"{'case':<46} {'metric':<16} {'median':>11} {'min':>11} {'max':>11} {'vs DBOS':>8}"
    print(header)
    print("-" * len(header))
    for row in rows:
        ratio = f"{row['vs_peer']:.1f}x" if "vs_peer" in row else ""
        print(
            f"{row['case']:<46} {row['metric'] + ' (' + row['unit'] + ')':<16} "
            f"{_num(row['median']):>11} {_num(row['min']):>11} {_num(row['max']):>11} "
            f"{ratio:>8}"
        )


def _num(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    if args.json_path:
        # Its folder (``bench/results`` is not in a clone) is made now, not found missing
        # after the runs.
        Path(args.json_path).parent.mkdir(parents=True, exist_ok=True)
    peer = not args.no_peer
    if peer:
        try:
            importlib.import_module("dbos")
        except ImportError:
            print("dbos is not installed (pip install -e '.[bench]'): running Stepline only")
            peer = False
    size = Size(
        quick=args.quick,
        peer=peer,
        million=args.million,
        peer_large=args.peer_large,
        options={"wake_rate": args.wake_rate},
    )
    report: dict[str, Any] = {
        "machine": machine(),
        "command": " ".join(["python -m bench", *(sys.argv[1:] if argv is None else argv)]),
        "runs": args.runs,
        "quick": args.quick,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "scenarios": {},
    }
    print(json.dumps(report["machine"]))
    for number in [int(n) for n in args.scenarios.split(",") if n.strip()]:
        module = importlib.import_module(SCENARIOS[number])
        print(f"\n== {number}. {module.NAME}")
        skip = getattr(module, "skip_reason", lambda: None)()
        if skip:
            print(f"  {skip}")
            report["scenarios"][str(number)] = {"name": module.NAME, "skipped": skip}
            continue
        cases = module.cases(size)
        results = run_scenario(cases, args.runs)
        rows = summarise(cases, results)
        print()
        print_table(rows)
        report["scenarios"][str(number)] = {
            "name": module.NAME,
            "cases": [
                {"label": c.label, "call": c.call, "params": c.params, "peer": c.peer}
                for c in cases
            ],
            "results": results,
            "summary": rows,
        }
        if args.json_path:  # after every scenario, so a long run keeps what it measured
            with open(args.json_path, "w") as out:
                json.dump(report, out, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
