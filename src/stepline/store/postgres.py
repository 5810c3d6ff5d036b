"""The PostgreSQL store: many engine processes on one database.

``PostgresStore("postgresql://user@host/db")``. Engines share the database: they claim
runnable instances with ``FOR UPDATE SKIP LOCKED``, hold leases that one statement renews,
and tell each other about control operations with LISTEN/NOTIFY. Step writes are batched
(:mod:`stepline.store.postgres_writer`): a completed step waits for the statement that fences
and upserts it together with other instances' steps, in one commit; "attempt started" writes
ride in the same batches without being waited for. When the database is unreachable,
operations raise ``StoreUnavailable``; the runner's own writes, which are safe to repeat,
wait up to ``write_grace_s`` for it to come back first. SQL lives in
:mod:`stepline.store.postgres_queries`.

This module holds the store's state, its opening and closing, the engine's operations on
the runs it claims (claims, leases, step writes, suspension, the end, an event taken) and the
notices. Its other parts are mixins in modules of their own: the instances that clients
create, read and control (:mod:`~stepline.store.postgres_instances`) and the catalog
(:mod:`~stepline.store.postgres_catalog`).

Upgrades: the first process of a new release to open the database migrates it, under an
advisory lock; or ``stepline migrate`` does, as a deploy step, for processes whose role may
only read and write the tables (a start on an up-to-date schema does no DDL, see
:mod:`stepline.store.postgres_migrations`). Processes of the old release already running keep
running (the schema check is at open only, so they are not stopped mid-deploy); one of the
old release that opens the database afterwards is refused with
:class:`~stepline.errors.SchemaTooNew` before it writes anything. Deploy the new release
everywhere before restarting old processes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from typing import Any

import asyncpg

from stepline.errors import StaleRunError, StoreUnavailable
from stepline.store import postgres_queries as q
from stepline.store.migrations import Migration
from stepline.store.port import Notice, notice_to_json
from stepline.store.postgres_access import refuse_unencoded_credentials, said_at_start
from stepline.store.postgres_catalog import PostgresCatalog
from stepline.store.postgres_instances import PostgresInstances
from stepline.store.postgres_migrations import migrate
from stepline.store.postgres_notices import NoticeListener
from stepline.store.postgres_pool import Database
from stepline.store.postgres_writer import Finishes, QueuedSteps, StepBatch, StepRows
from stepline.store.records import EventRecord, InstanceRecord, StepRecord
from stepline.store.sqlite_rows import event_from_row, instance_from_row, step_from_row, step_to_row

__all__ = ["PostgresStore"]

log = logging.getLogger("stepline.store.postgres")

_STEP_COLUMN_COUNT = len(q.STEP_TYPES)


class PostgresStore(PostgresInstances, PostgresCatalog):
    """The shared store: a connection pool, a LISTEN connection, a queued-write flusher."""

    backend = "postgres"
    exclusive = False
    """Engines share the database: each takes over only instances whose lease lapsed."""

    def __init__(
        self,
        dsn: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        write_grace_s: float = 20.0,
        connect_timeout: float = 5.0,
        command_timeout: float = 60.0,
    ) -> None:
        refuse_unencoded_credentials(dsn)  # before a parser takes part of it for the host
        self.dsn = dsn
        self.write_grace_s = write_grace_s
        """How long a runner's write waits for an unreachable database before giving up."""
        self._db = Database(
            dsn,
            min_size=min_size,
            max_size=max_size,
            connect_timeout=connect_timeout,
            command_timeout=command_timeout,
            on_reconnect=self._on_reconnect,
        )
        # Up to four step batches in flight (on a 2-core machine 4 beat 1 and 2 by 10-30 % in
        # steps/s, and 8 did no better), leaving at least half the pool to everything else.
        self._queued = QueuedSteps(
            self._save_batch,
            available=self._db.wait_available,
            flushes=max(1, min(4, max_size // 2)),
        )
        self._listener = NoticeListener(self._db.connect)

    @property
    def available(self) -> bool:
        """Whether the database answered last time it was asked (False during an outage)."""
        return self._db.available

    async def ping(self) -> bool:
        """Whether the database answers a trivial query now (never raises)."""
        return await self._db.ping()

    async def open(self) -> None:
        with said_at_start(self.dsn):  # an unreachable server, a user without privileges
            await self._open()

    async def _open(self) -> None:
        await self._db.open()
        try:
            conn = await self._db.connect(timed=False)  # see migrate
            try:
                await migrate(conn, self.dsn, timeout=self._db.command_timeout)
            finally:
                await conn.close()
            await self._listener.start()
        except BaseException:
            await self._db.close()
            raise
        self._queued.start()

    async def apply_migrations(self) -> list[Migration]:
        """Apply the migrations the database lacks, without opening the store, and return
        them (``stepline migrate``, a deploy step run as a role that may create tables)."""
        with said_at_start(self.dsn):
            conn = await self._db.connect(timed=False)  # see migrate
            try:
                return await migrate(conn, self.dsn, timeout=self._db.command_timeout)
            finally:
                await conn.close()

    async def close(self) -> None:
        await self._queued.stop(timeout=5)
        await self._listener.stop()
        await self._db.close()

    def hold_engine(self, owner: str) -> None:
        """Engines share a PostgreSQL database: there is nothing to hold."""

    def release_engine(self) -> None:
        """Nothing was held."""

    def _on_reconnect(self) -> None:
        self._listener.deliver(Notice("wake"))  # whatever became runnable meanwhile

    # -- the engine's operations -------------------------------------------------------------
    async def recover_interrupted(self, now: int, *, lapsed_before: int) -> int:
        return int(await self._fetchval(q.RECOVER_INTERRUPTED, now, lapsed_before))

    async def renew_leases(
        self, owner: str, until: int, pks: Sequence[int] | None = None, *, valid_at: int = 0
    ) -> set[int]:
        chosen = None if pks is None else list(pks)
        rows = await self._fetch(q.RENEW_LEASES, until, owner, chosen, valid_at)
        return {row[0] for row in rows}

    async def pausing_among(self, pks: Sequence[int]) -> set[int]:
        return {row[0] for row in await self._fetch(q.PAUSING_AMONG, list(pks))}

    async def claim_runnable(
        self,
        now: int,
        limit: int,
        *,
        owner: str,
        lease_until: int,
        skip: Collection[str] = (),
    ) -> list[tuple[InstanceRecord, list[StepRecord]]]:
        if limit <= 0:
            return []

        async def op(conn: asyncpg.Connection) -> list[tuple[InstanceRecord, list[StepRecord]]]:
            async with conn.transaction():
                rows = await _claim_limited(conn, now, limit, owner, lease_until, skip)
                if len(rows) < limit:
                    rows += await conn.fetch(
                        q.CLAIM_RUNNABLE, now, limit - len(rows), owner, lease_until, list(skip)
                    )
                if not rows:
                    return []
                rows.sort(key=lambda r: (r["claim_rank"], r["claim_order"]))
                claimed = [instance_from_row(tuple(r)[:-2]) for r in rows]
                # Steps are read after the claim took its row locks, so a step that a lapsed
                # runner committed just before is seen; one it tries after is fenced off.
                steps: dict[int, list[StepRecord]] = {i.pk: [] for i in claimed}
                for row in await conn.fetch(q.RUN_STEPS_OF_MANY, list(steps)):
                    steps[row[0]].append(step_from_row(row))
            return [(i, steps[i.pk]) for i in claimed]

        return await self._db.run(op)

    async def release(self, pk: int, generation: int, *, now: int) -> None:
        await self._execute(q.RELEASE, pk, generation, now)

    async def next_wake_at(self, kinds: Collection[str] | None = None) -> int | None:
        try:
            if kinds is None:
                value = await self._fetchval(q.NEXT_WAKE)
            else:
                value = await self._fetchval(q.NEXT_WAKE_OF_KINDS, list(kinds))
        except StoreUnavailable:
            # The scheduler asks this outside its retry; during an outage there is no timer
            # to trust, and every subscriber gets a "wake" notice once the database is back.
            return None
        return None if value is None else int(value)

    async def save_step(
        self, pk: int, generation: int, step: StepRecord, *, now: int, step_count: int | None = None
    ) -> None:
        # Rides in the next batch with other instances' steps (one commit for them all).
        row = step_to_row(step)
        if not await self._queued.write(pk, generation, [row], timeout=self.write_grace_s):
            raise StaleRunError(f"instance {pk} moved on from generation {generation}")

    def queue_step(self, pk: int, generation: int, step: StepRecord, *, now: int) -> None:
        self._queued.queue(pk, generation, step_to_row(step))

    async def suspend(
        self,
        pk: int,
        generation: int,
        *,
        status: str,
        wake_at: int | None,
        wake_kind: str | None,
        steps: Sequence[StepRecord],
        now: int,
    ) -> bool:
        paused_on = now if status == "paused" else None

        async def write(conn: asyncpg.Connection, rows: StepRows) -> bool:
            waits = [r for r in rows if r[3] == "wait" and r[5] == "waiting" and r[15]]
            async with conn.transaction():
                # Lock first, then look for events in a later statement: an event committed
                # while we waited for the lock is seen (send_event locks the row too).
                if await conn.fetchval(q.LOCK_FENCED, pk) != generation:
                    raise StaleRunError(f"instance {pk} moved on from generation {generation}")
                woken = await conn.fetchval(
                    q.SUSPEND,
                    pk,
                    generation,
                    status,
                    wake_at,
                    wake_kind,
                    paused_on,
                    now,
                    [r[15] for r in waits],
                    *_step_columns(rows),
                )
            return bool(woken)

        woken = await self._with_queued(pk, generation, [step_to_row(s) for s in steps], write)
        return bool(woken)

    async def finish(
        self,
        pk: int,
        generation: int,
        *,
        status: str,
        output: str | None,
        error_name: str | None,
        error_message: str | None,
        steps: Sequence[StepRecord],
        now: int,
    ) -> None:
        # Rides in a batch like a step: one commit ends many instances' runs.
        ended = (status, output, error_name, error_message, now)
        rows = [step_to_row(s) for s in steps]
        if not await self._queued.write(
            pk, generation, rows, timeout=self.write_grace_s, finish=ended
        ):
            raise StaleRunError(f"instance {pk} moved on from generation {generation}")

    async def consume_event(
        self, pk: int, generation: int, step: StepRecord, *, now: int
    ) -> EventRecord | None:
        # Rows still queued for this run land first (the consumption is a statement of its own).
        taken = await self._queued.take(pk, generation, timeout=self.write_grace_s)
        if taken and not await self._queued.write(
            pk, generation, taken, timeout=self.write_grace_s
        ):
            raise StaleRunError(f"instance {pk} moved on from generation {generation}")
        row = step_to_row(step)

        async def op(conn: asyncpg.Connection) -> asyncpg.Record:
            return await conn.fetchrow(
                q.CONSUME_EVENT,
                pk,
                generation,
                step.event_type,
                step.key,
                step.seq,
                step.kind,
                step.name,
                step.start,
                now,
                step.config,
                row[9],
                step.error_name,
                step.error_message,
                step.error_class,
                step.wake_at,
                step.event_type,
            )

        # Safe to repeat: a retry finds the event this wait already took.
        got = await self._db.run(op, wait_s=self.write_grace_s)
        if not got["live"]:
            raise StaleRunError(f"instance {pk} moved on from generation {generation}")
        if got["id"] is None:
            return None
        return event_from_row(tuple(got)[1:])

    async def _with_queued(
        self,
        pk: int,
        generation: int,
        rows: StepRows,
        write: Callable[[asyncpg.Connection, StepRows], Any],
    ) -> Any:
        """Run a runner's write of ``pk`` with the rows still queued for it sent first, in
        the same statement; the write is repeated across a short outage."""
        taken = await self._queued.take(pk, generation, timeout=self.write_grace_s)
        all_rows = _last_per_key([*taken, *rows])
        try:
            return await self._db.run(lambda c: write(c, all_rows), wait_s=self.write_grace_s)
        except StaleRunError:
            raise
        except BaseException:
            self._queued.give_back(pk, generation, taken)
            raise

    async def _save_batch(self, batch: StepBatch, finishes: Finishes) -> set[int]:
        rows = [row for _, _, pk_rows in batch for row in pk_rows]
        pks = [pk for pk, _, _ in batch]
        generations = [generation for _, generation, _ in batch]
        args = (pks, generations, *_step_columns(rows))
        if not finishes:
            return {row[0] for row in await self._fetch(q.SAVE_STEPS_OF_MANY, *args)}

        async def op(conn: asyncpg.Connection) -> set[int]:
            async with conn.transaction():
                passed = {row[0] for row in await conn.fetch(q.SAVE_STEPS_OF_MANY, *args)}
                ending = [
                    (pk, generation, *finishes[pk])
                    for pk, generation, _ in batch
                    if pk in finishes and pk in passed
                ]
                ended: set[int] = set()
                if ending:
                    columns = [list(column) for column in zip(*ending, strict=True)]
                    ended = {row[0] for row in await conn.fetch(q.FINISH_MANY, *columns)}
            return (passed - finishes.keys()) | ended

        return await self._db.run(op)

    # -- notices -----------------------------------------------------------------------------
    async def publish(self, notice: Notice) -> None:
        listening = self._listener.listening
        if not listening:
            self._listener.deliver(notice)  # our LISTEN is down: it would never come back
        try:
            await self._execute(q.PUBLISH, q.NOTICE_CHANNEL, notice_to_json(notice))
        except Exception as exc:
            # The change the notice is about is already committed; engines elsewhere get a
            # "wake" when they reconnect, so losing the notice costs a delay, not a wrong state.
            log.warning("could not publish %s: %s", notice, exc)
            if listening:
                self._listener.deliver(notice)

    def subscribe(self, handler: Callable[[Notice], None]) -> None:
        self._listener.subscribe(handler)

    def unsubscribe(self, handler: Callable[[Notice], None]) -> None:
        self._listener.unsubscribe(handler)


async def _claim_limited(
    conn: asyncpg.Connection,
    now: int,
    limit: int,
    owner: str,
    lease_until: int,
    skip: Collection[str],
) -> list[asyncpg.Record]:
    """Claim for the workflows with a concurrency limit, up to each one's free slots (the
    ones another engine is claiming for right now are left to it)."""
    limited = await conn.fetch(q.LOCK_LIMITED_WORKFLOWS)
    if not limited:
        return []
    active = dict(await conn.fetch(q.COUNT_ACTIVE, [w["id"] for w in limited]))
    rows: list[asyncpg.Record] = []
    for workflow_id, cap in limited:
        want = min(cap - active.get(workflow_id, 0), limit - len(rows))
        if want > 0:
            rows += await conn.fetch(
                q.CLAIM_RUNNABLE_OF, now, want, owner, lease_until, workflow_id, list(skip)
            )
    return rows


def _step_columns(rows: StepRows) -> list[list[Any]]:
    """Step rows as one list per column, for ``unnest``."""
    if not rows:
        return [[] for _ in range(_STEP_COLUMN_COUNT)]
    return [list(column) for column in zip(*rows, strict=True)]


def _last_per_key(rows: StepRows) -> StepRows:
    """One row per step key, the last written; ``ON CONFLICT`` may touch a row only once."""
    latest: dict[str, tuple[Any, ...]] = {}
    for row in rows:
        latest.pop(row[1], None)
        latest[row[1]] = row
    return list(latest.values())
