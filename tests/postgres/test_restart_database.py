"""PostgreSQL restarts in the middle of a worker's run: the worker and the API ride it out
(503s meanwhile, reconnection after) and every instance completes afterwards.

This restarts the machine's PostgreSQL cluster (``pg_ctlcluster ... restart``), so it needs
the local server and the right to manage it; the server is started again even if the test
fails.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .fleet import Fleet, check_outcome, create_instances, held_by, send_events, wait_until_complete

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(300)]

INSTANCES = 600


def cluster_version() -> str:
    versions = sorted(p.name for p in Path("/etc/postgresql").glob("*"))
    if not versions or shutil.which("pg_ctlcluster") is None:
        pytest.skip("no local PostgreSQL cluster to restart (pg_ctlcluster)")
    return versions[-1]


def pg_ctl(action: str) -> None:
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", cluster_version(), "main", action],
        check=True,
        capture_output=True,
        timeout=120,
    )


def answers(port: int = 5432) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def restartable_server(empty_database: str) -> Iterator[str]:
    cluster_version()
    yield empty_database
    if not answers():  # whatever happened, leave the server running
        pg_ctl("start")
        for _ in range(60):
            if answers():
                break
            time.sleep(0.5)


async def test_a_worker_rides_out_a_database_restart(
    restartable_server: str, tmp_path: Path
) -> None:
    fleet = Fleet(restartable_server, tmp_path)
    fleet.start_api()
    fleet.start_worker("worker", concurrency=100, lease="5 seconds")
    try:
        await fleet.wait_for_api()
        await fleet.wait_for_worker("worker")  # the restart is meant for a running worker
        async with fleet.client() as http:
            await create_instances(fleet, http, 200)
            creating = asyncio.create_task(create_instances(fleet, http, INSTANCES, start=200))
            worker = fleet.processes["worker"].pid
            for _ in range(2000):  # restart while it runs instances
                if await held_by(restartable_server, worker) >= 5 or creating.done():
                    break
                await asyncio.sleep(0.005)
            await asyncio.to_thread(pg_ctl, "restart")
            await creating
            resent = await send_events(fleet, http, range(INSTANCES))
        await wait_until_complete(fleet, INSTANCES, timeout=120)
        assert fleet.processes["worker"].poll() is None, fleet.log("worker")[-3000:]
    finally:
        codes = fleet.stop_all()
    log = fleet.log("worker")
    assert "PostgreSQL unreachable" in log and "PostgreSQL reachable again" in log, log[-3000:]
    assert codes == {"api": 0, "worker": 0}, log[-3000:]
    await check_outcome(fleet, INSTANCES, resent)
