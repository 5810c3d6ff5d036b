"""Scenario 2, step latency: one instance runs 1,000 sequential trivial steps; each step body
records ``time.perf_counter()`` when it starts, and the latency of a step is the time between
consecutive step starts (the previous step's durable write plus the engine's work between).
The same for DBOS, with the same body."""

from __future__ import annotations

import itertools
import statistics
from typing import Any

from bench._common import count_status, fresh_dir, percentile, wait_count
from bench._harness import Case, Metric, Size

NAME = "step latency"
METRICS = (
    Metric("p50_ms", "ms", False),
    Metric("p99_ms", "ms", False),
    Metric("mean_ms", "ms", False),
)


def cases(size: Size) -> list[Case]:
    steps = 200 if size.quick else 1_000
    out = []
    for synchronous in ("FULL", "NORMAL"):
        params = {"synchronous": synchronous, "steps": steps}
        peer = f"dbos {steps} steps {synchronous}" if size.peer else None
        label = f"stepline local {steps} steps {synchronous}"
        out.append(Case(label, f"{__name__}:local", params, METRICS, peer))
        if size.peer:
            label = f"dbos {steps} steps {synchronous}"
            out.append(Case(label, f"{__name__}:dbos", params, METRICS))
    return out


def _latencies(stamps: list[float]) -> dict[str, Any]:
    gaps = [(b - a) * 1000 for a, b in itertools.pairwise(stamps)]
    return {
        "p50_ms": percentile(gaps, 50),
        "p99_ms": percentile(gaps, 99),
        "mean_ms": statistics.fmean(gaps),
        "steps": len(stamps),
    }


async def local(synchronous: str, steps: int) -> dict[str, Any]:
    from bench import workflows
    from stepline import Stepline

    with fresh_dir() as folder:
        async with Stepline(
            f"sqlite:///{folder / 'stepline.sqlite3'}", account_id="bench", synchronous=synchronous
        ) as stepline:
            flow = await stepline.register(
                "stamped", workflows.Stamped, script_name="bench.workflows"
            )
            workflows.STAMPS.clear()
            await flow.create(params={"steps": steps})
            await wait_count(
                lambda: count_status(stepline, "stamped", "complete"), 1, interval=0.05
            )
    return _latencies(workflows.STAMPS)


async def dbos(synchronous: str, steps: int) -> dict[str, Any]:
    from bench import peer_dbos

    with fresh_dir() as folder:
        stamps = await peer_dbos.step_latency(folder / "dbos.sqlite3", synchronous, steps)
    return _latencies(stamps)
