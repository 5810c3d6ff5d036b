"""The Store contract: every method's documented behaviour, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable

import pytest

from stepline.errors import (
    CannotSendEvent,
    InstanceAlreadyExists,
    InstanceNotFound,
    InvalidRequest,
    StaleRunError,
    WorkflowNotFound,
)
from stepline.store.port import InstanceFilter, Notice, Store, WorkflowSettings
from stepline.store.records import (
    DEFAULT_RETENTION_MS,
    Attempt,
    InstanceRecord,
    StepRecord,
    TokenRecord,
    WorkflowRecord,
)
from stepline.store.sqlite_rows import DEFERRED_OUTPUT_BYTES

from .conftest import OpenStore

NOW = 1_700_000_000_000
LEASE = 30_000


async def make_workflow(store: Store, name: str = "flow", **settings: int) -> WorkflowRecord:
    workflow, _ = await store.save_workflow(
        "acct",
        name,
        class_name="Flow",
        script_name="flows",
        code_hash="h1",
        settings=WorkflowSettings(**settings),
        now=NOW,
    )
    return workflow


def new(workflow: WorkflowRecord, instance_id: str, *, created: int = NOW, **kw: object):
    fields: dict[str, object] = {"status": "queued", **kw}
    return InstanceRecord(
        pk=0,
        workflow_id=workflow.id,
        id=instance_id,
        version_id=workflow.version_id,
        params='{"n": 1}',
        created_on=created,
        modified_on=created,
        **fields,  # type: ignore[arg-type]
    )


async def add(store: Store, workflow: WorkflowRecord, *ids: str, **kw: object):
    return await store.insert_instances(
        [new(workflow, i, **kw) for i in ids], skip_existing=False, now=NOW
    )


def do_step(pk: int, name: str, seq: int, status: str = "running", **kw: object) -> StepRecord:
    return StepRecord(
        instance_pk=pk,
        key=f"do:1:{name}",
        seq=seq,
        kind="do",
        name=f"{name}-1",
        status=status,
        start=NOW,
        attempts=[Attempt(start=NOW)],
        **kw,  # type: ignore[arg-type]
    )


def wait_step(pk: int, name: str, seq: int, event_type: str, deadline: int) -> StepRecord:
    return StepRecord(
        instance_pk=pk,
        key=f"wait:1:{name}",
        seq=seq,
        kind="wait",
        name=f"{name}-1",
        status="waiting",
        start=NOW,
        wake_at=deadline,
        event_type=event_type,
    )


async def claim_one(store: Store, owner: str = "e1", now: int = NOW) -> InstanceRecord:
    [(instance, _)] = await store.claim_runnable(now, 1, owner=owner, lease_until=now + LEASE)
    return instance


async def steps_by_key(store: Store, pk: int) -> dict[str, StepRecord]:
    return {s.key: s for s in await store.load_steps(pk)}


# -- workflows and versions --------------------------------------------------------------------
async def test_save_workflow_makes_a_version_only_when_something_changed(store: Store) -> None:
    first, v1 = await store.save_workflow(
        "acct", "flow", class_name="Flow", script_name="m", code_hash="a",
        settings=WorkflowSettings(), now=NOW,
    )  # fmt: skip
    again, v_same = await store.save_workflow(
        "acct", "flow", class_name="Flow", script_name="m", code_hash="a",
        settings=WorkflowSettings(), now=NOW + 1,
    )  # fmt: skip
    assert (again.id, v_same.id) == (first.id, v1.id)
    _, v2 = await store.save_workflow(
        "acct", "flow", class_name="Flow", script_name="m", code_hash="b",
        settings=WorkflowSettings(), now=NOW + 2,
    )  # fmt: skip
    _, v3 = await store.save_workflow(
        "acct", "flow", class_name="Flow", script_name="m", code_hash="b",
        settings=WorkflowSettings(step_limit=5), now=NOW + 3,
    )  # fmt: skip
    _, v4 = await store.save_workflow(
        "acct", "flow", class_name="Flow", script_name="m", code_hash="b",
        settings=WorkflowSettings(step_limit=5), now=NOW + 3, force_new_version=True,
    )  # fmt: skip
    assert len({v1.id, v2.id, v3.id, v4.id}) == 4
    current = await store.get_workflow("acct", "flow")
    assert current is not None and current.version_id == v4.id and current.step_limit == 5
    assert current.modified_on == NOW + 3 and current.created_on == NOW
    versions, total = await store.list_versions(first.id, offset=0, limit=10)
    assert total == 4
    assert [v.id for v in versions] == [v4.id, v3.id, v2.id, v1.id]  # newest first, ties too
    assert await store.get_version(v2.id) == v2
    assert await store.get_version("nope") is None
    assert await store.get_workflow_by_id(first.id) == current


async def test_save_workflow_writes_its_schedules_with_it_or_nothing(store: Store) -> None:
    """Schedules are written in the workflow's own transaction: past the account's limit,
    neither a new workflow nor a change to one is left behind; the same expressions again
    keep their next firings."""

    async def save(name: str, code: str, crons: list[str], now: int = NOW):
        return await store.save_workflow(
            "acct", name, class_name="Flow", script_name="m", code_hash=code,
            settings=WorkflowSettings(), now=now, force_new_version=True,
            schedules=[(c, now + 60_000) for c in crons], schedule_limit=3,
        )  # fmt: skip

    flow, v1 = await save("flow", "a", ["1 * * * *", "2 * * * *"])
    assert [(s.cron, s.next_fire_at) for s in await store.list_schedules([flow.id])] == [
        ("1 * * * *", NOW + 60_000),
        ("2 * * * *", NOW + 60_000),
    ]
    with pytest.raises(InvalidRequest):
        await save("other", "a", ["3 * * * *", "4 * * * *"])
    assert await store.get_workflow("acct", "other") is None
    with pytest.raises(InvalidRequest):
        await save("flow", "b", ["1 * * * *", "2 * * * *", "3 * * * *", "4 * * * *"])
    unchanged = await store.get_workflow("acct", "flow")
    assert unchanged is not None and unchanged.version_id == v1.id
    assert len(await store.list_schedules([flow.id])) == 2

    await save("flow", "c", ["2 * * * *", "1 * * * *"], now=NOW + 5)
    assert {s.next_fire_at for s in await store.list_schedules([flow.id])} == {NOW + 60_000}
    await save("flow", "d", ["5 * * * *"], now=NOW + 5)
    assert [s.cron for s in await store.list_schedules([flow.id])] == ["5 * * * *"]


async def test_concurrent_registration_from_two_processes_makes_one_workflow(
    open_store: OpenStore,
) -> None:
    stores = [await open_store(), await open_store()]
    results = await asyncio.gather(*(make_workflow(stores[n % 2]) for n in range(8)))
    assert len({w.id for w in results}) == 1
    assert len({w.version_id for w in results}) == 1
    _, total = await stores[0].list_versions(results[0].id, offset=0, limit=10)
    assert total == 1


async def test_list_workflows_searches_without_case_and_orders_by_name(store: Store) -> None:
    for name in ("beta", "Alpha", "gamma_1", "gammax1"):
        await make_workflow(store, name)
    page, total = await store.list_workflows("acct", offset=0, limit=10, search=None)
    assert [w.name for w in page] == ["Alpha", "beta", "gamma_1", "gammax1"]  # byte order
    assert total == 4
    found, total = await store.list_workflows("acct", offset=0, limit=10, search="ALP")
    assert [w.name for w in found] == ["Alpha"] and total == 1
    found, _ = await store.list_workflows("acct", offset=0, limit=10, search="a_")
    assert [w.name for w in found] == ["gamma_1"]  # "_" is literal, not a wildcard
    page, total = await store.list_workflows("acct", offset=1, limit=2, search=None)
    assert [w.name for w in page] == ["beta", "gamma_1"] and total == 4
    assert await store.list_workflows("other", offset=0, limit=10, search=None) == ([], 0)


async def test_delete_workflow_takes_its_instances_and_versions(store: Store) -> None:
    workflow = await make_workflow(store)
    [instance] = await add(store, workflow, "a")
    assert await store.start_terminator(workflow.id, "job", lease_until=NOW + LEASE)
    flagged = await store.get_workflow_by_id(workflow.id)
    assert flagged is not None and flagged.terminator_running is True
    await store.delete_workflow(workflow.id)
    assert await store.get_workflow_by_id(workflow.id) is None
    assert await store.get_instance_by_pk(instance.pk) is None
    assert await store.get_version(workflow.version_id) is None


@pytest.mark.parametrize("skip_existing", [False, True])
async def test_instances_of_a_workflow_deleted_meanwhile_are_refused_as_not_found(
    store: Store, skip_existing: bool
) -> None:
    """A create that looked the workflow up just before a delete took it: not found, as the
    API would have answered a moment later, not a foreign key's error."""
    workflow = await make_workflow(store)
    await store.delete_workflow(workflow.id)
    with pytest.raises(WorkflowNotFound):
        await store.insert_instances([new(workflow, "a")], skip_existing=skip_existing, now=NOW)


async def set_jobs(store: Store) -> list[tuple[str, str]]:
    """Every job set, whoever holds it (taking them all, as at a time far ahead)."""
    far = NOW + 1_000 * LEASE
    return sorted(await store.take_terminator_jobs(now=far, lease_until=far))


async def test_a_terminate_all_job_is_set_once_and_ended_only_by_itself(store: Store) -> None:
    workflow = await make_workflow(store)
    other = await make_workflow(store, "other")
    assert await set_jobs(store) == []
    assert await store.start_terminator(workflow.id, "first", lease_until=NOW + LEASE)
    # one job at a time
    assert not await store.start_terminator(workflow.id, "second", lease_until=NOW + LEASE)
    assert await set_jobs(store) == [(workflow.id, "first")]
    flagged = await store.get_workflow_by_id(workflow.id)
    assert flagged is not None and flagged.terminator_running is True
    unflagged = await store.get_workflow_by_id(other.id)
    assert unflagged is not None and unflagged.terminator_running is False

    await store.end_terminator(workflow.id, "second")  # not the job that is set: no change
    assert await set_jobs(store) == [(workflow.id, "first")]
    await store.end_terminator(workflow.id, "first")
    assert await set_jobs(store) == []
    ended = await store.get_workflow_by_id(workflow.id)
    assert ended is not None and ended.terminator_running is False
    assert await store.start_terminator(workflow.id, "second", lease_until=NOW + LEASE)


async def test_a_terminate_all_job_is_taken_up_once_its_lease_lapses_or_is_given_back(
    store: Store,
) -> None:
    workflow = await make_workflow(store)
    other = await make_workflow(store, "other")
    assert await store.start_terminator(workflow.id, "a", lease_until=NOW + LEASE)
    assert await store.start_terminator(other.id, "b", lease_until=NOW + LEASE)

    assert await store.take_terminator_jobs(now=NOW, lease_until=NOW + LEASE) == []  # held
    await store.hold_terminator_jobs([(workflow.id, "a")], lease_until=NOW + 2 * LEASE)
    # At NOW + LEASE only "b" has lapsed ("a" was renewed); taken, it is held by the taker.
    later = NOW + LEASE
    assert await store.take_terminator_jobs(now=later, lease_until=later + LEASE) == [
        (other.id, "b")
    ]
    assert await store.take_terminator_jobs(now=later, lease_until=later + LEASE) == []

    # Given back (a stop), a job is free at once; a renewal of a job that is not the one
    # set changes nothing.
    await store.hold_terminator_jobs([(workflow.id, "a")], lease_until=None)
    await store.hold_terminator_jobs([(other.id, "old")], lease_until=None)
    assert await store.take_terminator_jobs(now=later, lease_until=later + LEASE) == [
        (workflow.id, "a")
    ]

    # An ended job is not taken, and a job set afterwards starts with its own lease.
    await store.end_terminator(other.id, "b")
    assert await store.start_terminator(other.id, "c", lease_until=later + LEASE)
    assert await store.take_terminator_jobs(now=later, lease_until=later + LEASE) == []
    assert await set_jobs(store) == sorted([(workflow.id, "a"), (other.id, "c")])


# -- instances -----------------------------------------------------------------------------------
async def test_insert_instances_assigns_pks_and_sets_triggered_on(store: Store) -> None:
    workflow = await make_workflow(store)
    inserted = await add(store, workflow, "a", "b", "c")
    assert [i.id for i in inserted] == ["a", "b", "c"]
    assert len({i.pk for i in inserted}) == 3 and all(i.pk > 0 for i in inserted)
    got = await store.get_instance(workflow.id, "b")
    assert got is not None and got.pk == inserted[1].pk and got.params == '{"n": 1}'
    assert got.status == "queued" and got.generation == 0 and got.lease_owner is None
    assert await store.get_instance_by_pk(inserted[2].pk) == await store.get_instance(
        workflow.id, "c"
    )
    touched = await store.get_workflow_by_id(workflow.id)
    assert touched is not None and touched.triggered_on == NOW


async def test_an_instance_inserted_claimed_is_running_for_its_engine(store: Store) -> None:
    workflow = await make_workflow(store)
    claimed = dict(
        status="running", started_on=NOW, generation=1, lease_owner="e", lease_expires=NOW + LEASE
    )
    (run,) = await add(store, workflow, "a", **claimed)
    await add(store, workflow, "b")
    got = await store.get_instance(workflow.id, "a")
    assert got is not None and got.pk == run.pk
    assert (got.status, got.started_on, got.generation) == ("running", NOW, 1)
    assert (got.lease_owner, got.lease_expires) == ("e", NOW + LEASE)
    # The scheduler's claim passes it by; its runner's writes are fenced by generation 1.
    taken = await store.claim_runnable(NOW, 10, owner="other", lease_until=NOW + 9 * LEASE)
    assert [i.id for i, _ in taken] == ["b"]
    await store.save_step(run.pk, 1, do_step(run.pk, "s", 1), now=NOW)
    with pytest.raises(StaleRunError):
        await store.save_step(run.pk, 0, do_step(run.pk, "t", 2), now=NOW)
    # Its engine gone, it is taken back like any claimed instance.
    later = NOW + LEASE + 1
    assert await store.recover_interrupted(later, lapsed_before=later) == 1
    again = await claim_one(store, "new", now=later)
    assert again.pk == run.pk and again.generation == 2


async def test_insert_of_an_existing_id_raises_and_inserts_nothing(store: Store) -> None:
    workflow = await make_workflow(store)
    await add(store, workflow, "a")
    with pytest.raises(InstanceAlreadyExists, match="'a'"):
        await add(store, workflow, "new", "a")
    assert await store.get_instance(workflow.id, "new") is None
    with pytest.raises(InstanceAlreadyExists):
        await add(store, workflow, "x", "x")
    assert await store.get_instance(workflow.id, "x") is None


async def test_insert_skipping_existing_leaves_them_out(store: Store) -> None:
    workflow = await make_workflow(store)
    await add(store, workflow, "a")
    records = [new(workflow, i) for i in ("a", "b", "b", "c")]
    inserted = await store.insert_instances(records, skip_existing=True, now=NOW)
    assert [i.id for i in inserted] == ["b", "c"]
    assert await store.count_instances(workflow.id, InstanceFilter()) == 3
    for record in inserted:
        got = await store.get_instance(workflow.id, record.id)
        assert got is not None and got.pk == record.pk


async def test_inserted_pks_are_the_stored_ones_after_the_newest_is_deleted(store: Store) -> None:
    # SQLite gives a new row the largest pk plus one: deleting the newest frees its pk.
    workflow = await make_workflow(store)
    first = await add(store, workflow, *(f"a{n}" for n in range(5)))
    await store.delete_instances([first[-1].pk])
    inserted = await add(store, workflow, *(f"b{n}" for n in range(250)))
    assert len({i.pk for i in inserted}) == 250
    for record in [*first[:-1], *inserted]:
        got = await store.get_instance(workflow.id, record.id)
        assert got is not None and got.pk == record.pk


async def test_an_expired_id_can_be_used_again(store: Store) -> None:
    workflow = await make_workflow(store)
    [old] = await add(store, workflow, "a")
    claimed = await claim_one(store)
    await store.finish(
        old.pk, claimed.generation, status="complete", output="1", error_name=None,
        error_message=None, steps=[], now=NOW,
    )  # fmt: skip
    finished = await store.get_instance_by_pk(old.pk)
    assert finished is not None and finished.expires_on == NOW + DEFAULT_RETENTION_MS
    later = NOW + DEFAULT_RETENTION_MS
    [again] = await store.insert_instances([new(workflow, "a")], skip_existing=False, now=later)
    fresh = await store.get_instance(workflow.id, "a")
    assert fresh is not None and fresh.pk == again.pk
    assert (fresh.status, fresh.expires_on, fresh.generation) == ("queued", None, 0)


async def test_list_and_count_instances_filter_order_and_page(store: Store) -> None:
    workflow = await make_workflow(store)
    for n in range(6):
        await add(store, workflow, f"i{n}", created=NOW + n // 2)
    everything = await store.list_instances(
        workflow.id, InstanceFilter(), descending=False, limit=10
    )
    assert [i.id for i in everything] == [f"i{n}" for n in range(6)]
    newest = await store.list_instances(workflow.id, InstanceFilter(), descending=True, limit=2)
    assert [i.id for i in newest] == ["i5", "i4"]
    after = (newest[-1].created_on, newest[-1].pk)
    rest = await store.list_instances(
        workflow.id, InstanceFilter(), descending=True, limit=10, after=after
    )
    assert [i.id for i in rest] == ["i3", "i2", "i1", "i0"]
    forward = await store.list_instances(
        workflow.id, InstanceFilter(), descending=False, limit=2, offset=1, after=(NOW, 0)
    )
    assert [i.id for i in forward] == ["i1", "i2"]
    window = InstanceFilter(created_from=NOW + 1, created_to=NOW + 1)
    assert [
        i.id for i in await store.list_instances(workflow.id, window, descending=False, limit=9)
    ] == ["i2", "i3"]
    await claim_one(store)
    running = InstanceFilter(status="running")
    assert await store.count_instances(workflow.id, running) == 1
    assert await store.count_instances(workflow.id, InstanceFilter()) == 6
    counts = await store.count_instances_by_status([workflow.id, "none"], live_at=NOW)
    assert counts == {workflow.id: {"queued": 5, "running": 1}, "none": {}}
    assert await store.count_instances_by_status([], live_at=NOW) == {}


# -- claiming, leases, recovery ------------------------------------------------------------------
async def test_claim_marks_running_bumps_generation_and_returns_steps(store: Store) -> None:
    workflow = await make_workflow(store)
    await add(store, workflow, "a", "b")
    first = await claim_one(store, "e1")
    await store.save_step(first.pk, first.generation, do_step(first.pk, "s", 1), now=NOW)
    await store.suspend(
        first.pk, first.generation, status="waiting", wake_at=NOW + 5, wake_kind="timer",
        steps=[], now=NOW,
    )  # fmt: skip
    claimed = await store.claim_runnable(NOW + 10, 5, owner="e2", lease_until=NOW + 99)
    assert [i.id for i, _ in claimed] == ["a", "b"]  # the due sleeper first, then the queue
    again, steps = claimed[0]
    assert again.status == "running" and again.generation == first.generation + 1
    assert (again.lease_owner, again.lease_expires) == ("e2", NOW + 99)
    assert again.started_on == NOW and again.wake_at is None and again.wake_kind is None
    assert [s.key for s in steps] == ["do:1:s"] and steps[0].attempts == [Attempt(start=NOW)]
    assert claimed[1][0].generation == 1 and claimed[1][1] == []
    assert await store.claim_runnable(NOW + 10, 5, owner="e2", lease_until=NOW + 99) == []


async def test_a_claim_leaves_large_outputs_in_the_store_with_their_size(store: Store) -> None:
    workflow = await make_workflow(store)
    await add(store, workflow, "a")
    first = await claim_one(store)
    large = '"' + "é" * (DEFERRED_OUTPUT_BYTES // 2) + '"'  # over it in bytes, not characters
    edge = '"' + "x" * (DEFERRED_OUTPUT_BYTES - 2) + '"'
    for seq, (name, output) in enumerate([("small", "1"), ("large", large), ("edge", edge)], 1):
        done = do_step(first.pk, name, seq, status="complete", output=output)
        await store.save_step(first.pk, first.generation, done, now=NOW)
    await store.suspend(
        first.pk, first.generation, status="waiting", wake_at=NOW + 5, wake_kind="timer",
        steps=[], now=NOW,
    )  # fmt: skip

    [(again, steps)] = await store.claim_runnable(NOW + 10, 5, owner="e2", lease_until=NOW + 99)
    by_key = {s.key: s for s in steps}
    assert (by_key["do:1:small"].output, by_key["do:1:small"].deferred_bytes) == ("1", None)
    assert (by_key["do:1:edge"].output, by_key["do:1:edge"].deferred_bytes) == (edge, None)
    deferred = by_key["do:1:large"]
    assert (deferred.output, deferred.deferred_bytes) == (None, len(large.encode()))
    assert await store.step_output(again.pk, "do:1:large") == large
    assert await store.step_output(again.pk, "do:1:none") is None
    # What the API reads is whole.
    assert (await steps_by_key(store, again.pk))["do:1:large"].output == large


async def test_an_event_claim_leaves_large_outputs_in_the_store(store: Store) -> None:
    run, wait = await park_waiting_for(store, await make_workflow(store), "go")
    payload = '"' + "x" * DEFERRED_OUTPUT_BYTES + '"'
    woken = await store.buffer_event(
        run.pk, "go", payload, now=NOW + 2, owner="e2", lease_until=NOW + LEASE
    )
    assert woken.claimed is not None
    [done] = woken.claimed[1]
    assert (done.key, done.status, done.output) == (wait.key, "complete", None)
    assert done.deferred_bytes == len(payload)
    assert await store.step_output(run.pk, wait.key) == payload


async def test_claim_takes_due_sleepers_before_the_queue_and_respects_limit(store: Store) -> None:
    workflow = await make_workflow(store)
    await add(store, workflow, "sleeper", "later")
    for wake in (NOW + 5, NOW + 1_000):
        instance = await claim_one(store)
        await store.suspend(
            instance.pk, instance.generation, status="waiting", wake_at=wake,
            wake_kind="timer", steps=[], now=NOW,
        )  # fmt: skip
    await add(store, workflow, "q1", "q2")
    got = await store.claim_runnable(NOW + 10, 2, owner="e", lease_until=NOW + LEASE)
    assert [i.id for i, _ in got] == ["sleeper", "q1"]
    assert await store.next_wake_at() == NOW + 1_000
    assert await store.next_wake_at(("event",)) is None
    assert await store.next_wake_at(("timer", "event")) == NOW + 1_000


async def test_two_engines_never_claim_the_same_instance(open_store: OpenStore) -> None:
    one, two = await open_store(), await open_store()
    workflow = await make_workflow(one)
    total = 300
    for start in range(0, total, 100):
        await add(one, workflow, *(f"i{n}" for n in range(start, start + 100)))

    async def claimer(store: Store, owner: str) -> list[int]:
        mine: list[int] = []
        while True:
            got = await store.claim_runnable(NOW, 7, owner=owner, lease_until=NOW + LEASE)
            if not got:
                return mine
            mine += [i.pk for i, _ in got]
            await asyncio.sleep(0)

    results = await asyncio.gather(*(claimer(s, f"e{n}") for n, s in enumerate([one, two] * 3)))
    claimed = [pk for pks in results for pk in pks]
    assert len(claimed) == total and len(set(claimed)) == total
    assert await one.count_instances(workflow.id, InstanceFilter(status="running")) == total


async def test_renew_leases_extends_only_the_owners_active_instances(store: Store) -> None:
    workflow = await make_workflow(store)
    await add(store, workflow, "a", "b", "c")
    a = await claim_one(store, "e1")
    b = await claim_one(store, "e1")
    await claim_one(store, "e2")
    await store.update_instance(b.pk, expect=("running",), changes={"status": "waitingForPause"})
    assert await store.renew_leases("e1", NOW + 500_000) == {a.pk, b.pk}
    for pk in (a.pk, b.pk):
        row = await store.get_instance_by_pk(pk)
        assert row is not None and row.lease_expires == NOW + 500_000
    other = await store.get_instance(workflow.id, "c")
    assert other is not None and other.lease_expires == NOW + LEASE
    assert await store.renew_leases("nobody", NOW) == set()


async def test_pausing_among_names_the_instances_asked_to_pause(store: Store) -> None:
    """What an engine reads at its lease renewal, for the pause notices it may have missed."""
    workflow = await make_workflow(store)
    await add(store, workflow, "a", "b", "c")
    a = await claim_one(store, "e1")
    b = await claim_one(store, "e1")
    c = await claim_one(store, "e2")
    for pk in (b.pk, c.pk):
        await store.update_instance(pk, expect=("running",), changes={"status": "waitingForPause"})
    assert await store.pausing_among([a.pk, b.pk]) == {b.pk}
    assert await store.pausing_among([]) == set()


async def test_a_lease_that_lapsed_is_not_renewed(store: Store) -> None:
    """Another engine may have taken the instance over already: the renewal says so by
    leaving it out, and its run stops starting attempts."""
    workflow = await make_workflow(store)
    await add(store, workflow, "a", "b")
    a = await claim_one(store, "e1")
    b = await claim_one(store, "e1", now=NOW + 10_000)

    renewed = await store.renew_leases("e1", NOW + 90_000, [a.pk, b.pk], valid_at=NOW + LEASE + 1)
    assert renewed == {b.pk}
    row = await store.get_instance_by_pk(a.pk)
    assert row is not None and row.lease_expires == NOW + LEASE


async def test_a_claimed_instance_released_is_queued_for_any_engine(store: Store) -> None:
    workflow = await make_workflow(store)
    await add(store, workflow, "a")
    a = await claim_one(store, "e1")

    await store.release(a.pk, a.generation, now=NOW + 5)
    row = await store.get_instance_by_pk(a.pk)
    assert row is not None and (row.status, row.lease_owner) == ("queued", None)
    assert (await claim_one(store, "e2", now=NOW + 6)).pk == a.pk
    await store.release(a.pk, a.generation, now=NOW + 7)  # an older generation: no change
    row = await store.get_instance_by_pk(a.pk)
    assert row is not None and (row.status, row.lease_owner) == ("running", "e2")


async def test_a_released_instance_asked_to_pause_is_paused(store: Store) -> None:
    """A pause written between the claim and the release (the engine could not load the
    class): no step runs, so the instance is at a step boundary and pauses there, as a
    lapsed lease's would; it was left waitingForPause until its lease lapsed."""
    workflow = await make_workflow(store)
    await add(store, workflow, "a")
    a = await claim_one(store, "e1")
    await store.update_instance(a.pk, expect=("running",), changes={"status": "waitingForPause"})

    await store.release(a.pk, a.generation, now=NOW + 5)
    row = await store.get_instance_by_pk(a.pk)
    assert row is not None
    assert (row.status, row.paused_on, row.lease_owner, row.lease_expires) == (
        "paused",
        NOW + 5,
        None,
        None,
    )
    assert await store.claim_runnable(NOW + 6, 10, owner="e2", lease_until=NOW + LEASE) == []


async def test_a_claim_skips_the_versions_it_is_told_to(store: Store) -> None:
    workflow = await make_workflow(store)
    await add(store, workflow, "a", "b")

    taken = await store.claim_runnable(
        NOW, 10, owner="e1", lease_until=NOW + LEASE, skip=[workflow.version_id]
    )
    assert taken == []
    assert len(await store.claim_runnable(NOW, 10, owner="e1", lease_until=NOW + LEASE)) == 2


async def test_recover_interrupted_takes_back_only_lapsed_leases(store: Store) -> None:
    workflow = await make_workflow(store)
    await add(store, workflow, "run", "pause", "fresh")
    run = await claim_one(store, "dead", now=NOW)
    pause = await claim_one(store, "dead", now=NOW)
    await claim_one(store, "alive", now=NOW + 20_000)
    await store.update_instance(
        pause.pk, expect=("running",), changes={"status": "waitingForPause"}
    )
    later = NOW + LEASE + 1
    assert await store.recover_interrupted(later, lapsed_before=later) == 2
    queued = await store.get_instance_by_pk(run.pk)
    assert queued is not None and queued.status == "queued" and queued.lease_owner is None
    paused = await store.get_instance_by_pk(pause.pk)
    assert paused is not None and (paused.status, paused.paused_on) == ("paused", later)
    alive = await store.get_instance(workflow.id, "fresh")
    assert alive is not None and alive.status == "running" and alive.lease_owner == "alive"
    assert await store.recover_interrupted(later, lapsed_before=later) == 0
    again = await claim_one(store, "new", now=later)
    assert again.pk == run.pk and again.generation == run.generation + 1


# -- a runner's writes ---------------------------------------------------------------------------
async def test_one_step_and_the_count_of_steps_are_read_alone(store: Store) -> None:
    """What ``/step`` and ``simple=true`` read: one step by its key, and how many steps an
    instance has (its termination mark left out), without loading every step's output."""
    workflow = await make_workflow(store)
    await add(store, workflow, "a")
    run = await claim_one(store)
    first, second = do_step(run.pk, "s", 1), do_step(run.pk, "t", 2)
    for step in (first, second):
        await store.save_step(run.pk, run.generation, step, now=NOW)
    await store.terminate([run.pk], now=NOW + 6)

    assert await store.load_step(run.pk, first.key) == first
    assert await store.load_step(run.pk, "do:9:nothing") is None
    assert {s.kind for s in await store.load_steps(run.pk)} == {"do", "termination"}
    assert await store.count_steps(run.pk) == 2


async def test_steps_are_read_with_their_outputs_cut_for_a_preview(store: Store) -> None:
    """The describe view shows the first characters of each output: the store reads no more
    of them (an instance's outputs may be many MiB)."""
    workflow = await make_workflow(store)
    await add(store, workflow, "a")
    run = await claim_one(store)
    long, short = do_step(run.pk, "long", 1), do_step(run.pk, "short", 2)
    long.status, long.output = "complete", '"' + "é" * 5_000 + '"'
    short.status, short.output = "complete", '"ok"'
    for step in (long, short):
        await store.save_step(run.pk, run.generation, step, now=NOW)

    cut = await store.load_steps(run.pk, output_chars=10)
    assert [s.output for s in cut] == ['"' + "é" * 9, '"ok"']
    assert [s.output for s in await store.load_steps(run.pk)] == [long.output, short.output]


async def test_save_step_upserts_and_is_fenced_by_generation(store: Store) -> None:
    workflow = await make_workflow(store)
    await add(store, workflow, "a")
    run = await claim_one(store)
    step = do_step(run.pk, "s", 1)
    await store.save_step(run.pk, run.generation, step, now=NOW)
    step.status, step.output, step.end = "complete", '{"ok":true}', NOW + 5
    step.attempts[0].end, step.attempts[0].success = NOW + 5, True
    await store.save_step(run.pk, run.generation, step, now=NOW + 5)
    assert await store.load_steps(run.pk) == [step]
    await store.terminate([run.pk], now=NOW + 6)
    late = do_step(run.pk, "late", 2)
    with pytest.raises(StaleRunError):
        await store.save_step(run.pk, run.generation, late, now=NOW + 7)
    assert "do:1:late" not in await steps_by_key(store, run.pk)
    await store.delete_instances([run.pk])
    with pytest.raises(StaleRunError):
        await store.save_step(run.pk, run.generation + 1, late, now=NOW + 8)


async def test_queued_steps_land_in_order_with_later_awaited_writes(store: Store) -> None:
    workflow = await make_workflow(store)
    await add(store, workflow, *(f"i{n}" for n in range(20)))
    runs = [i for i, _ in await store.claim_runnable(NOW, 20, owner="e", lease_until=NOW + 1)]
    for round_ in range(5):
        for run in runs:
            started = do_step(run.pk, f"s{round_}", round_ + 1)
            assert store.queue_step(run.pk, run.generation, started, now=NOW) is None
            if round_ % 2:
                await asyncio.sleep(0)  # let some flushes start before the awaited write
            done = do_step(run.pk, f"s{round_}", round_ + 1, status="complete", output="1")
            await store.save_step(run.pk, run.generation, done, now=NOW)
    for run in runs:
        steps = await store.load_steps(run.pk)
        assert [(s.key, s.status) for s in steps] == [(f"do:1:s{n}", "complete") for n in range(5)]


@pytest.mark.parametrize("count", [3, 9, 300])
async def test_many_runners_writes_in_one_turn_are_each_fenced(store: Store, count: int) -> None:
    # One loop turn's writes of many runners commit together (on SQLite, as one statement per
    # kind of write); a runner that moved on fails alone, and nothing of it is written.
    workflow = await make_workflow(store)
    await add(store, workflow, *(f"i{n}" for n in range(count)))
    runs = [i for i, _ in await store.claim_runnable(NOW, count, owner="e", lease_until=NOW + 1)]
    stale = runs[count // 2]
    await store.terminate([stale.pk], now=NOW)
    steps = [do_step(r.pk, "s", 1, status="complete", output=str(r.pk)) for r in runs]
    saved = await asyncio.gather(
        *(
            store.save_step(r.pk, r.generation, s, now=NOW)
            for r, s in zip(runs, steps, strict=True)
        ),
        return_exceptions=True,
    )
    assert [type(x) for x in saved] == [StaleRunError if r is stale else type(None) for r in runs]
    for run, step in zip(runs, steps, strict=True):
        if run is not stale:
            assert await store.load_steps(run.pk) == [step]
    assert "do:1:s" not in await steps_by_key(store, stale.pk)
    ends = [
        store.finish(
            r.pk,
            r.generation,
            status="complete",
            output=str(r.pk),
            error_name=None,
            error_message=None,
            steps=[],
            now=NOW + 2,
        )
        for r in runs
    ]
    ended = await asyncio.gather(*ends, return_exceptions=True)
    assert [type(x) for x in ended] == [StaleRunError if r is stale else type(None) for r in runs]
    for run in runs:
        done = await store.get_instance_by_pk(run.pk)
        assert done is not None
        if run is stale:
            assert done.status == "terminated"
        else:
            assert (done.status, done.output, done.ended_on) == ("complete", str(run.pk), NOW + 2)
            assert done.expires_on == NOW + 2 + DEFAULT_RETENTION_MS and done.lease_owner is None


@pytest.mark.parametrize("count", [2, 9])
async def test_step_and_end_values_like_nulls_are_kept_apart_from_nulls(
    store: Store, count: int
) -> None:
    # SQLite writes NULLs of these statements as a marker number: text and numbers that look
    # like it, and empty text, must come back as they went in; NULLs as NULLs.
    workflow = await make_workflow(store)
    await add(store, workflow, *(f"i{n}" for n in range(count)))
    runs = [i for i, _ in await store.claim_runnable(NOW, count, owner="e", lease_until=NOW + 1)]
    odd = dict(status="errored", output="0.5", error_name="0", error_message="", wake_at=0)
    steps = [
        do_step(r.pk, "s", 1, **(odd if n % 2 else dict(status="complete", output=None)))
        for n, r in enumerate(runs)
    ]
    await asyncio.gather(
        *(store.save_step(r.pk, r.generation, s, now=NOW) for r, s in zip(runs, steps, strict=True))
    )
    for run, step in zip(runs, steps, strict=True):
        assert await store.load_steps(run.pk) == [step]
    ends = [
        store.finish(
            r.pk, r.generation, status="errored" if n % 2 else "complete",
            output=None if n % 2 else "0.5", error_name="0.5" if n % 2 else None,
            error_message="" if n % 2 else None, steps=[], now=NOW + 2,
        )
        for n, r in enumerate(runs)
    ]  # fmt: skip
    await asyncio.gather(*ends)
    for n, run in enumerate(runs):
        done = await store.get_instance_by_pk(run.pk)
        assert done is not None
        expected = (None, "0.5", "") if n % 2 else ("0.5", None, None)
        assert (done.output, done.error_name, done.error_message) == expected


async def test_queued_steps_are_written_without_an_awaited_write(store: Store) -> None:
    workflow = await make_workflow(store)
    await add(store, workflow, "a", "b")
    a = await claim_one(store)
    b = await claim_one(store)
    store.queue_step(a.pk, a.generation, do_step(a.pk, "s", 1), now=NOW)
    store.queue_step(b.pk, b.generation - 1, do_step(b.pk, "stale", 1), now=NOW)
    for _ in range(200):
        if await store.load_steps(a.pk):
            break
        await asyncio.sleep(0.01)
    assert [s.key for s in await store.load_steps(a.pk)] == ["do:1:s"]
    await store.finish(
        b.pk, b.generation, status="complete", output=None, error_name=None,
        error_message=None, steps=[], now=NOW,
    )  # fmt: skip
    assert await store.load_steps(b.pk) == []  # the stale runner's queued write is dropped


async def test_suspend_parks_with_pending_steps_and_clears_the_lease(store: Store) -> None:
    workflow = await make_workflow(store)
    await add(store, workflow, "a")
    run = await claim_one(store)
    sleep = StepRecord(
        run.pk, "sleep:5:1:nap", 1, "sleep", "nap-1", "waiting", NOW, wake_at=NOW + 5
    )
    woken = await store.suspend(
        run.pk, run.generation, status="waiting", wake_at=NOW + 5, wake_kind="timer",
        steps=[sleep], now=NOW + 1,
    )  # fmt: skip
    assert woken is False
    parked = await store.get_instance_by_pk(run.pk)
    assert parked is not None
    assert (parked.status, parked.wake_at, parked.wake_kind) == ("waiting", NOW + 5, "timer")
    assert (parked.lease_owner, parked.lease_expires, parked.modified_on) == (None, None, NOW + 1)
    assert await store.load_steps(run.pk) == [sleep]
    with pytest.raises(StaleRunError):
        await store.suspend(
            run.pk, run.generation - 1, status="waiting", wake_at=1, wake_kind="timer",
            steps=[], now=NOW,
        )  # fmt: skip


async def test_suspend_with_an_event_already_buffered_parks_due_at_once(store: Store) -> None:
    workflow = await make_workflow(store)
    await add(store, workflow, "a", "b")
    run = await claim_one(store)
    await store.buffer_event(run.pk, "approval", '{"ok":1}', now=NOW)
    wait = wait_step(run.pk, "w", 1, "approval", NOW + 60_000)
    woken = await store.suspend(
        run.pk, run.generation, status="waiting", wake_at=NOW + 60_000, wake_kind="event",
        steps=[wait], now=NOW + 2,
    )  # fmt: skip
    assert woken is True
    parked = await store.get_instance_by_pk(run.pk)
    assert parked is not None and parked.wake_at == NOW + 2
    other = await claim_one(store)
    await store.buffer_event(other.pk, "unrelated", "1", now=NOW)
    wait = wait_step(other.pk, "w", 1, "approval", NOW + 60_000)
    assert not await store.suspend(
        other.pk, other.generation, status="waiting", wake_at=NOW + 60_000,
        wake_kind="event", steps=[wait], now=NOW,
    )  # fmt: skip


async def test_suspend_as_paused_records_when(store: Store) -> None:
    workflow = await make_workflow(store)
    await add(store, workflow, "a")
    run = await claim_one(store)
    await store.update_instance(run.pk, expect=("running",), changes={"status": "waitingForPause"})
    assert not await store.suspend(
        run.pk, run.generation, status="paused", wake_at=None, wake_kind=None, steps=[],
        now=NOW + 3,
    )  # fmt: skip
    paused = await store.get_instance_by_pk(run.pk)
    assert paused is not None and (paused.status, paused.paused_on) == ("paused", NOW + 3)


async def test_suspend_as_paused_after_a_resume_parks_due_at_once(store: Store) -> None:
    """The run was asked to pause and the pause was taken back (a resume, whose notice did
    not reach its engine): parked paused, the instance stayed so, though the resume had
    answered "running". It is due at once, and the answer says to look now."""
    workflow = await make_workflow(store)
    await add(store, workflow, "a")
    run = await claim_one(store)
    assert await store.suspend(
        run.pk, run.generation, status="paused", wake_at=None, wake_kind=None, steps=[],
        now=NOW + 3,
    )  # fmt: skip
    parked = await store.get_instance_by_pk(run.pk)
    assert parked is not None
    assert (parked.status, parked.wake_at, parked.paused_on) == ("waiting", NOW + 3, None)


async def test_suspend_as_paused_of_an_instance_paused_meanwhile_keeps_it_paused(
    store: Store,
) -> None:
    """A late park of a run whose instance another engine recovered as paused (a stalled
    engine, past its lease): only a resume makes a park as paused one as waiting."""
    workflow = await make_workflow(store)
    await add(store, workflow, "a")
    run = await claim_one(store)
    await store.update_instance(
        run.pk, expect=("running",), changes={"status": "paused", "paused_on": NOW + 1}
    )
    assert not await store.suspend(
        run.pk, run.generation, status="paused", wake_at=None, wake_kind=None, steps=[],
        now=NOW + 3,
    )  # fmt: skip
    parked = await store.get_instance_by_pk(run.pk)
    assert parked is not None and parked.status == "paused"


@pytest.mark.parametrize(
    ("status", "retention"), [("complete", "success_retention_ms"), ("errored", None)]
)
async def test_finish_records_the_end_and_the_expiry(
    store: Store, status: str, retention: str | None
) -> None:
    workflow = await make_workflow(store)
    await add(store, workflow, "a", success_retention_ms=1_000)
    run = await claim_one(store)
    last = do_step(run.pk, "s", 1, status="complete")
    await store.finish(
        run.pk, run.generation, status=status, output='{"x":1}', error_name="E",
        error_message="m", steps=[last], now=NOW + 9,
    )  # fmt: skip
    done = await store.get_instance_by_pk(run.pk)
    assert done is not None
    assert (done.status, done.output, done.error_name, done.error_message) == (
        status, '{"x":1}', "E", "m",
    )  # fmt: skip
    assert done.ended_on == NOW + 9 and done.lease_owner is None and done.wake_at is None
    assert done.expires_on == NOW + 9 + (1_000 if retention else DEFAULT_RETENTION_MS)
    assert await store.load_steps(run.pk) == [last]
    with pytest.raises(StaleRunError):
        await store.finish(
            run.pk, run.generation + 1, status=status, output=None, error_name=None,
            error_message=None, steps=[], now=NOW,
        )  # fmt: skip


async def test_consume_event_takes_the_oldest_of_its_type_once(store: Store) -> None:
    workflow = await make_workflow(store)
    await add(store, workflow, "a")
    run = await claim_one(store)
    for payload in ('"first"', '"second"'):
        await store.buffer_event(run.pk, "go", payload, now=NOW)
    await store.buffer_event(run.pk, "other", '"x"', now=NOW)
    one, two, three = (wait_step(run.pk, f"w{n}", n, "go", NOW + 9) for n in (1, 2, 3))
    got = await store.consume_event(run.pk, run.generation, one, now=NOW + 1)
    assert got is not None and (got.payload, got.consumed_by) == ('"first"', one.key)
    got = await store.consume_event(run.pk, run.generation, two, now=NOW + 2)
    assert got is not None and got.payload == '"second"'
    assert await store.consume_event(run.pk, run.generation, three, now=NOW + 3) is None
    steps = await steps_by_key(store, run.pk)
    assert (steps[one.key].status, steps[one.key].output, steps[one.key].end) == (
        "complete", '"first"', NOW + 1,
    )  # fmt: skip
    assert three.key not in steps
    with pytest.raises(StaleRunError):
        await store.consume_event(run.pk, run.generation + 1, three, now=NOW)


# -- control -------------------------------------------------------------------------------------
async def park_waiting_for(store: Store, workflow: WorkflowRecord, event_type: str):
    await add(store, workflow, "a")
    run = await claim_one(store)
    wait = wait_step(run.pk, "w", 1, event_type, NOW + 60_000)
    await store.suspend(
        run.pk, run.generation, status="waiting", wake_at=NOW + 60_000, wake_kind="event",
        steps=[wait], now=NOW,
    )  # fmt: skip
    return run, wait


async def test_buffer_event_wakes_a_waiting_instance_whose_wait_needs_it(store: Store) -> None:
    run, _ = await park_waiting_for(store, await make_workflow(store), "go")
    before = (await store.buffer_event(run.pk, "other", "1", now=NOW + 1)).before
    assert before.status == "waiting" and before.wake_at == NOW + 60_000
    unchanged = await store.get_instance_by_pk(run.pk)
    assert unchanged is not None and unchanged.wake_at == NOW + 60_000
    await store.buffer_event(run.pk, "go", "2", now=NOW + 2)
    woken = await store.get_instance_by_pk(run.pk)
    assert woken is not None and woken.wake_at == NOW + 2
    assert (await claim_one(store, now=NOW + 2)).pk == run.pk


async def test_buffer_event_claims_the_instance_it_wakes_for_the_given_owner(store: Store) -> None:
    run, wait = await park_waiting_for(store, await make_workflow(store), "go")
    lease = {"owner": "e2", "lease_until": NOW + LEASE}
    missed = await store.buffer_event(run.pk, "other", "1", now=NOW + 1, **lease)
    assert missed.claimed is None and missed.before.status == "waiting"
    still = await store.get_instance_by_pk(run.pk)
    assert still is not None and (still.status, still.lease_owner) == ("waiting", None)

    woken = await store.buffer_event(run.pk, "go", '"yes"', now=NOW + 2, **lease)
    assert woken.before.status == "waiting" and woken.claimed is not None
    instance, steps = woken.claimed
    assert (instance.status, instance.lease_owner, instance.lease_expires) == (
        "running", "e2", NOW + LEASE,
    )  # fmt: skip
    assert instance.generation == run.generation + 1 and instance.wake_at is None
    # The event went to the wait, as the runner's consume_event would have given it.
    [done] = steps
    assert (done.key, done.status, done.output, done.end) == (
        wait.key,
        "complete",
        '"yes"',
        NOW + 2,
    )
    assert (await steps_by_key(store, run.pk))[wait.key].status == "complete"
    stored = await store.get_instance_by_pk(run.pk)
    assert stored is not None and (stored.status, stored.generation) == (
        "running",
        instance.generation,
    )
    assert await store.claim_runnable(NOW + 3, 5, owner="e1", lease_until=NOW + LEASE) == []
    later = wait_step(run.pk, "w2", 2, "go", NOW + 60_000)
    assert await store.consume_event(run.pk, instance.generation, later, now=NOW + 3) is None


async def test_an_event_claim_hands_the_oldest_event_to_the_first_wait(store: Store) -> None:
    await add(store, await make_workflow(store), "a")
    run = await claim_one(store)
    first, second = (wait_step(run.pk, f"w{n}", n, "go", NOW + 60_000) for n in (1, 2))
    await store.suspend(
        run.pk, run.generation, status="waiting", wake_at=NOW + 60_000, wake_kind="event",
        steps=[first, second], now=NOW,
    )  # fmt: skip
    # An event that woke the instance without a claim (as when a limit holds it) goes first.
    await store.buffer_event(run.pk, "go", '"old"', now=NOW + 1)

    woken = await store.buffer_event(
        run.pk, "go", '"new"', now=NOW + 2, owner="e2", lease_until=NOW + LEASE
    )

    assert woken.claimed is not None
    steps = {s.key: s for s in woken.claimed[1]}
    assert (steps[first.key].status, steps[first.key].output) == ("complete", '"old"')
    assert steps[second.key].status == "waiting"
    got = await store.consume_event(run.pk, woken.claimed[0].generation, second, now=NOW + 3)
    assert got is not None and got.payload == '"new"'


async def test_buffer_event_refuses_what_would_pass_the_limit_and_writes_nothing(
    store: Store,
) -> None:
    await add(store, await make_workflow(store), "a")
    run = await claim_one(store)
    limit = 20
    await store.buffer_event(run.pk, "go", '"12345678"', now=NOW, limit=limit)  # 10 bytes
    await store.buffer_event(run.pk, "go", '"é123456"', now=NOW, limit=limit)  # 10 in UTF-8
    with pytest.raises(CannotSendEvent, match="20B storage limit"):
        await store.buffer_event(run.pk, "go", "1", now=NOW, limit=limit)
    await store.buffer_event(run.pk, "go", "1", now=NOW)  # no limit, no check

    waits = [wait_step(run.pk, f"w{n}", n, "go", NOW + 9) for n in (1, 2, 3, 4)]
    taken = [await store.consume_event(run.pk, run.generation, w, now=NOW) for w in waits]
    assert [e.payload if e else None for e in taken] == ['"12345678"', '"é123456"', "1", None]


async def test_what_a_wait_takes_no_longer_counts_toward_the_limit(store: Store) -> None:
    await add(store, await make_workflow(store), "a")
    run = await claim_one(store)
    await store.buffer_event(run.pk, "go", '"12345678"', now=NOW, limit=10)
    with pytest.raises(CannotSendEvent):
        await store.buffer_event(run.pk, "go", "1", now=NOW, limit=10)
    first = wait_step(run.pk, "w1", 1, "go", NOW + 9)
    assert await store.consume_event(run.pk, run.generation, first, now=NOW) is not None
    await store.buffer_event(run.pk, "go", '"12345678"', now=NOW, limit=10)


async def test_an_event_handed_to_a_wait_at_once_counts_only_while_it_waits(
    store: Store,
) -> None:
    run, _ = await park_waiting_for(store, await make_workflow(store), "go")
    await store.buffer_event(run.pk, "other", '"123"', now=NOW, limit=10)  # 5 held
    lease = {"owner": "e2", "lease_until": NOW + LEASE}
    woken = await store.buffer_event(run.pk, "go", '"12"', now=NOW + 1, limit=10, **lease)
    assert woken.claimed is not None  # taken by the wait in the same transaction
    await store.buffer_event(run.pk, "other", '"1"', now=NOW + 2, limit=10)  # 5 + 3
    with pytest.raises(CannotSendEvent):
        await store.buffer_event(run.pk, "other", '"12"', now=NOW + 2, limit=10)


async def test_two_waits_of_one_run_take_their_events_at_the_same_time(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    # On PostgreSQL both statements update the instance's count of untaken events: each must
    # hold the row before it takes its event, or the two wait for each other until PostgreSQL
    # rolls one back as a deadlock (which the store then retries, and logs).
    await add(store, await make_workflow(store), "a")
    run = await claim_one(store)
    rounds, types = 10, [f"t{n}" for n in range(6)]
    for n in range(rounds):
        for kind in types:
            await store.buffer_event(run.pk, kind, f'"{kind}.{n}"', now=NOW)
    seq = 0
    for n in range(rounds):
        waits = []
        for kind in types:
            seq += 1
            waits.append(wait_step(run.pk, f"{kind}.{n}", seq, kind, NOW + 9))
        got = await asyncio.gather(
            *(store.consume_event(run.pk, run.generation, w, now=NOW) for w in waits)
        )
        assert [e.payload if e else None for e in got] == [f'"{k}.{n}"' for k in types]
    await store.buffer_event(run.pk, "go", "1", now=NOW, limit=1)  # nothing left untaken
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


@pytest.mark.parametrize("from_seq", [None, 2])
async def test_a_restart_counts_only_the_events_it_keeps(
    store: Store, from_seq: int | None
) -> None:
    await add(store, await make_workflow(store), "a")
    run = await claim_one(store)
    await store.buffer_event(run.pk, "go", '"12345678"', now=NOW, limit=10)
    kept = wait_step(run.pk, "w1", 1, "go", NOW + 9)
    await store.consume_event(run.pk, run.generation, kept, now=NOW)
    await store.buffer_event(run.pk, "go", '"123456"', now=NOW, limit=10)
    assert await store.restart(run.pk, from_seq=from_seq, now=NOW + 1) is not None
    # Untaken events are erased by either restart (§3.3): the whole limit is free again.
    await store.buffer_event(run.pk, "go", '"12345678"', now=NOW + 2, limit=10)
    with pytest.raises(CannotSendEvent):
        await store.buffer_event(run.pk, "go", "1", now=NOW + 2, limit=10)


async def test_buffer_event_leaves_a_limited_workflow_to_the_claim(store: Store) -> None:
    run, _ = await park_waiting_for(store, await make_workflow(store, concurrency_limit=1), "go")
    woken = await store.buffer_event(run.pk, "go", "1", now=NOW + 2, owner="e2", lease_until=1)
    assert woken.claimed is None
    stored = await store.get_instance_by_pk(run.pk)
    assert stored is not None and (stored.status, stored.wake_at) == ("waiting", NOW + 2)
    assert (await claim_one(store, now=NOW + 2)).pk == run.pk


async def test_buffer_event_refuses_finished_and_missing_instances(store: Store) -> None:
    workflow = await make_workflow(store)
    [a] = await add(store, workflow, "a")
    await store.terminate([a.pk], now=NOW)
    with pytest.raises(CannotSendEvent):
        await store.buffer_event(a.pk, "go", "1", now=NOW)
    with pytest.raises(InstanceNotFound):
        await store.buffer_event(a.pk + 1000, "go", "1", now=NOW)


async def test_update_instance_applies_only_from_expected_statuses(store: Store) -> None:
    workflow = await make_workflow(store)
    [a] = await add(store, workflow, "a")
    assert await store.update_instance(a.pk, expect=("running",), changes={"status": "x"}) is None
    changed = await store.update_instance(
        a.pk, expect=("queued", "waiting"), changes={"status": "paused", "paused_on": NOW},
        bump_generation=True,
    )  # fmt: skip
    assert changed is not None
    assert (changed.status, changed.paused_on, changed.generation) == ("paused", NOW, 1)


async def test_terminate_fences_runners_and_adds_a_termination_step(store: Store) -> None:
    workflow = await make_workflow(store)
    [a, b, c] = await add(store, workflow, "a", "b", "c", error_retention_ms=50)
    run = await claim_one(store)
    await store.save_step(run.pk, run.generation, do_step(run.pk, "s", 1), now=NOW)
    done = await store.terminate([a.pk, b.pk, c.pk], now=NOW + 1, expect=("running", "queued"))
    assert sorted(i.id for i in done) == ["a", "b", "c"]
    row = next(i for i in done if i.pk == run.pk)
    assert row.status == "terminated" and row.generation == run.generation + 1
    assert row.lease_owner == "e1"  # so that the notice can name the engine running it
    assert (row.ended_on, row.expires_on) == (NOW + 1, NOW + 1 + 50)
    steps = await store.load_steps(run.pk)
    assert [(s.key, s.kind, s.seq, s.status) for s in steps] == [
        ("do:1:s", "do", 1, "running"),
        ("termination", "termination", 2, "complete"),
    ]
    assert await store.terminate([a.pk], now=NOW + 2) == []  # finished already
    [d] = await add(store, workflow, "d")
    assert await store.terminate([d.pk], now=NOW, expect=("running",)) == []
    assert await store.terminate([], now=NOW) == []


async def test_resume_shifts_pending_timers_by_the_paused_time(store: Store) -> None:
    workflow = await make_workflow(store)
    await add(store, workflow, "a")
    run = await claim_one(store)
    sleep = StepRecord(run.pk, "sleep:9:1:z", 1, "sleep", "z-1", "waiting", NOW, wake_at=NOW + 9)
    done = do_step(run.pk, "s", 2, status="complete", wake_at=NOW + 1)
    await store.update_instance(run.pk, expect=("running",), changes={"status": "waitingForPause"})
    await store.suspend(
        run.pk, run.generation, status="paused", wake_at=NOW + 9, wake_kind="timer",
        steps=[sleep, done], now=NOW + 100,
    )  # fmt: skip
    assert await store.resume(run.pk + 999, now=NOW) is None
    resumed = await store.resume(run.pk, now=NOW + 350)
    assert resumed is not None and resumed.status == "queued"
    assert (resumed.paused_on, resumed.wake_at, resumed.modified_on) == (None, None, NOW + 350)
    steps = await steps_by_key(store, run.pk)
    assert steps[sleep.key].wake_at == NOW + 9 + 250
    assert steps[done.key].wake_at == NOW + 1  # finished steps keep their times
    assert await store.resume(run.pk, now=NOW + 400) is None  # not paused any more


async def test_restart_wipes_steps_and_events_and_fences_the_runner(store: Store) -> None:
    workflow = await make_workflow(store)
    await add(store, workflow, "a")
    run = await claim_one(store)
    await store.buffer_event(run.pk, "go", "1", now=NOW)
    await store.save_step(run.pk, run.generation, do_step(run.pk, "s", 1), now=NOW)
    await store.finish(
        run.pk, run.generation, status="errored", output=None, error_name="E",
        error_message="m", steps=[], now=NOW,
    )  # fmt: skip
    restarted = await store.restart(run.pk, from_seq=None, now=NOW + 5)
    assert restarted is not None and restarted.status == "queued"
    assert restarted.generation == run.generation + 1 and restarted.modified_on == NOW + 5
    assert (restarted.error_name, restarted.ended_on, restarted.expires_on) == (None, None, None)
    assert await store.load_steps(run.pk) == []
    again = await claim_one(store)
    assert await store.consume_event(
        again.pk, again.generation, wait_step(again.pk, "w", 1, "go", NOW + 9), now=NOW
    ) is None  # fmt: skip
    assert await store.restart(run.pk + 999, from_seq=None, now=NOW) is None


async def test_restart_from_a_step_keeps_earlier_steps_and_their_events(store: Store) -> None:
    workflow = await make_workflow(store)
    await add(store, workflow, "a")
    run = await claim_one(store)
    for payload in ("1", "2"):
        await store.buffer_event(run.pk, "go", payload, now=NOW)
    first, second = wait_step(run.pk, "w1", 1, "go", NOW + 9), wait_step(run.pk, "w2", 3, "go", 9)
    await store.consume_event(run.pk, run.generation, first, now=NOW)
    await store.save_step(run.pk, run.generation, do_step(run.pk, "s", 2), now=NOW)
    await store.consume_event(run.pk, run.generation, second, now=NOW)
    await store.terminate([run.pk], now=NOW)
    restarted = await store.restart(run.pk, from_seq=2, now=NOW + 1)
    assert restarted is not None and restarted.status == "queued"
    assert [s.key for s in await store.load_steps(run.pk)] == [first.key]
    again = await claim_one(store)
    assert await store.consume_event(again.pk, again.generation, second, now=NOW) is None


async def test_delete_select_and_expire(store: Store) -> None:
    workflow = await make_workflow(store)
    made = await add(store, workflow, "a", "b", "c", "d", error_retention_ms=10)
    run = await claim_one(store)
    await store.save_step(run.pk, run.generation, do_step(run.pk, "s", 1), now=NOW)
    pks = await store.select_instance_pks(
        workflow.id, statuses=("queued",), limit=2, created_by=NOW
    )
    assert pks == [made[1].pk, made[2].pk]
    assert await store.select_instance_pks(
        workflow.id, statuses=("queued",), limit=2, created_by=NOW - 1
    ) == []  # fmt: skip
    assert await store.delete_instances([run.pk, made[1].pk, 99_999]) == {run.pk, made[1].pk}
    assert await store.load_steps(run.pk) == []
    assert await store.delete_instances([run.pk, made[1].pk]) == set()  # gone already
    assert await store.delete_instances([]) == set()
    await store.terminate([made[2].pk, made[3].pk], now=NOW)
    assert await store.delete_expired(NOW + 5, limit=10) == 0
    assert await store.delete_expired(NOW + 10, limit=1) == 1
    assert await store.delete_expired(NOW + 10, limit=10) == 1
    assert await store.count_instances(workflow.id, InstanceFilter()) == 0


# -- notices and tokens --------------------------------------------------------------------------
async def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out waiting")


async def test_a_notice_reaches_this_processs_own_handlers_once(store: Store) -> None:
    got: list[Notice] = []
    store.subscribe(got.append)
    sent = Notice("stop", pk=7, owner="host:1:ab", generation=3)
    await store.publish(sent)
    await wait_for(lambda: bool(got))
    await asyncio.sleep(0.2)
    assert got == [sent]


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_notices_travel_between_processes(open_store: OpenStore) -> None:
    one, two = await open_store(), await open_store()
    heard: dict[str, list[Notice]] = {"one": [], "two": []}
    one.subscribe(heard["one"].append)
    two.subscribe(heard["two"].append)
    notices = [Notice("wake"), Notice("event", 5), Notice("pause", 6, "e1", 2)]
    for notice in notices:
        await one.publish(notice)
    await wait_for(lambda: len(heard["one"]) == len(heard["two"]) == 3)
    assert heard == {"one": notices, "two": notices}


async def test_tokens_are_saved_and_found(store: Store) -> None:
    token = TokenRecord("hash", "acct", True, "ci", NOW)
    await store.save_token(token)
    assert await store.find_token("hash") == token
    await store.save_token(dataclasses.replace(token, token_hash="h2", can_write=False))
    found = await store.find_token("h2")
    assert found is not None and found.can_write is False
    assert await store.find_token("missing") is None


async def test_ping_and_available(open_store: OpenStore) -> None:
    store = await open_store()
    assert store.available is True
    assert await store.ping() is True


async def test_claims_respect_a_workflows_concurrency_limit(open_store: OpenStore) -> None:
    one, two = await open_store(), await open_store()
    capped = await make_workflow(one, "capped", concurrency_limit=3)
    free = await make_workflow(one, "free")
    await add(one, capped, *(f"c{n}" for n in range(10)))
    await add(one, free, "f0", "f1")

    async def claim(store: Store, owner: str) -> list[InstanceRecord]:
        got = await store.claim_runnable(NOW, 10, owner=owner, lease_until=NOW + LEASE)
        return [i for i, _ in got]

    batches = await asyncio.gather(*(claim(s, f"e{n}") for n, s in enumerate([one, two] * 3)))
    claimed = [i for batch in batches for i in batch]
    assert sorted(i.id for i in claimed if i.workflow_id == free.id) == ["f0", "f1"]
    running = [i for i in claimed if i.workflow_id == capped.id]
    assert len(running) == 3
    await one.finish(
        running[0].pk, running[0].generation, status="complete", output=None,
        error_name=None, error_message=None, steps=[], now=NOW,
    )  # fmt: skip
    assert [i.workflow_id for i in await claim(two, "e9")] == [capped.id]
    assert await claim(one, "e9") == []


async def test_the_database_time_is_the_servers_or_none_for_a_local_file(store: Store) -> None:
    theirs = await store.database_time_ms()
    if store.exclusive:  # SQLite: one machine's file, read by that machine's clock
        assert theirs is None
    else:  # the server is on this machine here: the same clock
        assert theirs is not None
        assert abs(theirs - int(time.time() * 1000)) < 1_000
