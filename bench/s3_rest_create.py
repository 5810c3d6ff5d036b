"""Scenario 3, REST batch create: sustained instances created per second, 100 per request,
from several concurrent ``httpx.AsyncClient`` tasks in one load-generating process, and the
latency of each batch request.

Creation alone is measured: by default the server runs with ``--no-engine`` (the API alone),
so instances stay ``queued``. The ``engine`` cases run the engine too, on a workflow whose
instances park at once on an event that never comes, so the engine's claim-and-park work
shares the machine with creation. The load generator shares the 2 cores with the server.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench._common import fresh_dir, percentile, serve
from bench._harness import Case, Metric, Size

NAME = "rest batch create"
METRICS = (
    Metric("instances_per_s", "inst/s", True),
    Metric("batch_p50_ms", "ms", False),
    Metric("batch_p99_ms", "ms", False),
)


def cases(size: Size) -> list[Case]:
    instances = 2_000 if size.quick else 20_000
    plan = [
        ("FULL", 1, False),
        ("FULL", 4, False),
        ("FULL", 8, False),
        ("NORMAL", 4, False),
        ("FULL", 4, True),
    ]
    out = []
    for synchronous, clients, engine in plan:
        label = f"stepline rest {synchronous} {clients} client{'s' * (clients > 1)}" + (
            " +engine" if engine else " api-only"
        )
        params = {
            "synchronous": synchronous,
            "clients": clients,
            "instances": instances,
            "engine": engine,
        }
        out.append(Case(label, f"{__name__}:rest", params, METRICS))
    return out


async def rest(synchronous: str, clients: int, instances: int, engine: bool) -> dict[str, Any]:
    batches = list(range(instances // 100))
    latencies: list[float] = []
    with fresh_dir() as folder:
        async with serve(folder, synchronous=synchronous, engine=engine) as server:
            workflow = "parker"
            await server.create_batch(workflow, [{}])  # warm the server's first-request paths

            async def client() -> None:
                while batches:
                    batches.pop()
                    sent = time.perf_counter()
                    await server.create_batch(workflow, [{}] * 100)
                    latencies.append((time.perf_counter() - sent) * 1000)

            started = time.perf_counter()
            await asyncio.gather(*(client() for _ in range(clients)))
            elapsed = time.perf_counter() - started
            created = await server.count(workflow)
    return {
        "instances_per_s": len(latencies) * 100 / elapsed,
        "batch_p50_ms": percentile(latencies, 50),
        "batch_p99_ms": percentile(latencies, 99),
        "created": created,
    }
