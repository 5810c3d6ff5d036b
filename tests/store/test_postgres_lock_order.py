"""PostgreSQL: statements that lock many instance rows lock them in one order, the pk's, so
that an engine's lease renewal and its step batches (or other engines') never deadlock. Each
deadlock cost a commit PostgreSQL's deadlock timeout (a second) and a retry; a busy fleet
logged dozens of them."""

from __future__ import annotations

import asyncio
import random

import asyncpg
import pytest

from stepline.store import postgres_queries as q
from stepline.store.postgres import PostgresStore

from .test_store_contract import LEASE, NOW, make_workflow, new

pytestmark = pytest.mark.postgres

INSTANCES = 1_000
ROUNDS = 12


async def test_lease_renewals_and_step_batches_do_not_deadlock(postgres_database: str):
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
        # Rows updated in a random order lie on the table's pages in that order, as in a
        # busy database: a scan of them does not come in pk order.
        for pk in random.sample(pks, len(pks)):
            await conn.execute(
                "UPDATE instances SET modified_on = modified_on + 1 WHERE pk = $1", pk
            )
    finally:
        await conn.close()
    deadlocks = 0

    async def step_batches() -> None:
        nonlocal deadlocks
        conn = await asyncpg.connect(postgres_database)
        try:
            for _ in range(ROUNDS):
                some = sorted(random.sample(pks, INSTANCES // 3))
                no_steps = [[] for _ in q.STEP_TYPES]
                try:
                    await conn.fetch(
                        q.SAVE_STEPS_OF_MANY, some, [generation[pk] for pk in some], *no_steps
                    )
                except asyncpg.DeadlockDetectedError:
                    deadlocks += 1
        finally:
            await conn.close()

    async def renewals() -> None:
        nonlocal deadlocks
        conn = await asyncpg.connect(postgres_database)
        try:
            for _ in range(ROUNDS):
                try:
                    await conn.execute(q.RENEW_LEASES, NOW + 2 * LEASE, "e", pks, NOW)
                except asyncpg.DeadlockDetectedError:
                    deadlocks += 1
        finally:
            await conn.close()

    await asyncio.gather(step_batches(), step_batches(), step_batches(), renewals(), renewals())
    assert deadlocks == 0
