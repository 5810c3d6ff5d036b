"""``stepline worker`` (in process): what it runs besides instances."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from stepline import Stepline
from stepline.cli.worker import WorkerOptions, run_worker
from stepline.engine.terminators import TERMINABLE_STATUSES
from stepline.errors import EngineAlreadyRunning
from stepline.store.open import open_store
from stepline.testing import wait_for_status
from tests.engine.helpers import FINISHED
from tests.engine.test_storage_limit import Results
from tests.engine.test_terminate_all import Napper

CONFIG = """\
[[workflows]]
name = "nappers"
class_name = "Napper"
script_name = "tests.engine.test_terminate_all"
"""


async def test_a_worker_takes_up_a_terminate_all_job_that_no_process_holds(tmp_path: Path):
    """An API process died in the middle of a terminate-all job, and none is left: a worker
    takes the job up once its lease has lapsed, as `stepline serve` would."""
    database = f"sqlite:///{tmp_path / 'stepline.sqlite3'}"
    api = Stepline(database, account_id="acct", run_engine=False)
    async with api:
        flow = await api.register("nappers", Napper, script_name="tests.engine.test_terminate_all")
        instances = [await flow.create(id=f"n{i}") for i in range(3)]
        workflow = await api.store.get_workflow("acct", "nappers")
        assert workflow is not None
        statuses = list(TERMINABLE_STATUSES)  # "running" too: the worker starts them meanwhile
        job = json.dumps({"run": "of an API process that died", "statuses": statuses})
        lapsed = api.engine.clock.now_ms() - 1
        assert await api.store.start_terminator(workflow.id, job, lease_until=lapsed)

    config = tmp_path / "stepline.toml"
    config.write_text(CONFIG)
    options = WorkerOptions(config=config, database=database, account_id="acct")
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(options, stop))
    look = open_store(database)  # a store alone: a Stepline would take the job up itself
    await look.open()
    try:
        for _ in range(500):
            flagged = await look.get_workflow("acct", "nappers")
            assert flagged is not None
            found = [await look.get_instance(flagged.id, i.id) for i in instances]
            if not flagged.terminator_running:
                break
            assert not worker.done()
            await asyncio.sleep(0.01)
        assert flagged.terminator_running is False
        assert [i.status if i else None for i in found] == ["terminated"] * 3
    finally:
        await look.close()
        stop.set()
        await asyncio.wait_for(worker, timeout=30)


async def test_a_worker_fails_an_instance_past_its_storage_limit(tmp_path: Path):
    database = f"sqlite:///{tmp_path / 'stepline.sqlite3'}"
    config = tmp_path / "stepline.toml"
    config.write_text(
        '[[workflows]]\nname = "results"\nclass_name = "Results"\n'
        'script_name = "tests.engine.test_storage_limit"\n'
    )
    options = WorkerOptions(config=config, database=database, account_id="acct", storage_limit=4096)
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(options, stop))
    try:
        async with Stepline(database, account_id="acct", run_engine=False) as api:
            flow = await api.register(
                "results", Results, script_name="tests.engine.test_storage_limit"
            )
            fits = await flow.create(params={"sizes": [1_000] * 4})
            passes = await flow.create(params={"sizes": [1_000] * 5})
            fitting = await wait_for_status(fits, FINISHED, timeout=30)
            passing = await wait_for_status(passes, FINISHED, timeout=30)
    finally:
        stop.set()
        await asyncio.wait_for(worker, timeout=30)

    assert fitting["status"] == "complete", fitting
    assert passing["status"] == "errored", passing
    assert passing["error"]["message"] == "The Workflow instance exceeded the 4KiB storage limit"


async def test_a_worker_refused_on_a_sqlite_file_leaves_its_workflows_alone(tmp_path: Path):
    """A second engine on a SQLite file is refused before it writes anything: its config
    does not replace the running engine's workflows, concurrency or schedules."""
    database = f"sqlite:///{tmp_path / 'stepline.sqlite3'}"
    running = Stepline(database, account_id="acct")
    async with running:
        await running.register(
            "nappers", Napper, script_name="tests.engine.test_terminate_all", concurrency=3
        )
        before = await running.store.get_workflow("acct", "nappers")
        config = tmp_path / "stepline.toml"
        config.write_text(CONFIG + 'schedules = ["0 0 1 1 *"]\nconcurrency = 7\n')
        options = WorkerOptions(config=config, database=database, account_id="acct")
        with pytest.raises(EngineAlreadyRunning):
            await run_worker(options, asyncio.Event())
        after = await running.store.get_workflow("acct", "nappers")
        assert after == before
        assert after is not None
        assert await running.store.list_schedules([after.id]) == []
