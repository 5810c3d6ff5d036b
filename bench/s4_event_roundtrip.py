"""Scenario 4, event round trip: M instances wait in ``wait_for_event``; events are sent one
every 25 ms, and the latency of one is the wall-clock time from just before the send until
the step after the wait started (that step records ``time.time_ns()`` as its output).

- ``rest parked``: over REST to a ``stepline serve`` subprocess, after the instances have been
  waiting longer than the engine's 1 s hot threshold, so each one is suspended: the event
  wakes the engine, which claims the instance and replays ``run()`` up to the wait.
- ``local hot`` / ``local parked``: the in-process client; hot keeps the runners in memory
  (``suspend_after="1 hour"``), as DBOS does with a workflow blocked in ``recv``.
- ``dbos``: ``DBOS.send_async`` to workflows blocked in ``DBOS.recv_async``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench._common import count_status, fresh_dir, percentile, serve, wait_count
from bench._harness import Case, Metric, Size

NAME = "event round trip"
METRICS = (Metric("p50_ms", "ms", False), Metric("p99_ms", "ms", False))
GAP_S = 0.025


def cases(size: Size) -> list[Case]:
    params = {"synchronous": "FULL", "instances": 20 if size.quick else 200}
    peer = "dbos FULL" if size.peer else None
    hot, parked = {**params, "hot": True}, {**params, "hot": False}
    out = [
        Case("stepline rest parked FULL", f"{__name__}:rest", params, METRICS),
        Case("stepline local hot FULL", f"{__name__}:local", hot, METRICS, peer),
        Case("stepline local parked FULL", f"{__name__}:local", parked, METRICS),
    ]
    if size.peer:
        out.append(Case("dbos FULL", f"{__name__}:dbos", params, METRICS))
    return out


def _summary(latencies: list[float]) -> dict[str, Any]:
    return {
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies),
        "events": len(latencies),
    }


async def rest(synchronous: str, instances: int) -> dict[str, Any]:
    with fresh_dir() as folder:
        async with serve(folder, synchronous=synchronous) as server:
            ids: list[str] = []
            for first in range(0, instances, 100):
                ids += await server.create_batch("waiter", [{}] * min(100, instances - first))
            await wait_count(lambda: server.count("waiter", "waiting"), instances, interval=0.05)
            await asyncio.sleep(1.5)  # past the 1 s hot threshold: every instance is suspended
            sent: dict[str, int] = {}
            for instance_id in ids:
                sent[instance_id] = time.time_ns() // 1_000
                await server.send_event("waiter", instance_id, "go")
                await asyncio.sleep(GAP_S)
            await wait_count(lambda: server.count("waiter", "complete"), instances, interval=0.05)
            latencies = [(await server.output("waiter", i) - sent[i]) / 1000 for i in ids]
    return _summary(latencies)


async def local(synchronous: str, instances: int, hot: bool) -> dict[str, Any]:
    from bench.workflows import Waiter
    from stepline import Stepline

    with fresh_dir() as folder:
        async with Stepline(
            f"sqlite:///{folder / 'stepline.sqlite3'}",
            account_id="bench",
            synchronous=synchronous,
            suspend_after="1 hour" if hot else "1 second",
        ) as stepline:
            flow = await stepline.register("waiter", Waiter, script_name="bench.workflows")
            handles = []
            for first in range(0, instances, 100):
                handles += await flow.create_batch([{}] * min(100, instances - first))
            # A hot waiter stays 'running' (its coroutine is in memory); a parked one is
            # 'waiting' after the 1 s hot threshold.
            status = "running" if hot else "waiting"
            await wait_count(
                lambda: count_status(stepline, "waiter", status), instances, interval=0.05
            )
            await asyncio.sleep(0.5 if hot else 1.5)
            sent: dict[str, int] = {}
            for handle in handles:
                sent[handle.id] = time.time_ns() // 1_000
                await handle.send_event("go")
                await asyncio.sleep(GAP_S)
            await wait_count(
                lambda: count_status(stepline, "waiter", "complete"), instances, interval=0.05
            )
            latencies = [((await h.status())["output"] - sent[h.id]) / 1000 for h in handles]
    return _summary(latencies)


async def dbos(synchronous: str, instances: int) -> dict[str, Any]:
    from bench import peer_dbos

    with fresh_dir() as folder:
        latencies = await peer_dbos.event_roundtrip(
            folder / "dbos.sqlite3", synchronous, instances, GAP_S
        )
    return _summary(latencies)
