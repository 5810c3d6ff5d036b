"""The engine: claims runnable instances, keeps their runners, sweeps expired ones.

Runnable means queued, or waiting with a wake time that has come (a sleep's end, a retry,
a wait's deadline, or an event that a wait needs). Up to ``concurrency`` instances run at
once; sleeping, waiting and paused instances hold no slot, no task and no memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import socket
import uuid
from typing import Any, TypeVar

from stepline.engine.clock import Clock, SystemClock, elapsed_s
from stepline.engine.deadlines import Deadlines
from stepline.engine.hooks import NO_HOOKS, StepHooks
from stepline.engine.registry import WorkflowClasses
from stepline.engine.runner import Runner
from stepline.engine.step_threads import DEFAULT_STEP_THREADS, StepThreads
from stepline.engine.upkeep import Upkeep, log_failure
from stepline.errors import (
    StaleRunError,
    SteplineError,
    StoreUnavailable,
    WorkflowClassNotFound,
)
from stepline.store.port import Notice, Store
from stepline.store.records import InstanceRecord, StepRecord, VersionRecord
from stepline.validation import MAX_INSTANCE_STORAGE_BYTES

__all__ = ["MIN_LEASE_MS", "Engine"]

log = logging.getLogger("stepline.engine")
V = TypeVar("V")

MIN_LEASE_MS = 100
"""The shortest lease an engine takes (tests use a few hundred ms; production, seconds)."""
_CLAIM_BATCH = 500
_REMEMBERED = 1_000
"""How many workflow versions, and workflows' names, the engine keeps read: each deploy (a
PUT, a changed class) makes a version, and a deleted workflow's are never needed again."""
_CANNOT_RUN_MS = 60_000
"""How long an engine leaves a workflow version whose class it cannot load to other engines
before it tries that class again (a module missing then may be installed by now)."""


class Engine(Upkeep):
    """Runs instances from a store. ``await engine.start()``; ``await engine.stop()``."""

    def __init__(
        self,
        store: Store,
        classes: WorkflowClasses,
        *,
        clock: Clock | None = None,
        concurrency: int = 10_000,
        suspend_after_ms: int = 1_000,
        retention_sweep_ms: int = 60_000,
        lease_ms: int = 30_000,
        stop_grace_ms: int = 10_000,
        step_threads: int = DEFAULT_STEP_THREADS,
        storage_limit: int = MAX_INSTANCE_STORAGE_BYTES,
        env: Any = None,
        hooks: StepHooks = NO_HOOKS,
    ) -> None:
        if type(concurrency) is not int or concurrency < 1:
            # An engine of none runs no instance: every one would stay queued.
            raise ValueError(f"concurrency must be a whole number above 0, not {concurrency!r}")
        if lease_ms < MIN_LEASE_MS:
            # Renewed every third of it: a shorter one lapses between renewals, its runs stop
            # at once, and the scheduler looks at the database without a pause.
            raise ValueError(f"lease must be at least {MIN_LEASE_MS} ms, not {lease_ms} ms")
        self.store = store
        self.classes = classes
        self.clock: Clock = clock or SystemClock()
        self.concurrency = concurrency
        self.suspend_after_ms = suspend_after_ms
        self.retention_sweep_ms = retention_sweep_ms
        self.lease_ms = lease_ms
        self._lease_margin_s = min(lease_ms / 10, 1_000) / 1000
        """How much sooner than its lease says a run stops starting attempts: for the time a
        claim's or renewal's write took and for the engines' clocks."""
        self.stop_grace_ms = stop_grace_ms
        if type(storage_limit) is not int or storage_limit < 1:
            raise ValueError(
                f"storage_limit must be a number of bytes above 0, not {storage_limit!r}"
            )
        self.storage_limit = storage_limit
        """The UTF-8 bytes one instance may persist: its params, step results, the event
        payloads its waits took and its output."""
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        """This engine's name on the leases it holds."""
        self.env = env
        self.hooks = hooks
        self.deadlines = Deadlines()
        self.step_threads = StepThreads(step_threads)
        self.runners: dict[int, Runner] = {}
        self._promised = 0
        """Slots held for instances claimed for this engine whose runners have not started
        yet (a claim's or a create's write is in flight): the cap counts them as running."""
        self._pending_pause: set[int] = set()
        self._pause_noticed: set[int] | None = None
        """While the engine looks in the database for pauses whose notice was lost: the
        instances a pause or unpause notice came for meanwhile, whose notice is newer than
        what the look read."""
        self._stopping: set[asyncio.Task[None]] = set()
        self._poked = False
        """Set by :meth:`wake`; the scheduling pass clears it as it starts."""
        self._poke_waiter: asyncio.Future[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._workflow_names: dict[str, str] = {}
        self._versions: dict[str, VersionRecord] = {}
        self._cannot_run: dict[str, int] = {}
        """Workflow versions whose class this engine could not load, and until when it leaves
        their instances to others (the scheduler's claims skip them)."""
        self._idle = asyncio.Event()
        self._idle.set()
        self._running = False
        """Between ``start`` and the beginning of ``stop``: runners may start here."""
        self._context = contextvars.copy_context()
        """What ``start`` was called in; every run starts in a copy of it, whatever claimed
        it (the scheduler, or a create or an event in some request's context)."""
        self.clock.on_advance(self.wake)

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        # First, as what follows takes back instances left running: on SQLite, this must be
        # the file's only engine (EngineAlreadyRunning otherwise).
        self.store.hold_engine(self.owner)
        now = self.clock.now_ms()
        # Alone on the database (SQLite), every running instance was ours and is orphaned;
        # sharing it, only instances whose lease has lapsed are.
        lapsed_before = now + 10 * self.lease_ms if self.store.exclusive else now
        recovered = await self.store.recover_interrupted(now, lapsed_before=lapsed_before)
        if recovered:
            log.info("recovered %d interrupted instances", recovered)
        self.store.subscribe(self.handle_notice)
        self._context = contextvars.copy_context()
        self._running = True
        self._tasks = [
            asyncio.create_task(self._schedule_loop(), name="stepline-scheduler"),
            asyncio.create_task(self._retention_loop(), name="stepline-retention"),
            asyncio.create_task(self._lease_loop(), name="stepline-leases"),
        ]

    async def stop(self) -> None:
        """Stop claiming, let executing step attempts finish and record for up to
        ``stop_grace_ms``, park every instance, then cancel what is left. The instances resume
        on the next start (alone on the database) or, sharing it, on another engine at once."""
        self._running = False
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        runners = [r for r in self.runners.values() if r.task is not None]
        for runner in runners:
            runner.drain()
        tasks = [r.task for r in runners if r.task is not None]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=self.stop_grace_ms / 1000)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        self.deadlines.close()
        self.step_threads.close()
        if not self.store.exclusive:
            await self._hand_over(parked=bool(runners))
        self.store.unsubscribe(self.handle_notice)
        self.store.release_engine()

    async def _hand_over(self, *, parked: bool) -> None:
        """Give this engine's instances back now rather than when their leases lapse, and
        have the other engines look again if there is anything for them: instances it gave
        back, or ``parked`` as it stopped (due at once, and no other engine knows)."""
        try:
            await self.store.renew_leases(self.owner, 0)
            recovered = await self.store.recover_interrupted(self.clock.now_ms(), lapsed_before=1)
            if recovered or parked:
                await self.store.publish(Notice("wake"))
        except SteplineError as exc:  # they will be taken over when the leases lapse
            log.warning("could not hand instances over: %s", exc)

    def wake(self) -> None:
        """Something may have become runnable: look again now."""
        self._poked = True
        waiter = self._poke_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def free_slots(self) -> int:
        """How many more runners could start here now (none once ``stop`` has begun)."""
        if not self._running:
            return 0
        return self.concurrency - len(self.runners) - self._promised

    def promise(self, count: int) -> bool:
        """Hold ``count`` slots for instances about to be claimed for this engine, all or
        none. Each is given back by :meth:`take` or :meth:`unpromise`. Held from before the
        claim's write, they keep concurrent claims (creates, events, the scheduler's) from
        all counting the same free slots."""
        if self.free_slots() < count:
            return False
        self._promised += count
        return True

    def unpromise(self, count: int) -> None:
        """Give back slots held for claims that did not happen."""
        self._give_back(count)

    def _give_back(self, count: int) -> None:
        self._promised -= count
        if not self._promised:
            # No claim for this engine is in flight: a pause kept for a runner about to start
            # was for one that did not (a store outage, a class it cannot load). Kept, it
            # would pause whichever run of that instance (or, once deleted with its
            # workflow, of the next instance given its number) starts here later.
            self._pending_pause.clear()

    async def take(self, instance: InstanceRecord, steps: list[StepRecord]) -> None:
        """Run an instance that a control operation has claimed for this engine, on one of
        the slots it was promised."""
        try:
            if not self._running:
                # Stopped meanwhile: like a crash, the instance is recovered by this file's
                # next engine (SQLite) or by another engine once its lease lapses (PostgreSQL).
                log.info("not starting %s: the engine has stopped", instance.id)
                return
            await self._start_runner(instance, steps)
        finally:
            self._give_back(1)

    async def wait_idle(self) -> None:
        """Until no runner is in memory (tests and graceful shutdown)."""
        await self._idle.wait()

    # -- notices from control operations (this process or another) -------------------------
    def handle_notice(self, notice: Notice) -> None:
        if notice.kind == "wake":
            self.wake()
            return
        runner = self.runners.get(notice.pk)
        if notice.owner is not None and notice.owner != self.owner:
            return
        if notice.kind == "event":
            if runner is not None:
                runner.notify_event()
            self.wake()
        elif notice.kind == "pause":
            if self._pause_noticed is not None:
                self._pause_noticed.add(notice.pk)
            if runner is not None:
                runner.request_pause()
            elif self._promised:  # claimed here a moment ago; the runner may be about to start
                self._pending_pause.add(notice.pk)
            # Else its run has ended: the notice came after the run had parked the instance
            # paused (another process's pause), and there is nothing left to pause here.
        elif notice.kind == "unpause":
            if self._pause_noticed is not None:
                self._pause_noticed.add(notice.pk)
            self._pending_pause.discard(notice.pk)
            if notice.owner is None:  # resumed from paused: queued again, for any engine
                self.wake()
            elif runner is not None:
                runner.cancel_pause()
        elif notice.kind == "stop":
            self._pending_pause.discard(notice.pk)
            if runner is not None and runner.generation < notice.generation:
                self._stopping.add(asyncio.create_task(self.stop_runner(runner)))
                self._stopping = {t for t in self._stopping if not t.done()}

    def runner_of(self, pk: int) -> Runner | None:
        return self.runners.get(pk)

    async def stop_local(self, pk: int, generation: int) -> None:
        """Wait until this process runs no older generation of ``pk`` (after a stop notice)."""
        runner = self.runners.get(pk)
        if runner is not None and runner.generation < generation:
            await self.stop_runner(runner)

    async def stop_runner(self, runner: Runner) -> None:
        """Cancel a runner (after terminate, restart or delete) and wait until it is gone."""
        self._pending_pause.discard(runner.pk)
        if runner.task is None or runner.task.done():
            return
        runner.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(runner.task)

    # -- scheduling ----------------------------------------------------------------------------
    async def _schedule_loop(self) -> None:
        while True:
            self._poked = False
            looked_at = self.clock.now_ms()
            try:
                await self._fire_schedules()
                if await self._claim_some():
                    continue
                timeout = await self._until_next_wake(looked_at)
            except Exception as exc:
                # Nothing may end the loop, an outage least of all: wait, then look again (a
                # reconnect also publishes a wake).
                log_failure("scheduling", exc)
                timeout = 1.0
            if not self.store.exclusive:
                # An engine that parks an instance with a timer and then dies tells no one:
                # its time is in the database alone. Look there at least once a lease period.
                cap = self.lease_ms / 3000
                timeout = cap if timeout is None else min(timeout, cap)
            if self._skipped_versions(self.clock.now_ms()):
                # Try the versions left to others again when their time is up.
                until = (min(self._cannot_run.values()) - self.clock.now_ms()) / 1000
                timeout = until if timeout is None else min(timeout, until)
            if timeout is None or timeout > 0:
                await self._until_poked(timeout)

    async def _until_poked(self, timeout: float | None) -> None:
        """Until :meth:`wake` (or ``timeout`` seconds): one future, resumed in the loop turn
        after the wake, where ``wait_for`` on an event would take a task and three turns."""
        if self._poked:
            return
        loop = asyncio.get_running_loop()
        waiter = self._poke_waiter = loop.create_future()
        timer = None if timeout is None else loop.call_later(timeout, _settle, waiter)
        try:
            await waiter
        finally:
            self._poke_waiter = None
            if timer is not None:
                timer.cancel()

    async def _claim_some(self) -> bool:
        """Claim a batch if there is room; True when a full batch came back (look again)."""
        want = min(self.free_slots(), _CLAIM_BATCH)
        if want <= 0 or not self.promise(want):
            return False
        now = self.clock.now_ms()
        try:
            batch = await self.store.claim_runnable(
                now,
                want,
                owner=self.owner,
                lease_until=now + self.lease_ms,
                skip=self._skipped_versions(now),
            )
        except BaseException:
            self.unpromise(want)
            raise
        taken = 0
        try:
            for instance, steps in batch:
                taken += 1
                await self.take(instance, steps)
        finally:
            self.unpromise(want - taken)
        return len(batch) == want

    async def _until_next_wake(self, looked_at: int) -> float | None:
        """Seconds until the next timer; with a skipping clock and nothing running, none.
        ``looked_at``: the time this pass's firing and claiming looked for due work."""
        if self.clock.auto_skip and not self.runners:
            next_timer = await self.store.next_wake_at(("timer",))
            if next_timer is not None:
                # Never past a wait_for_event's deadline: a test sends the event, or advances.
                deadline = await self.store.next_wake_at(("event",))
                if deadline is None or next_timer < deadline:
                    self.clock.advance_to(next_timer)
                    return 0
        wakes = [await self.store.next_wake_at(), await self.store.next_schedule_fire()]
        next_wake = min((w for w in wakes if w is not None), default=None)
        if next_wake is None:
            return None
        if next_wake <= looked_at:
            # Due when this pass looked, yet not claimed: its workflow is at its concurrency
            # limit, or this engine is full. A runner that ends pokes us; look again within
            # a second regardless.
            return 1.0
        # Came due since the pass looked (at a thousand wake-ups a second, the usual case):
        # look again now, not a second from now.
        return max(0, next_wake - self.clock.now_ms()) / 1000

    async def _start_runner(self, instance: InstanceRecord, steps: list[StepRecord]) -> None:
        if not self.can_run(instance.version_id):
            # Claimed before this engine found it cannot load the class (a batch of them).
            await self._cannot_load(instance, None)
            return
        try:
            runner = await self._make_runner(instance, steps)
        except StoreUnavailable as exc:
            # Not the instance's fault: its lease lapses and it is claimed again later.
            log.warning("cannot start instance %s now: %s", instance.id, exc)
            return
        except WorkflowClassNotFound as exc:
            # Not the instance's fault either: this engine lacks the code (another engine on
            # the database has it, or a deploy has not reached this one yet). The instance
            # goes back to the queue for any engine, and this one leaves the workflow alone
            # for a while.
            await self._cannot_load(instance, exc)
            return
        except SteplineError as exc:
            log.error("cannot run instance %s: %s", instance.id, exc)
            try:
                await self.store.finish(
                    instance.pk,
                    instance.generation,
                    status="errored",
                    output=None,
                    error_name="WorkflowFatalError",
                    error_message=str(exc),
                    steps=[],
                    now=self.clock.now_ms(),
                )
            except (StaleRunError, StoreUnavailable):
                pass  # gone with its workflow (deleted as it was created), or left to recovery
            return
        older = self.runners.get(instance.pk)
        if older is not None and older.generation < instance.generation:
            # The instance was restarted while an older run of it is here, and this engine
            # claimed the new run before the stop notice came (it comes over LISTEN on
            # PostgreSQL). That notice would find only the new run: stop the old one now,
            # before the new one starts, so that no step body of it runs beside the new.
            paused = instance.pk in self._pending_pause  # a pause meant for the new run
            await self.stop_runner(older)
            if paused:
                self._pending_pause.add(instance.pk)
        if not self.store.exclusive:
            # As long as the claim's lease, counted from now by the engines' shared clock.
            left_ms = (instance.lease_expires or 0) - self.clock.now_ms()
            runner.held_until = elapsed_s() + left_ms / 1000 - self._lease_margin_s
        self.runners[instance.pk] = runner
        self._idle.clear()
        if instance.pk in self._pending_pause:
            self._pending_pause.discard(instance.pk)
            runner.request_pause()
        runner.task = asyncio.create_task(
            self._drive(runner), name=f"stepline-run-{instance.id}", context=self._context.copy()
        )

    async def _cannot_load(
        self, instance: InstanceRecord, exc: WorkflowClassNotFound | None
    ) -> None:
        """Give ``instance`` back to the queue: this engine cannot load its version's class
        (``exc``; ``None``: it found so a moment ago, and did not try again)."""
        now = self.clock.now_ms()
        if exc is not None:
            self._cannot_run[instance.version_id] = now + _CANNOT_RUN_MS
            log.warning(
                "cannot run instance %s here, left queued for an engine that can (this one "
                "tries again in %d s): %s",
                instance.id,
                _CANNOT_RUN_MS // 1000,
                exc.detail or exc,
            )
        self._pending_pause.discard(instance.pk)  # the release pauses it, if it was asked
        try:
            await self.store.release(instance.pk, instance.generation, now=now)
            if exc is not None:  # the first of them tells the other engines
                await self.store.publish(Notice("wake"))
        except (StaleRunError, StoreUnavailable):
            pass  # moved on meanwhile, or its lease lapses and it is taken over

    def _skipped_versions(self, now: int) -> list[str]:
        """The workflow versions this engine leaves to others now; those whose time is up
        are tried again."""
        for version_id, until in list(self._cannot_run.items()):
            if until <= now:
                del self._cannot_run[version_id]
        return list(self._cannot_run)

    def can_run(self, version_id: str) -> bool:
        """Whether this engine takes instances of the workflow version now (it could load
        its class, or tried long enough ago): a create or an event claims for it only then."""
        return not self._cannot_run or version_id not in self._skipped_versions(self.clock.now_ms())

    async def _make_runner(self, instance: InstanceRecord, steps: list[StepRecord]) -> Runner:
        version = self._versions.get(instance.version_id)
        if version is None:
            version = await self.store.get_version(instance.version_id)
            if version is None:
                raise SteplineError(f"version {instance.version_id} of {instance.id} is gone")
            _remember(self._versions, version.id, version)  # never changes once written
        cls = self.classes.load(version.script_name, version.class_name)
        name = self._workflow_names.get(version.workflow_id)
        if name is None:
            workflow = await self.store.get_workflow_by_id(version.workflow_id)
            if workflow is None:
                raise SteplineError(f"workflow {version.workflow_id} of {instance.id} is gone")
            # A workflow's name never changes for its id, so it is safe to remember.
            name = workflow.name
            _remember(self._workflow_names, version.workflow_id, name)
        return Runner(self, instance, steps, cls, name, version.step_limit)

    async def _drive(self, runner: Runner) -> None:
        try:
            await runner.run()
        except Exception:
            log.exception("runner of %s failed", runner.instance.id)
        finally:
            if self.runners.get(runner.pk) is runner:
                del self.runners[runner.pk]
            if not self.runners:
                self._idle.set()
            self.wake()


def _remember(cache: dict[str, V], key: str, value: V) -> None:
    """Keep ``value`` in ``cache``, forgetting the longest kept beyond ``_REMEMBERED``."""
    if len(cache) >= _REMEMBERED:
        del cache[next(iter(cache))]
    cache[key] = value


def _settle(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
