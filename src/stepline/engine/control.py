"""What callers can do to workflows and instances: create, pause, resume, terminate,
restart, delete, send events. Each operation follows the transition table of spec §3.2:
the database changes first (fencing any runner), then the engine is told.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Collection, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec, TypeVar

from stepline.authoring.entrypoint import WorkflowEntrypoint
from stepline.cron import MAX_SCHEDULES_PER_ACCOUNT, check_cron, next_fire
from stepline.engine.instances import new_instance_record, random_instance_ids
from stepline.engine.nesting import KEY_SEPARATOR, key_label, shown_form
from stepline.engine.registry import code_hash
from stepline.engine.scheduler import Engine
from stepline.engine.terminators import Terminators
from stepline.errors import (
    CannotRestart,
    CannotTerminate,
    InstanceNotFound,
    InvalidRequest,
    WorkflowNotFound,
)
from stepline.store.port import Notice, WorkflowSettings
from stepline.store.records import (
    ACTIVE_STATUSES,
    InstanceRecord,
    StepRecord,
    VersionRecord,
    WorkflowRecord,
)
from stepline.validation import (
    MAX_CONCURRENCY_LIMIT,
    MAX_STEP_LIMIT,
    check_event_type,
    check_instance_id,
    check_json_size,
)

__all__ = ["Control", "NewInstance", "nth_step_shown_as", "step_base_name"]

log = logging.getLogger("stepline.engine")
T = TypeVar("T")
P = ParamSpec("P")

_STEP_TYPES = {"do": "do", "sleep": "sleep", "waitForEvent": "wait"}


@dataclass(frozen=True, slots=True)
class NewInstance:
    """An instance to create. ``params`` is any JSON value."""

    id: str | None = None
    params: object = None
    success_retention_ms: int | None = None
    error_retention_ms: int | None = None
    trigger_source: str = "api"


def _runs_to_the_end(
    operation: Callable[Concatenate[Control, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[Control, P], Coroutine[Any, Any, T]]:
    """A control operation that, once called, runs to its end even when its caller is
    cancelled meanwhile (a client that hangs up, a ``wait_for`` that times out).

    Each writes, then tells the engines: a create starts what it claimed, a resume wakes the
    scheduler, a terminate stops the runner. A write, once submitted, commits whoever waits
    for it (on SQLite); cut off after it, an instance would be left claimed and never
    started, or queued and never looked at, until something else happened. The caller still
    gets its ``CancelledError``; a failure after that is logged, as nobody is left to be
    told. :meth:`Control.stop` waits for such operations before the engine stops."""

    @functools.wraps(operation)
    async def run(self: Control, /, *args: P.args, **kwargs: P.kwargs) -> T:
        task = asyncio.ensure_future(operation(self, *args, **kwargs))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.done():
                self._left_running.add(task)  # the loop itself keeps only a weak reference
                task.add_done_callback(self._left_done)
            raise

    return run


class Control:
    """Workflow and instance operations over one engine and its store."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.store = engine.store
        self.clock = engine.clock
        self._terminators = Terminators(
            self.store, self._terminate_page, self.clock, engine.lease_ms
        )
        self._left_running: set[asyncio.Future[Any]] = set()
        """Operations whose callers were cancelled, still running to their end."""

    def take_up_jobs(self) -> None:
        """Run the terminate-all jobs that no process holds, from start on: a process that
        stopped or died in the middle of one left it in the database."""
        self._terminators.take_up()

    async def stop(self, grace_s: float) -> None:
        """Before the engine stops: stop this process's terminate-all jobs (the database
        keeps them for the next start), then give operations whose callers were cancelled up
        to ``grace_s`` to finish, so that what they claimed is handed over by the engine's
        stop rather than left to a lease that lapses."""
        await self._terminators.stop()
        left = list(self._left_running)
        if left:
            _, pending = await asyncio.wait(left, timeout=grace_s)
            if pending:
                log.warning("stopping with %d operations still running", len(pending))

    def _left_done(self, task: asyncio.Future[Any]) -> None:
        self._left_running.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("an operation whose caller was cancelled failed", exc_info=task.exception())

    # -- workflows -----------------------------------------------------------------------------
    @_runs_to_the_end
    async def register(
        self,
        account_id: str,
        name: str,
        cls: type[WorkflowEntrypoint],
        settings: WorkflowSettings | None = None,
        *,
        script_name: str | None = None,
        schedules: Sequence[str] | None = None,
    ) -> tuple[WorkflowRecord, VersionRecord]:
        """Declare a workflow backed by ``cls``; a changed class source makes a new version.
        ``schedules`` (cron expressions) replace the workflow's schedules when given."""
        script, class_name = self.engine.classes.add(cls, script_name=script_name)
        now = self.clock.now_ms()
        firings = None if schedules is None else self._first_firings(schedules, now)
        saved = await self.store.save_workflow(
            account_id,
            name,
            class_name=class_name,
            script_name=script,
            code_hash=code_hash(cls),
            settings=_checked_settings(settings or WorkflowSettings()),
            now=now,
            schedules=firings,
            schedule_limit=MAX_SCHEDULES_PER_ACCOUNT,
        )
        if firings is not None:
            await self.store.publish(Notice("wake"))
        return saved

    @_runs_to_the_end
    async def put(
        self,
        account_id: str,
        name: str,
        *,
        class_name: str,
        script_name: str,
        settings: WorkflowSettings,
        schedules: Sequence[str] = (),
    ) -> tuple[WorkflowRecord, VersionRecord]:
        """The REST PUT: the class must be importable; every PUT makes a version and sets the
        workflow's schedules (none when the body has none, as a redeploy without them)."""
        now = self.clock.now_ms()
        firings = self._first_firings(schedules, now)
        cls = self.engine.classes.load(script_name, class_name, requested=True)
        saved = await self.store.save_workflow(
            account_id,
            name,
            class_name=class_name,
            script_name=script_name,
            code_hash=code_hash(cls),
            settings=_checked_settings(settings),
            now=now,
            force_new_version=True,
            schedules=firings,
            schedule_limit=MAX_SCHEDULES_PER_ACCOUNT,
        )
        await self.store.publish(Notice("wake"))
        return saved

    @staticmethod
    def _first_firings(schedules: Sequence[str], now: int) -> list[tuple[str, int]]:
        """Each distinct expression, checked, with its first firing after ``now``. The store
        writes them with the workflow, so a refused one leaves the workflow as it was."""
        crons = sorted({check_cron(c) for c in schedules})
        return [(cron, next_fire(cron, now)) for cron in crons]

    async def workflow(self, account_id: str, name: str) -> WorkflowRecord:
        found = await self.store.get_workflow(account_id, name)
        if found is None:
            raise WorkflowNotFound(f"workflow {name!r} does not exist")
        return found

    @_runs_to_the_end
    async def delete_workflow(self, workflow: WorkflowRecord) -> None:
        # Runners elsewhere find their rows gone at their next write and stop there.
        doomed = [r for r in self.engine.runners.values() if r.instance.workflow_id == workflow.id]
        await self.store.delete_workflow(workflow.id)
        for runner in doomed:
            await self.engine.stop_runner(runner)

    # -- instances -----------------------------------------------------------------------------
    @_runs_to_the_end
    async def create(
        self, workflow: WorkflowRecord, items: Sequence[NewInstance], *, skip_existing: bool
    ) -> list[InstanceRecord]:
        now = self.clock.now_ms()
        fresh = iter(random_instance_ids(sum(item.id is None for item in items)))
        records = [
            new_instance_record(
                workflow,
                check_instance_id(item.id) if item.id is not None else next(fresh),
                check_json_size(item.params, what="params"),
                now=now,
                trigger_source=item.trigger_source,
                success_retention_ms=item.success_retention_ms,
                error_retention_ms=item.error_retention_ms,
            )
            for item in items
        ]
        # Alone on the database (SQLite), this engine is the one that would run them: when it
        # has room for the whole batch, the rows are written already claimed for it, and their
        # runners start as the insert commits, with no scheduling pass and no claim. Sharing a
        # database, the engines' own claims spread the work; a workflow with a concurrency
        # limit is left to the scheduler, which keeps its cap.
        claimed = (
            self.store.exclusive
            and workflow.concurrency_limit is None
            and self.engine.can_run(workflow.version_id)
            and self.engine.promise(len(records))
        )
        if not claimed:
            created = await self.store.insert_instances(
                records, skip_existing=skip_existing, now=now
            )
            if created:
                await self.store.publish(Notice("wake"))
            return created
        lease_until = now + self.engine.lease_ms
        for record in records:
            _claim(record, self.engine.owner, now=now, lease_until=lease_until)
        taken = 0
        try:
            created = await self.store.insert_instances(
                records, skip_existing=skip_existing, now=now
            )
            for record in created:
                taken += 1
                await self.engine.take(record, [])
        finally:
            self.engine.unpromise(len(records) - taken)
        return created

    async def instance(self, workflow: WorkflowRecord, instance_id: str) -> InstanceRecord:
        found = await self.store.get_instance(workflow.id, instance_id)
        if found is None or (
            found.expires_on is not None and found.expires_on <= self.clock.now_ms()
        ):
            raise InstanceNotFound(f"instance {instance_id!r} does not exist")
        return found

    @_runs_to_the_end
    async def pause(self, instance: InstanceRecord) -> str:
        # Twice at most: between the two looks the status may move from one the pause acts
        # on to the other (a run parks for a wait, or a queued instance is claimed).
        for _ in range(2):
            now = self.clock.now_ms()
            parked = await self.store.update_instance(
                instance.pk, expect=("waiting",), changes={"status": "paused", "paused_on": now}
            )
            if parked is not None:
                return "paused"
            pausing = await self.store.update_instance(
                instance.pk, expect=("running",), changes={"status": "waitingForPause"}
            )
            if pausing is not None:
                await self.store.publish(Notice("pause", instance.pk, pausing.lease_owner))
                return "waitingForPause"
            current = await self._current_status(instance)
            if current not in ("waiting", "running"):
                break
        return current

    @_runs_to_the_end
    async def resume(self, instance: InstanceRecord) -> str:
        # Twice at most: between the two looks the run may park the pause it was asked for
        # (waitingForPause becomes paused), and a resume that answered "paused" left it so.
        for _ in range(2):
            resumed = await self.store.resume(instance.pk, now=self.clock.now_ms())
            if resumed is not None:
                # To every engine (no owner): a pause notice that came after the run had
                # parked is dropped, not kept for the run this resume starts; engines wake.
                await self.store.publish(Notice("unpause", instance.pk))
                return resumed.status
            unpaused = await self.store.update_instance(
                instance.pk, expect=("waitingForPause",), changes={"status": "running"}
            )
            if unpaused is not None:
                await self.store.publish(Notice("unpause", instance.pk, unpaused.lease_owner))
                return "running"
            current = await self._current_status(instance)
            if current != "paused":
                break
        return current

    @_runs_to_the_end
    async def terminate(self, instance: InstanceRecord) -> str:
        done = await self.store.terminate([instance.pk], now=self.clock.now_ms())
        if not done:
            status = await self._current_status(instance)
            raise CannotTerminate(f"instance is {status}; it cannot be terminated")
        await self._stop_runners(done)
        return "terminated"

    @_runs_to_the_end
    async def terminate_many(
        self, pks: Sequence[int], *, expect: Collection[str] | None = None
    ) -> int:
        done = await self.store.terminate(pks, now=self.clock.now_ms(), expect=expect)
        await self._stop_runners(done)
        return len(done)

    async def _stop_runners(self, changed: Sequence[InstanceRecord]) -> None:
        """Tell the engines running these instances to drop them; wait for our own."""
        for row in changed:
            await self.store.publish(Notice("stop", row.pk, row.lease_owner, row.generation))
        for row in changed:
            await self.engine.stop_local(row.pk, row.generation)

    @_runs_to_the_end
    async def start_terminate_all(
        self, workflow: WorkflowRecord, statuses: Collection[str]
    ) -> bool:
        """Terminate every instance with one of ``statuses`` in the background (a job the
        database keeps until it is done). False when the workflow has such a job already."""
        return await self._terminators.start(workflow.id, statuses)

    async def _terminate_page(self, pks: Sequence[int], statuses: Collection[str]) -> int:
        return await self.terminate_many(pks, expect=statuses)

    @_runs_to_the_end
    async def restart(
        self,
        instance: InstanceRecord,
        *,
        from_name: str | None = None,
        count: int = 1,
        step_type: str = "do",
    ) -> str:
        from_seq = None
        if from_name is not None:
            if step_type not in _STEP_TYPES:
                raise InvalidRequest("restart from: type must be do, sleep or waitForEvent")
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise InvalidRequest(f"restart from: count must be an integer >= 1, not {count!r}")
            steps = await self.store.load_steps(instance.pk)
            from_seq = _find_step_seq(steps, from_name, count, _STEP_TYPES[step_type])
            if from_seq is None:
                raise CannotRestart(
                    f'Step "{from_name}" not found in execution history'
                    + _name_as_shown_hint(steps, from_name)
                )
        now = self.clock.now_ms()
        restarted = await self.store.restart(instance.pk, from_seq=from_seq, now=now)
        if restarted is None:
            raise InstanceNotFound(f"instance {instance.id!r} does not exist")
        await self._stop_runners([restarted])
        await self.store.publish(Notice("wake"))
        return "queued"

    @_runs_to_the_end
    async def delete(self, instances: Sequence[InstanceRecord]) -> set[int]:
        """Delete ``instances``; answers the pks this call deleted (a racing delete may have
        taken some first)."""
        deleted = await self.store.delete_instances([i.pk for i in instances])
        # A deleted row is never claimed again, so every runner of it may go, wherever it is.
        for instance in instances:
            await self.store.publish(Notice("stop", instance.pk, None, _EVER))
        for instance in instances:
            await self.engine.stop_local(instance.pk, _EVER)
        return deleted

    @_runs_to_the_end
    async def send_event(self, instance: InstanceRecord, event_type: str, payload: object) -> None:
        check_event_type(event_type)
        text = check_json_size(payload, what="event payload")
        now = self.clock.now_ms()
        # An instance the event wakes is claimed in the same transaction when this engine has
        # room, and its runner starts at once: no notice, no scheduling pass, no second write.
        claimable = self.engine.can_run(instance.version_id) and self.engine.promise(1)
        claim_for = self.engine.owner if claimable else None
        try:
            buffered = await self.store.buffer_event(
                instance.pk,
                event_type,
                text,
                now=now,
                owner=claim_for,
                lease_until=now + self.engine.lease_ms,
                limit=self.engine.storage_limit,
            )
        except BaseException:
            if claim_for is not None:
                self.engine.unpromise(1)
            raise
        if buffered.claimed is not None:
            await self.engine.take(*buffered.claimed)
            return
        if claim_for is not None:
            self.engine.unpromise(1)
        before = buffered.before
        owner = before.lease_owner if before.status in ACTIVE_STATUSES else None
        await self.store.publish(Notice("event", instance.pk, owner))

    async def _current_status(self, instance: InstanceRecord) -> str:
        current = await self.store.get_instance_by_pk(instance.pk)
        if current is None:
            raise InstanceNotFound(f"instance {instance.id!r} does not exist")
        return current.status


_EVER = 2**62


def _find_step_seq(steps: list[StepRecord], name: str, count: int, kind: str) -> int | None:
    """The seq to restart from for the ``count``-th step of ``kind`` whose full name is shown
    as ``name``: its own, or, for a step inside another's body, its outermost enclosing
    step's. A restart keeps the steps before the seq, and an outer step kept finished is not
    entered on the replay: the step inside it would never run again."""
    ordered = sorted(steps, key=lambda s: s.seq)
    step = nth_step_shown_as(ordered, name, count, kind)
    return None if step is None else _outermost_enclosing(ordered, step)


def _name_as_shown_hint(steps: list[StepRecord], name: str) -> str:
    """What ``name`` stands for when it is a step's name as the timeline (the describe view)
    shows it, its count after a dash ("charge card-1"): the one a user sees and copies."""
    base, dash, number = name.rpartition("-")
    if not (dash and base and number.isdigit() and int(number) >= 1):
        return ""
    count = int(number)
    for step_type, kind in _STEP_TYPES.items():
        if _find_step_seq(steps, base, count, kind) is not None:
            return (
                f'; the timeline shows step "{base}" of count {count} as "{name}": restart '
                f'from name "{base}", count {count}, type {step_type}'
            )
    return ""


def nth_step_shown_as(
    ordered: list[StepRecord], name: str, count: int, kind: str
) -> StepRecord | None:
    """The ``count``-th of the steps of ``kind`` whose full name is shown as ``name``, in the
    order they were first called (``ordered`` by seq). A step named ``process-1/fetch`` in
    code, and ``fetch`` inside ``process-1``, are shown alike: they are counted together."""
    seen = 0
    for step in ordered:
        if step.kind == kind and shown_form(step_base_name(step)) == name:
            seen += 1
            if seen == count:
                return step
    return None


def _outermost_enclosing(ordered: list[StepRecord], step: StepRecord) -> int:
    """The seq of the first step that ``step`` is inside, or its own."""
    base = step_base_name(step)
    for outer in ordered:
        if outer.seq >= step.seq:
            break
        if outer.kind == "do" and _inside(base, outer):
            return outer.seq
    return step.seq


def _inside(base: str, outer: StepRecord) -> bool:
    """Whether the step whose key's full name is ``base`` is inside ``outer``: it starts with
    ``outer``'s scope in its key's form (its full name and count, ``process-2``), then an
    attempt number after the first (``#2``), and ``KEY_SEPARATOR``. A step named
    ``process-2/x`` in code is not inside it."""
    scope = key_label(outer)
    if not base.startswith(scope):
        return False
    rest = base[len(scope) :]
    if rest.startswith(KEY_SEPARATOR):
        return True
    number, separator, _ = rest[1:].partition(KEY_SEPARATOR)
    return rest.startswith("#") and bool(separator) and number.isdigit()


def step_base_name(step: StepRecord) -> str:
    """The full name of a step in its key (the key minus kind, occurrence and duration)."""
    parts = step.key.split(":", 3 if step.kind == "sleep" else 2)
    return parts[-1]


def _checked_settings(settings: WorkflowSettings) -> WorkflowSettings:
    if not 1 <= settings.step_limit <= MAX_STEP_LIMIT:
        raise InvalidRequest(f"limits.steps must be 1 to {MAX_STEP_LIMIT}")
    limit = settings.concurrency_limit
    if limit is not None and not 1 <= limit <= MAX_CONCURRENCY_LIMIT:
        raise InvalidRequest(f"concurrency.limit must be 1 to {MAX_CONCURRENCY_LIMIT}")
    return settings


def _claim(record: InstanceRecord, owner: str, *, now: int, lease_until: int) -> None:
    """Make a new instance's row one that ``owner`` has claimed, as a claim would."""
    record.status = "running"
    record.started_on = now
    record.generation = 1
    record.lease_owner = owner
    record.lease_expires = lease_until
