"""The peer: DBOS Transact on its SQLite system database, running the same workloads.

Configuration (documented in BENCHMARKS.md): ``system_database_url`` is a fresh SQLite file
per run, put in WAL mode before DBOS opens it, and every connection gets the same
``PRAGMA synchronous`` as the Stepline row it is paired with (FULL or NORMAL), so both sides
give the same durability. The admin server is off, logs are at WARNING, and
``notification_listener_polling_interval_sec`` is 0.01 s (the default is 1 s; on SQLite,
``recv`` learns of a message only by this poll).

Workflows and steps are ``async def`` with the same trivial bodies as Stepline's.
Each run is a fresh process: DBOS is a process-wide singleton.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

__all__ = ["event_roundtrip", "step_latency", "throughput"]

STAMPS: list[float] = []
RESUMED: dict[str, float] = {}


def _launch(db_path: Path, synchronous: str) -> Any:
    import sqlalchemy
    from dbos import DBOS, DBOSConfig

    with sqlite3.connect(db_path) as conn:  # WAL is a property of the file: it persists
        conn.execute("PRAGMA journal_mode = WAL")

    @sqlalchemy.event.listens_for(sqlalchemy.engine.Engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.execute(f"PRAGMA synchronous = {synchronous}")

    config: DBOSConfig = {
        "name": "stepline-bench-peer",
        "system_database_url": f"sqlite:///{db_path}",
        "run_admin_server": False,
        "log_level": "WARNING",
        "notification_listener_polling_interval_sec": 0.01,
    }
    DBOS(config=config)
    _register(DBOS)
    DBOS.launch()
    return DBOS


_FUNCS: dict[str, Any] = {}


def _register(DBOS: Any) -> None:
    @DBOS.step()
    async def trivial(index: int) -> int:
        return index

    @DBOS.step()
    async def stamped(index: int) -> int:
        STAMPS.append(time.perf_counter())
        return index

    @DBOS.step()
    async def resumed() -> int:
        return time.time_ns() // 1_000

    @DBOS.workflow()
    async def trivial_flow(steps: int) -> int:
        total = 0
        for index in range(steps):
            total += await trivial(index)
        return total

    @DBOS.workflow()
    async def stamped_flow(steps: int) -> int:
        for index in range(steps):
            await stamped(index)
        return len(STAMPS)

    @DBOS.workflow()
    async def waiter_flow() -> int:
        await DBOS.recv_async("go", timeout_seconds=3600)
        return await resumed()

    _FUNCS.update(trivial_flow=trivial_flow, stamped_flow=stamped_flow, waiter_flow=waiter_flow)


async def throughput(db_path: Path, synchronous: str, instances: int, steps: int) -> dict[str, Any]:
    DBOS = _launch(db_path, synchronous)
    try:
        flow = _FUNCS["trivial_flow"]
        started = time.perf_counter()
        handles = [await DBOS.start_workflow_async(flow, steps) for _ in range(instances)]
        created = time.perf_counter()
        results = await asyncio.gather(*(h.get_result() for h in handles))
        finished = time.perf_counter()
        assert all(r == steps * (steps - 1) // 2 for r in results)
        return {"create_s": created - started, "elapsed_s": finished - started}
    finally:
        DBOS.destroy()


async def step_latency(db_path: Path, synchronous: str, steps: int) -> list[float]:
    DBOS = _launch(db_path, synchronous)
    try:
        STAMPS.clear()
        handle = await DBOS.start_workflow_async(_FUNCS["stamped_flow"], steps)
        await handle.get_result()
        return list(STAMPS)
    finally:
        DBOS.destroy()


async def event_roundtrip(
    db_path: Path, synchronous: str, instances: int, gap_s: float
) -> list[float]:
    """Latency in ms from just before each ``send`` (one every ``gap_s``) to the resumed step."""
    DBOS = _launch(db_path, synchronous)
    try:
        handles = [await DBOS.start_workflow_async(_FUNCS["waiter_flow"]) for _ in range(instances)]
        await asyncio.sleep(0.5 + instances * 0.002)  # every workflow has reached recv
        sent = []
        for handle in handles:
            sent.append(time.time_ns() // 1_000)
            await DBOS.send_async(handle.get_workflow_id(), "payload", topic="go")
            await asyncio.sleep(gap_s)
        resumed = await asyncio.gather(*(h.get_result() for h in handles))
        return [(r - s) / 1000 for r, s in zip(resumed, sent, strict=True)]
    finally:
        DBOS.destroy()
