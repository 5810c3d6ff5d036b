"""Three ``stepline worker`` processes and one ``stepline serve --no-engine`` on one database:
thousands of instances with steps, sleeps and events sent over REST; one worker is killed with
SIGKILL mid-run. Every instance completes, no recorded step runs again, no event is lost.

``STEPLINE_FLEET_INSTANCES`` sets the size (default 3000, under a minute).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

import asyncpg
import httpx
import pytest

from .fleet import WORKFLOW, Fleet, held_by, ledger_runs, statuses

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(300)]

INSTANCES = int(os.environ.get("STEPLINE_FLEET_INSTANCES", "3000"))


async def send_events(fleet: Fleet, http: httpx.AsyncClient, numbers: range) -> None:
    async def send(n: int) -> None:
        url = f"{fleet.api}/{WORKFLOW}/instances/i{n}/events/approve"
        for _ in range(20):  # the API answers 503 if the database hiccups; clients retry
            response = await http.post(url, json={"n": n})
            if response.status_code != 503:
                break
            await asyncio.sleep(0.2)
        assert response.status_code == 200, response.text

    for start in range(numbers.start, numbers.stop, 50):
        await asyncio.gather(*(send(n) for n in range(start, min(start + 50, numbers.stop))))


async def create_instances(fleet: Fleet, http: httpx.AsyncClient, count: int) -> None:
    for start in range(0, count, 100):
        batch = [
            {"instance_id": f"i{n}", "params": {"n": n}}
            for n in range(start, min(start + 100, count))
        ]
        response = await http.post(f"{fleet.api}/{WORKFLOW}/instances/batch", json=batch)
        assert response.status_code == 200, response.text


async def wait_until_complete(fleet: Fleet, count: int, timeout: float, poll: float = 0.25) -> None:
    deadline = time.monotonic() + timeout
    while True:
        found = await statuses(fleet.database)
        if found.get("complete", 0) >= count:
            return
        assert time.monotonic() < deadline, (
            found,
            {name: fleet.log(name)[-2000:] for name in fleet.processes},
        )
        await asyncio.sleep(poll)


async def test_a_fleet_of_workers_survives_losing_one(empty_database: str, tmp_path: Path) -> None:
    fleet = Fleet(empty_database, tmp_path)
    # All four start at once on an empty database: migrations and registration race.
    fleet.start_api()
    for name in ("w1", "w2", "w3"):
        fleet.start_worker(name)
    try:
        await fleet.wait_for_api()
        async with fleet.client() as http:
            creating = asyncio.create_task(create_instances(fleet, http, INSTANCES))
            victim = fleet.processes["w2"].pid
            for _ in range(2000):  # kill it while it is running instances, not between them
                if await held_by(empty_database, victim) >= 5 or creating.done():
                    break
                await asyncio.sleep(0.005)
            fleet.kill("w2")
            orphaned = await held_by(empty_database, victim)
            await creating
            # Half the events find their instance still busy (buffered), half find it waiting.
            await send_events(fleet, http, range(0, INSTANCES // 2))
            await wait_until_complete(fleet, INSTANCES // 4, timeout=60)
            await send_events(fleet, http, range(INSTANCES // 2, INSTANCES))
        await wait_until_complete(fleet, INSTANCES, timeout=180)
    finally:
        codes = fleet.stop_all()
    assert orphaned > 0, "the killed worker was running nothing: the kill proves nothing"
    # Workers hand their instances over and exit 0; uvicorn re-raises the SIGTERM it got.
    assert codes == {"api": -signal.SIGTERM, "w1": 0, "w3": 0}, {
        name: fleet.log(name)[-2000:] for name in codes
    }
    print(f"the killed worker was running {orphaned} instances")
    await check_outcome(fleet, INSTANCES)


async def check_outcome(fleet: Fleet, count: int) -> None:
    runs = ledger_runs(fleet.ledger)
    conn = await asyncpg.connect(fleet.database)
    try:
        assert await conn.fetchval("SELECT COUNT(*) FROM workflows") == 1
        assert await conn.fetchval("SELECT COUNT(*) FROM versions") == 1
        rows = await conn.fetch("SELECT id, status, output FROM instances")
        events = await conn.fetchrow(
            "SELECT COUNT(*), COUNT(consumed_by), COUNT(DISTINCT instance_pk) FROM events"
        )
        steps = await conn.fetch(
            "SELECT i.id, s.name, s.output FROM steps s JOIN instances i ON i.pk = s.instance_pk "
            "WHERE s.kind = 'do'"
        )
    finally:
        await conn.close()
    assert len(rows) == count and {r["status"] for r in rows} == {"complete"}
    assert tuple(events) == (count, count, count)  # one event each, every one consumed
    for row in rows:
        output = json.loads(row["output"])
        assert output["approval"] == {"n": int(row["id"][1:])}
    assert len(steps) == 3 * count
    for instance_id, name, output in steps:
        key = (instance_id, "work-" + name.split(" ")[1].split("-")[0])
        recorded = json.loads(output)["token"]
        # The recorded execution is the last one: nothing ran after its success was recorded.
        assert runs[key][-1] == recorded, (key, runs[key], recorded)
    repeated = sum(len(tokens) - 1 for tokens in runs.values())
    print(f"{count} instances; {repeated} step bodies ran again after a crash (at-least-once)")
