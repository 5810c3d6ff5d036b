"""Three ``stepline worker`` processes and one ``stepline serve --no-engine`` on one database:
thousands of instances with steps, sleeps and events sent over REST; one worker is killed with
SIGKILL mid-run. Every instance completes, no recorded step runs again, no event is lost.

``STEPLINE_FLEET_INSTANCES`` sets the size (default 3000, under a minute).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from .fleet import Fleet, check_outcome, create_instances, held_by, send_events, wait_until_complete

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(300)]

INSTANCES = int(os.environ.get("STEPLINE_FLEET_INSTANCES", "3000"))


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
            resent = await send_events(fleet, http, range(0, INSTANCES // 2))
            await wait_until_complete(fleet, INSTANCES // 4, timeout=60)
            resent += await send_events(fleet, http, range(INSTANCES // 2, INSTANCES))
        await wait_until_complete(fleet, INSTANCES, timeout=180)
    finally:
        codes = fleet.stop_all()
    assert orphaned > 0, "the killed worker was running nothing: the kill proves nothing"
    # Every process stops as Stepline on SIGTERM and exits 0 (workers hand instances over).
    assert codes == {"api": 0, "w1": 0, "w3": 0}, {name: fleet.log(name)[-2000:] for name in codes}
    print(f"the killed worker was running {orphaned} instances")
    await check_outcome(fleet, INSTANCES, resent)
