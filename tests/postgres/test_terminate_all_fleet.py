"""A terminate-all job whose process died, on PostgreSQL with real processes: a worker that
is already running takes it up once the job's lease lapses."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import asyncpg
import pytest

from stepline.engine.terminators import TERMINABLE_STATUSES

from .fleet import WORKFLOW, Fleet, create_instances, statuses

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(180)]

INSTANCES = 300


async def test_a_running_worker_takes_up_the_job_of_an_api_process_that_died(
    empty_database: str, tmp_path: Path
) -> None:
    fleet = Fleet(empty_database, tmp_path)
    fleet.start_api()
    fleet.start_worker("w1", lease="2 seconds")
    try:
        await fleet.wait_for_api()
        async with fleet.client() as http:
            await create_instances(fleet, http, INSTANCES)
        deadline = time.monotonic() + 60
        while (await statuses(empty_database)).get("waiting", 0) < INSTANCES:
            assert time.monotonic() < deadline, await statuses(empty_database)
            await asyncio.sleep(0.1)
        fleet.kill("api")
        # What the API process left when it died a moment after starting a job: the flag,
        # the job, and its lease, which nobody renews now.
        job = json.dumps({"run": "of the dead API process", "statuses": TERMINABLE_STATUSES})
        conn = await asyncpg.connect(empty_database)
        try:
            started = await conn.execute(
                "UPDATE workflows SET terminator_running = TRUE, terminator_job = $1, "
                "terminator_lease = (EXTRACT(EPOCH FROM now()) * 1000)::bigint + 2000 "
                "WHERE name = $2",
                job,
                WORKFLOW,
            )
            assert started == "UPDATE 1"
            deadline = time.monotonic() + 30
            while await conn.fetchval(
                "SELECT terminator_running FROM workflows WHERE name = $1", WORKFLOW
            ):
                assert time.monotonic() < deadline, fleet.log("w1")[-3000:]
                await asyncio.sleep(0.1)
        finally:
            await conn.close()
        assert await statuses(empty_database) == {"terminated": INSTANCES}
    finally:
        codes = fleet.stop_all()
    assert codes == {"w1": 0}, fleet.log("w1")[-3000:]
