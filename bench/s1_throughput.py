"""Scenario 1, throughput: N instances × K trivial async steps, from the first create to the
last completion.

Stepline is driven (a) in-process (``create_batch`` of 100 through the local client) and
(b) over REST (the batch endpoint of a ``stepline serve`` subprocess, 100 per request, one
request at a time). In process, completion is when the engine's last runner has ended,
confirmed by one count of ``complete`` instances (``wait_complete``); over REST, the count is
polled every 10 ms. DBOS starts each workflow with ``start_workflow_async`` (it has no batch
create) and awaits every handle; it runs only the first size by default, because
at its rate the second would take many minutes per run (``--peer-large`` runs it anyway).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench._common import fresh_dir, serve, wait_complete, wait_count
from bench._harness import Case, Metric, Size

NAME = "throughput"
METRICS = (
    Metric("steps_per_s", "steps/s", True),
    Metric("instances_per_s", "inst/s", True),
    Metric("create_s", "s", False),
    Metric("elapsed_s", "s", False),
)


def cases(size: Size) -> list[Case]:
    shapes = [(200, 3)] if size.quick else [(1_000, 3), (10_000, 10)]
    out = []
    for index, (instances, steps) in enumerate(shapes):
        with_peer = size.peer and (index == 0 or size.peer_large)
        for synchronous in ("FULL", "NORMAL"):
            params = {"synchronous": synchronous, "instances": instances, "steps": steps}
            shape = f"{instances}x{steps} {synchronous}"
            peer = f"dbos {shape}" if with_peer else None
            out.append(Case(f"stepline local {shape}", f"{__name__}:local", params, METRICS, peer))
            out.append(Case(f"stepline rest {shape}", f"{__name__}:rest", params, METRICS, peer))
            if with_peer:
                out.append(Case(f"dbos {shape}", f"{__name__}:dbos", params, METRICS))
    return out


def _rates(instances: int, steps: int, create_s: float, elapsed_s: float) -> dict[str, Any]:
    return {
        "instances_per_s": instances / elapsed_s,
        "steps_per_s": instances * steps / elapsed_s,
        "create_s": create_s,
        "elapsed_s": elapsed_s,
    }


async def local(synchronous: str, instances: int, steps: int) -> dict[str, Any]:
    from bench.workflows import Trivial
    from stepline import Stepline

    with fresh_dir() as folder:
        async with Stepline(
            f"sqlite:///{folder / 'stepline.sqlite3'}", account_id="bench", synchronous=synchronous
        ) as stepline:
            flow = await stepline.register("trivial", Trivial, script_name="bench.workflows")
            started = time.perf_counter()
            for first in range(0, instances, 100):
                count = min(100, instances - first)
                await flow.create_batch([{"params": {"steps": steps}}] * count)
            created = time.perf_counter()
            done = await wait_complete(stepline, "trivial", instances)
    return _rates(instances, steps, created - started, done - started)


async def rest(synchronous: str, instances: int, steps: int) -> dict[str, Any]:
    with fresh_dir() as folder:
        async with serve(folder, synchronous=synchronous) as server:
            started = time.perf_counter()
            for first in range(0, instances, 100):
                count = min(100, instances - first)
                await server.create_batch("trivial", [{"params": {"steps": steps}}] * count)
            created = time.perf_counter()
            done = await wait_count(
                lambda: server.count("trivial", "complete"), instances, interval=0.01
            )
    return _rates(instances, steps, created - started, done - started)


async def dbos(synchronous: str, instances: int, steps: int) -> dict[str, Any]:
    from bench import peer_dbos

    with fresh_dir() as folder:
        timing = await peer_dbos.throughput(folder / "dbos.sqlite3", synchronous, instances, steps)
    return _rates(instances, steps, timing["create_s"], timing["elapsed_s"])


if __name__ == "__main__":  # a quick look without the harness
    print(asyncio.run(local("FULL", 1_000, 3)))
