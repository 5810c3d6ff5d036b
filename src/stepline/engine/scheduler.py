"""The engine: claims runnable instances, keeps their runners, sweeps expired ones.

Runnable means queued, or waiting with a wake time that has come (a sleep's end, a retry,
a wait's deadline, or an event that a wait needs). Up to ``concurrency`` instances run at
once; sleeping, waiting and paused instances hold no slot, no task and no memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from stepline.engine.clock import Clock, SystemClock
from stepline.engine.hooks import NO_HOOKS, StepHooks
from stepline.engine.registry import WorkflowClasses
from stepline.engine.runner import Runner
from stepline.errors import SteplineError
from stepline.store.port import Notice, Store
from stepline.store.records import InstanceRecord, StepRecord, VersionRecord

__all__ = ["Engine"]

log = logging.getLogger("stepline.engine")

_CLAIM_BATCH = 500


class Engine:
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
        step_threads: int = 32,
        env: Any = None,
        hooks: StepHooks = NO_HOOKS,
    ) -> None:
        self.store = store
        self.classes = classes
        self.clock: Clock = clock or SystemClock()
        self.concurrency = concurrency
        self.suspend_after_ms = suspend_after_ms
        self.retention_sweep_ms = retention_sweep_ms
        self.lease_ms = lease_ms
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        """This engine's name on the leases it holds."""
        self.env = env
        self.hooks = hooks
        self.step_executor = ThreadPoolExecutor(step_threads, thread_name_prefix="stepline-step")
        self.runners: dict[int, Runner] = {}
        self._pending_pause: set[int] = set()
        self._stopping: set[asyncio.Task[None]] = set()
        self._poke = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._workflow_names: dict[str, str] = {}
        self._versions: dict[str, VersionRecord] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        self.clock.on_advance(self.wake)

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        now = self.clock.now_ms()
        # Alone on the database (SQLite), every running instance was ours and is orphaned;
        # sharing it, only instances whose lease has lapsed are.
        lapsed_before = now + 10 * self.lease_ms if self.store.exclusive else now
        recovered = await self.store.recover_interrupted(now, lapsed_before=lapsed_before)
        if recovered:
            log.info("recovered %d interrupted instances", recovered)
        self.store.subscribe(self.handle_notice)
        self._tasks = [
            asyncio.create_task(self._schedule_loop(), name="stepline-scheduler"),
            asyncio.create_task(self._retention_loop(), name="stepline-retention"),
            asyncio.create_task(self._lease_loop(), name="stepline-leases"),
        ]

    async def stop(self) -> None:
        """Stop claiming and cancel the runners; their instances resume on the next start."""
        for task in self._tasks:
            task.cancel()
        for runner in list(self.runners.values()):
            if runner.task is not None:
                runner.task.cancel()
        pending = [t for t in self._tasks] + [
            r.task for r in self.runners.values() if r.task is not None
        ]
        await asyncio.gather(*pending, return_exceptions=True)
        self._tasks = []
        self.step_executor.shutdown(wait=False, cancel_futures=True)

    def wake(self) -> None:
        """Something may have become runnable: look again now."""
        self._poke.set()

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
            if runner is not None:
                runner.request_pause()
            else:  # claimed here a moment ago; the runner is about to start
                self._pending_pause.add(notice.pk)
        elif notice.kind == "unpause":
            self._pending_pause.discard(notice.pk)
            if runner is not None:
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
            self._poke.clear()
            try:
                claimed = await self._claim_some()
            except (SteplineError, OSError) as exc:
                log.error("claiming runnable instances failed: %s; retrying", exc)
                await asyncio.sleep(1)
                continue
            if claimed:
                continue
            timeout = await self._until_next_wake()
            if timeout is None or timeout > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._poke.wait(), timeout)

    async def _claim_some(self) -> bool:
        """Claim a batch if there is room; True when a full batch came back (look again)."""
        free = self.concurrency - len(self.runners)
        if free <= 0:
            return False
        want = min(free, _CLAIM_BATCH)
        now = self.clock.now_ms()
        batch = await self.store.claim_runnable(
            now, want, owner=self.owner, lease_until=now + self.lease_ms
        )
        for instance, steps in batch:
            await self._start_runner(instance, steps)
        return len(batch) == want

    async def _until_next_wake(self) -> float | None:
        """Seconds until the next timer; with a skipping clock and nothing running, none."""
        if self.clock.auto_skip and not self.runners:
            next_timer = await self.store.next_wake_at(("timer",))
            if next_timer is not None:
                self.clock.advance_to(next_timer)
                return 0
        next_wake = await self.store.next_wake_at()
        if next_wake is None:
            return None
        remaining = next_wake - self.clock.now_ms()
        if remaining <= 0:
            # Due but not claimed just now: its workflow is at its concurrency limit. A
            # runner that ends pokes us; look again within a second regardless.
            return 1.0
        return remaining / 1000

    async def _start_runner(self, instance: InstanceRecord, steps: list[StepRecord]) -> None:
        try:
            runner = await self._make_runner(instance, steps)
        except SteplineError as exc:
            log.error("cannot run instance %s: %s", instance.id, exc)
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
            return
        self.runners[instance.pk] = runner
        self._idle.clear()
        if instance.pk in self._pending_pause:
            self._pending_pause.discard(instance.pk)
            runner.request_pause()
        runner.task = asyncio.create_task(self._drive(runner), name=f"stepline-run-{instance.id}")

    async def _make_runner(self, instance: InstanceRecord, steps: list[StepRecord]) -> Runner:
        version = self._versions.get(instance.version_id)
        if version is None:
            version = await self.store.get_version(instance.version_id)
            if version is None:
                raise SteplineError(f"version {instance.version_id} of {instance.id} is gone")
            self._versions[version.id] = version  # versions never change once written
        cls = self.classes.load(version.script_name, version.class_name)
        name = self._workflow_names.get(version.workflow_id)
        if name is None:
            workflow = await self.store.get_workflow_by_id(version.workflow_id)
            if workflow is None:
                raise SteplineError(f"workflow {version.workflow_id} of {instance.id} is gone")
            # A workflow's name never changes for its id, so it is safe to remember.
            name = self._workflow_names[version.workflow_id] = workflow.name
        return Runner(self, instance, steps, cls, name, version.step_limit)

    async def _drive(self, runner: Runner) -> None:
        try:
            await runner.run()
            if runner.resume_after_park:
                # The pause was cancelled while the runner was already parking it as paused.
                await self.store.resume(runner.pk, now=self.clock.now_ms())
        except Exception:
            log.exception("runner of %s failed", runner.instance.id)
        finally:
            if self.runners.get(runner.pk) is runner:
                del self.runners[runner.pk]
            if not self.runners:
                self._idle.set()
            self.wake()

    async def sweep_expired(self) -> int:
        """Delete every finished instance whose retention has run out; returns how many."""
        total = 0
        while True:
            deleted = await self.store.delete_expired(self.clock.now_ms(), limit=1_000)
            total += deleted
            if deleted < 1_000:
                return total
            await asyncio.sleep(0)

    async def _lease_loop(self) -> None:
        """Renew this engine's leases in one statement, and take over lapsed ones."""
        while True:
            await asyncio.sleep(self.lease_ms / 3000)
            try:
                now = self.clock.now_ms()
                if self.runners:
                    await self.store.renew_leases(self.owner, now + self.lease_ms)
                if await self.store.recover_interrupted(now, lapsed_before=now):
                    self.wake()
            except (SteplineError, OSError) as exc:
                log.error("renewing leases failed: %s", exc)

    async def _retention_loop(self) -> None:
        while True:
            try:
                await self.sweep_expired()
            except (SteplineError, OSError) as exc:
                log.error("retention sweep failed: %s", exc)
            await asyncio.sleep(self.retention_sweep_ms / 1000)
