"""Terminate-all jobs (spec §1, endpoints 14 and 15): every instance of a workflow with one of
some statuses is terminated in the background, a page at a time.

A job lives in the database, not only in the process that started it: the workflow's flag
(``terminator_running``) and a job text naming its statuses stay set until the job has
terminated the last matching instance. A process that stops in the middle leaves the job set,
and the next one to start takes it up; two processes running one job do no harm, as each
terminate is conditional on the instance's status.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Collection, Sequence

from stepline.store.port import Store

__all__ = ["TERMINABLE_STATUSES", "Terminators"]

log = logging.getLogger("stepline.engine")

TERMINABLE_STATUSES = ("queued", "running", "paused", "waitingForPause", "waiting")
_PAGE = 500
_RETRY_S = (1.0, 60.0)
"""A job whose store call failed tries again after 1 s, then twice as long each time, up to
a minute."""

TerminateMany = Callable[[Sequence[int], Collection[str]], Awaitable[int]]


class Terminators:
    """This process's runs of terminate-all jobs."""

    def __init__(self, store: Store, terminate_many: TerminateMany) -> None:
        self.store = store
        self._terminate_many = terminate_many
        self._running: dict[tuple[str, str | None], asyncio.Task[None]] = {}
        """This process's runs, by workflow and job: a new job of a workflow gets a run of its
        own even while a run of the job before it is still ending."""

    async def start(self, workflow_id: str, statuses: Collection[str]) -> bool:
        """Start a job for ``statuses``; False when one is set for the workflow already."""
        job = json.dumps({"run": uuid.uuid4().hex, "statuses": list(statuses)})
        if not await self.store.start_terminator(workflow_id, job):
            return False
        self._run(workflow_id, job)
        return True

    async def take_up(self) -> None:
        """Run every job that the database holds and this process does not run yet."""
        for workflow_id, job in await self.store.terminator_jobs():
            self._run(workflow_id, job)

    async def stop(self) -> None:
        """Stop this process's runs; their jobs stay set for the next process to take up."""
        runs = [task for task in self._running.values() if not task.done()]
        for task in runs:
            task.cancel()
        await asyncio.gather(*runs, return_exceptions=True)  # each run leaves _running itself

    def _run(self, workflow_id: str, job: str | None) -> None:
        key = (workflow_id, job)
        if key in self._running:
            return
        task = asyncio.create_task(self._terminate(workflow_id, job))
        self._running[key] = task
        task.add_done_callback(lambda _: self._running.pop(key, None))

    async def _terminate(self, workflow_id: str, job: str | None) -> None:
        statuses = _statuses(job)
        delay, longest = _RETRY_S
        while True:
            try:
                while pks := await self.store.select_instance_pks(
                    workflow_id, statuses=statuses, limit=_PAGE
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


def _statuses(job: str | None) -> tuple[str, ...]:
    """The statuses a job terminates (a flag set without a job text: every one)."""
    if job is None:
        return TERMINABLE_STATUSES
    return tuple(json.loads(job)["statuses"])
