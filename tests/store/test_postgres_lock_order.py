"""PostgreSQL: transactions that lock the same rows lock them in one order, so that they wait
for each other instead of deadlocking. Statements that lock many instance rows lock them in the
pk's order, so that an engine's lease renewal, a recovery of lapsed leases and a workflow's
deletion never deadlock with step batches (an engine's or other engines'); a schedule's row
is locked before its workflow's, as a cron firing does, by a registration that changes both
and by a deletion. Each deadlock cost a commit PostgreSQL's
deadlock timeout (a second), a retry and a warning; a busy fleet logged dozens of them."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import asyncpg
import pytest

from stepline.store import postgres_queries as q
from stepline.store.port import WorkflowSettings
from stepline.store.postgres import PostgresStore
from stepline.store.records import InstanceRecord, VersionRecord, WorkflowRecord

from .test_store_contract import LEASE, NOW, make_workflow, new

pytestmark = pytest.mark.postgres

INSTANCES = 1_000
ROUNDS = 12


async def test_lease_renewals_and_step_batches_do_not_deadlock(postgres_database: str):
    pks, generation = await claimed_out_of_order(postgres_database)

    async def renew(conn: asyncpg.Connection) -> None:
        await conn.execute(q.RENEW_LEASES, NOW + 2 * LEASE, "e", pks, NOW)

    deadlocks = await asyncio.gather(
        *(step_batches(postgres_database, generation) for _ in range(3)),
        *(rounds_of(postgres_database, renew) for _ in range(2)),
    )
    assert sum(deadlocks) == 0


async def test_recoveries_and_step_batches_do_not_deadlock(postgres_database: str):
    """A recovery of instances whose leases lapsed updated them in the order of the table's
    pages; a batch of step writes (an engine's that has not yet seen its leases lapse, or
    another's) locks them in pk order."""
    _, generation = await claimed_out_of_order(postgres_database)

    async def recover(conn: asyncpg.Connection) -> None:
        # Every lease counts as lapsed; then the rows run again, for the next round.
        await conn.execute(q.RECOVER_INTERRUPTED, NOW, NOW + 10 * LEASE)
        await conn.execute(
            "WITH r AS (SELECT pk FROM instances ORDER BY pk FOR NO KEY UPDATE) "
            "UPDATE instances SET status = 'running' FROM r WHERE instances.pk = r.pk"
        )

    deadlocks = await asyncio.gather(
        *(step_batches(postgres_database, generation) for _ in range(3)),
        rounds_of(postgres_database, recover),
    )
    assert sum(deadlocks) == 0


async def rounds_of(url: str, statement: Callable[[asyncpg.Connection], Awaitable[None]]) -> int:
    """Run ``statement`` ``ROUNDS`` times on a connection of its own; how many deadlocked."""
    deadlocks = 0
    conn = await asyncpg.connect(url)
    try:
        for _ in range(ROUNDS):
            try:
                await statement(conn)
            except asyncpg.DeadlockDetectedError:
                deadlocks += 1
    finally:
        await conn.close()
    return deadlocks


async def step_batches(url: str, generation: dict[int, int]) -> int:
    """``ROUNDS`` batches of step writes (empty) for a third of the instances each, fenced by
    ``generation`` as an engine's are; how many deadlocked."""
    pks = sorted(generation)

    async def batch(conn: asyncpg.Connection) -> None:
        some = sorted(random.sample(pks, INSTANCES // 3))
        no_steps: list[list[object]] = [[] for _ in q.STEP_TYPES]
        await conn.fetch(q.SAVE_STEPS_OF_MANY, some, [generation[pk] for pk in some], *no_steps)

    return await rounds_of(url, batch)


async def claimed_out_of_order(postgres_database: str) -> tuple[list[int], dict[int, int]]:
    """``INSTANCES`` instances claimed by engine "e", their rows on the table's pages in a
    random order (as in a busy database: a scan of them does not come in pk order); their
    pks in order, and each one's generation."""
    store = PostgresStore(postgres_database)
    await store.open()
    try:
        workflow = await make_workflow(store)
        ids = [f"i{n}" for n in range(INSTANCES)]
        for at in range(0, INSTANCES, 100):
            part = [new(workflow, i) for i in ids[at : at + 100]]
            await store.insert_instances(part, skip_existing=False, now=NOW)
        claimed = await store.claim_runnable(NOW, INSTANCES, owner="e", lease_until=NOW + LEASE)
    finally:
        await store.close()
    generation = {instance.pk: instance.generation for instance, _ in claimed}
    pks = sorted(generation)
    conn = await asyncpg.connect(postgres_database)
    try:
        for pk in random.sample(pks, len(pks)):
            await conn.execute(
                "UPDATE instances SET modified_on = modified_on + 1 WHERE pk = $1", pk
            )
    finally:
        await conn.close()
    return pks, generation


CRON = "* * * * *"
T = TypeVar("T")


async def save_with_crons(
    store: PostgresStore, code: str, crons: list[str]
) -> tuple[WorkflowRecord, VersionRecord]:
    return await store.save_workflow(
        "acct", "flow", class_name="Flow", script_name="flows", code_hash=code,
        settings=WorkflowSettings(), now=NOW, schedules=[(c, NOW) for c in crons],
        schedule_limit=10,
    )  # fmt: skip


@pytest.fixture
async def postgres_store(postgres_database: str) -> AsyncIterator[PostgresStore]:
    store = PostgresStore(postgres_database)
    await store.open()
    yield store
    await store.close()


async def until_waiting(observer: asyncpg.Connection, sessions: int) -> None:
    """Until ``sessions`` sessions on this database wait for a lock."""
    async with asyncio.timeout(10):
        while True:
            waiting = await observer.fetchval(
                "SELECT COUNT(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if waiting >= sessions:
                return
            await asyncio.sleep(0.01)


async def beside_a_firing(
    store: PostgresStore, workflow: WorkflowRecord, operation: Callable[[], Awaitable[T]]
) -> tuple[InstanceRecord | None, T]:
    """Run ``operation`` while the firing of the workflow's due schedule is between its two
    statements (it has advanced the schedule, so holds its row, and waits to insert its
    instance) until ``operation`` waits for a lock too; then let the firing go on."""
    (schedule,) = await store.due_schedules(NOW, limit=10)
    instance = new(workflow, "cron-1", trigger_source="cron")
    blocker, observer = await asyncpg.connect(store.dsn), await asyncpg.connect(store.dsn)
    try:
        holding = blocker.transaction()
        await holding.start()
        # Locks no row: only the writes to the table wait for it, the firing's insert among them.
        await blocker.execute("LOCK TABLE instances IN SHARE MODE")
        firing = asyncio.create_task(
            store.fire_schedule(schedule, next_fire_at=NOW + 60_000, instance=instance, now=NOW)
        )
        await until_waiting(observer, 1)
        operating = asyncio.create_task(operation())
        await until_waiting(observer, 2)
        await holding.rollback()
        return await firing, await operating
    finally:
        await blocker.close()
        await observer.close()


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What was logged at WARNING and above: a deadlock is, as the store retries it."""
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


async def test_a_registration_that_changes_a_workflow_and_its_crons_waits_for_a_firing(
    postgres_store: PostgresStore, caplog: pytest.LogCaptureFixture
) -> None:
    store = postgres_store
    # A redeploy with new code and new crons while the old cron fires: the firing locks its
    # schedule's row, then the workflow's (its triggered_on); the registration locked the
    # workflow's row first, then the schedules' (to replace them): a deadlock.
    workflow, _ = await save_with_crons(store, "v1", [CRON])
    fired, (saved, version) = await beside_a_firing(
        store, workflow, lambda: save_with_crons(store, "v2", ["*/5 * * * *"])
    )
    assert warnings(caplog) == []
    assert fired is not None and fired.workflow_id == workflow.id
    assert saved.version_id == version.id != workflow.version_id
    assert [s.cron for s in await store.list_schedules([workflow.id])] == ["*/5 * * * *"]


async def test_a_workflow_deleted_while_its_schedule_fires_waits_for_the_firing(
    postgres_store: PostgresStore, caplog: pytest.LogCaptureFixture
) -> None:
    store = postgres_store
    # The deletion locked the workflow's row, then its schedules' as it cascaded to them.
    workflow, _ = await save_with_crons(store, "v1", [CRON])
    fired, _ = await beside_a_firing(store, workflow, lambda: store.delete_workflow(workflow.id))
    assert warnings(caplog) == []
    assert fired is not None
    assert await store.get_workflow("acct", "flow") is None
    assert await store.list_schedules([workflow.id]) == []


async def test_a_workflow_deleted_while_a_step_batch_writes_waits_for_it(
    postgres_store: PostgresStore, caplog: pytest.LogCaptureFixture
) -> None:
    """The deletion's cascade locked the workflow's instances in the order it found them (not
    the pk's), against a batch of step writes, which locks them in pk order: here the batch
    holds the first and the cascade, holding the second, waits for it."""
    store = postgres_store
    workflow = await make_workflow(store)
    await store.insert_instances(
        [new(workflow, "first"), new(workflow, "second")], skip_existing=False, now=NOW
    )
    first = await store.get_instance(workflow.id, "first")
    second = await store.get_instance(workflow.id, "second")
    assert first is not None and second is not None and first.pk < second.pk
    batch, observer = await asyncpg.connect(store.dsn), await asyncpg.connect(store.dsn)
    try:
        # The first's row moves behind the second's, on the table's pages and in the index of
        # the workflow's instances by creation (as an instance created with its id does).
        await batch.execute(
            "UPDATE instances SET created_on = created_on + 1 WHERE pk = $1", first.pk
        )
        holding = batch.transaction()
        await holding.start()
        await batch.execute(LOCK_SHARE, first.pk)
        deleting = asyncio.create_task(store.delete_workflow(workflow.id))
        await until_waiting(observer, 1)
        await batch.execute(LOCK_SHARE, second.pk)  # the batch's next row: it was a deadlock
        await holding.commit()
        await deleting
    finally:
        await batch.close()
        await observer.close()
    assert warnings(caplog) == []
    assert await store.get_workflow("acct", "flow") is None


LOCK_SHARE = "SELECT 1 FROM instances WHERE pk = $1 FOR SHARE"
