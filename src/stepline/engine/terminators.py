"""Terminate-all jobs (spec §1, endpoints 14 and 15): every instance of a workflow with one of
some statuses, created by the time the job was asked for, is terminated in the background, a
page at a time.

A job lives in the database, not only in the process that started it: the workflow's flag
(``terminator_running``) and a job text naming its statuses stay set until the job has
terminated the last matching instance. The process running a job holds it by a lease, which
it renews every third of a lease while it runs. A process that stops in the middle gives the
lease back, and one that dies lets it lapse; either way every running process looks for jobs
nobody holds as often as it renews, and takes them up (``serve`` and ``worker`` alike). Two
processes running one job, as when a lease lapsed while its holder was only slow, do no harm:
each terminate is conditional on the instance's status.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Collection, Sequence

from stepline.engine.clock import Clock
from stepline.store.port import Store

__all__ = ["TERMINABLE_STATUSES", "Terminators"]

log = logging.getLogger("stepline.engine")

TERMINABLE_STATUSES = ("queued", "running", "paused", "waitingForPause", "waiting")
_PAGE = 500
_RETRY_S = (1.0, 60.0)
"""A job whose store call failed tries again after 1 s, then twice as long each time, up to
a minute."""
_STOP_WAIT_S = 5.0
"""How long a stop lets a look for jobs in progress finish (so that what it took is run, then
given back) before cutting it off."""

TerminateMany = Callable[[Sequence[int], Collection[str]], Awaitable[int]]


class Terminators:
    """This process's runs of terminate-all jobs, and its watch for jobs nobody holds."""

    def __init__(
        self, store: Store, terminate_many: TerminateMany, clock: Clock, lease_ms: int
    ) -> None:
        self.store = store
        self._terminate_many = terminate_many
        self.clock = clock
        self.lease_ms = lease_ms
        self._running: dict[tuple[str, str], asyncio.Task[None]] = {}
        """This process's runs, by workflow and job: a new job of a workflow gets a run of its
        own even while a run of the job before it is still ending."""
        self._watch: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    async def start(self, workflow_id: str, statuses: Collection[str]) -> bool:
        """Start a job for ``statuses``; False when one is set for the workflow already."""
        now = self.clock.now_ms()
        # The instances there when it was asked for: the job ends, however fast new ones come.
        job = json.dumps({"run": uuid.uuid4().hex, "statuses": list(statuses), "created_by": now})
        lease_until = now + self.lease_ms
        if not await self.store.start_terminator(workflow_id, job, lease_until=lease_until):
            return False
        self._run(workflow_id, job)
        return True

    def take_up(self) -> None:
        """Run the jobs that nobody holds, from now on: at once, then every third of a lease
        (renewing this process's jobs), take up those whose holder stopped or died."""
        if self._watch is None:
            self._stopping = asyncio.Event()  # of this loop, for this watch
            self._watch = asyncio.create_task(self._watch_jobs(), name="stepline-terminators")

    async def stop(self) -> None:
        """Stop watching and stop this process's runs; their jobs stay set, given back for the
        next process to take up at once."""
        if self._watch is not None:
            # Not cancelled in the middle of a look: jobs it took would be held by nobody
            # until their lease lapsed, instead of given back below.
            self._stopping.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._watch, timeout=_STOP_WAIT_S)
            self._watch = None
        runs = dict(self._running)
        for task in runs.values():
            task.cancel()
        await asyncio.gather(*runs.values(), return_exceptions=True)  # each leaves _running
        if not runs:
            return
        try:
            await self.store.hold_terminator_jobs(list(runs), lease_until=None)
        except Exception as exc:  # they lapse instead
            log.warning("could not give back %d terminate-all jobs: %s", len(runs), exc)

    async def _watch_jobs(self) -> None:
        while not self._stopping.is_set():
            try:
                now = self.clock.now_ms()
                if self._running:
                    await self.store.hold_terminator_jobs(
                        list(self._running), lease_until=now + self.lease_ms
                    )
                for workflow_id, job in await self.store.take_terminator_jobs(
                    now=now, lease_until=now + self.lease_ms
                ):
                    self._run(workflow_id, job)
            except Exception as exc:  # the store is down: look again next time
                log.error("watching terminate-all jobs failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=self.lease_ms / 3000)

    def _run(self, workflow_id: str, job: str) -> None:
        key = (workflow_id, job)
        if key in self._running:
            return
        task = asyncio.create_task(self._terminate(workflow_id, job))
        self._running[key] = task
        task.add_done_callback(lambda _: self._running.pop(key, None))

    async def _terminate(self, workflow_id: str, job: str) -> None:
        spec = json.loads(job)
        statuses = tuple(spec["statuses"])
        # A job of an earlier version has no bound: the instances there when it is taken up
        # are the nearest to those there when it was asked for.
        created_by = spec.get("created_by") or self.clock.now_ms()
        delay, longest = _RETRY_S
        while True:
            try:
                while pks := await self.store.select_instance_pks(
                    workflow_id, statuses=statuses, limit=_PAGE, created_by=created_by
                ):
                    await self._terminate_many(pks, statuses)
                await self.store.end_terminator(workflow_id, job)
                return
            except Exception:
                log.exception(
                    "terminating the instances of workflow %s failed; trying again", workflow_id
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, longest)
