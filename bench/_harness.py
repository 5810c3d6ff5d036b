"""Runs cases in fresh subprocesses, interleaved, and turns their results into medians.

A *case* is one configuration (say, Stepline in-process on FULL, 1,000 × 3); a *run* is one
fresh subprocess executing it. ``--runs N`` runs every case of a scenario N times in the
order A, B, C, A, B, C … so that a ratio compares runs made side by side.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Case", "Metric", "Size", "run_child", "run_scenario", "summarise"]


@dataclass(frozen=True, slots=True)
class Metric:
    key: str
    unit: str
    higher_is_better: bool


@dataclass(frozen=True, slots=True)
class Case:
    label: str
    call: str
    """``module:function``; the function is async, takes ``params`` and returns a dict."""
    params: dict[str, Any]
    metrics: tuple[Metric, ...]
    peer: str | None = None
    """The label of the DBOS case this one is compared with, run by run."""
    timeout_s: float = 1_800


@dataclass(frozen=True, slots=True)
class Size:
    quick: bool = False
    peer: bool = True
    million: bool = False
    peer_large: bool = False
    options: dict[str, Any] = field(default_factory=dict)


def run_child(case: Case) -> dict[str, Any]:
    """Run ``case`` once in a fresh interpreter; its last stdout line is the JSON result."""
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "bench.child", case.call, json.dumps(case.params)]
    started = time.perf_counter()
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=case.timeout_s, check=False
    )
    if done.returncode != 0 or not done.stdout.strip():
        tail = (done.stderr or done.stdout).strip().splitlines()[-15:]
        raise RuntimeError(f"{case.label} failed ({done.returncode}):\n" + "\n".join(tail))
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall_s"] = round(time.perf_counter() - started, 3)
    logged = done.stderr.strip().splitlines()
    if logged:
        # What the run logged (warnings and errors: a failed scheduling pass, a failed write)
        # stays with its figures, so that an outlier can be told from a fault.
        result["logged"] = logged[-20:]
    return result


def run_scenario(cases: list[Case], runs: int, log: Any = print) -> dict[str, list[dict[str, Any]]]:
    results: dict[str, list[dict[str, Any]]] = {case.label: [] for case in cases}
    for run in range(1, runs + 1):
        for case in cases:
            log(f"  run {run}/{runs}  {case.label} …")
            outcome = run_child(case)
            results[case.label].append(outcome)
            shown = ", ".join(
                f"{m.key}={_fmt(outcome[m.key])}" for m in case.metrics if m.key in outcome
            )
            log(f"    {shown}")
            logged = outcome.get("logged")
            if logged:
                log(f"    ({len(logged)} lines logged; the last: {logged[-1]})")
    return results


def summarise(cases: list[Case], results: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One row per (case, metric): median, min, max over runs, and the median ratio vs the
    peer's run made in the same round (>1 means Stepline is better)."""
    rows = []
    for case in cases:
        runs = results[case.label]
        for metric in case.metrics:
            values = [r[metric.key] for r in runs if r.get(metric.key) is not None]
            if not values:
                continue
            row: dict[str, Any] = {
                "case": case.label,
                "metric": metric.key,
                "unit": metric.unit,
                "runs": len(values),
                "median": statistics.median(values),
                "min": min(values),
                "max": max(values),
                "values": values,
            }
            if case.peer is not None and case.peer in results:
                theirs = [r.get(metric.key) for r in results[case.peer]]
                ratios = [
                    (ours / peer if metric.higher_is_better else peer / ours)
                    for ours, peer in zip(values, theirs, strict=False)
                    if ours and peer
                ]
                if ratios:
                    row["vs_peer"] = statistics.median(ratios)
                    row["vs_peer_runs"] = ratios
            rows.append(row)
    return rows


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)
