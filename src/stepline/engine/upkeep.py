"""The engine's upkeep beside running instances: cron firings, lease renewal and takeover,
and the retention sweep. A mixin of :class:`~stepline.engine.scheduler.Engine`, whose loops
call these."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from stepline.cron import cron_instance_id, next_fire
from stepline.engine.clock import Clock, elapsed_s
from stepline.engine.instances import new_instance_record
from stepline.errors import SteplineError
from stepline.store.port import Store

if TYPE_CHECKING:
    from stepline.engine.runner import Runner

__all__ = ["Upkeep", "log_failure"]

log = logging.getLogger("stepline.engine")


class Upkeep:
    """Cron firings, leases and retention, for the engine."""

    # Set by the engine (see ``Engine.__init__`` for what each is).
    store: Store
    clock: Clock
    runners: dict[int, Runner]
    owner: str
    lease_ms: int
    _lease_margin_s: float
    _pause_noticed: set[int] | None
    retention_sweep_ms: int
    wake: Callable[[], None]

    async def _fire_schedules(self) -> None:
        """Create the instances of every cron firing that has come due (once, whichever engine
        gets there first). A firing missed while no engine ran is made up once, not n times."""
        now = self.clock.now_ms()
        for schedule in await self.store.due_schedules(now, limit=100):
            workflow = await self.store.get_workflow_by_id(schedule.workflow_id)
            if workflow is None:
                continue
            fire_at = schedule.next_fire_at
            instance = new_instance_record(
                workflow,
                cron_instance_id(schedule.cron, fire_at),
                "null",
                now=now,
                trigger_source="cron",
                schedule=(schedule.cron, fire_at),
            )
            await self.store.fire_schedule(
                schedule,
                next_fire_at=next_fire(schedule.cron, max(fire_at, now)),
                instance=instance,
                now=now,
            )

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
                await self._renew_leases()
                now = self.clock.now_ms()
                taken = await self.store.recover_interrupted(now, lapsed_before=now)
                if taken:
                    log.info("took over instances whose engine's lease lapsed: %d", taken)
                    self.wake()
            except Exception as exc:  # nothing may end the loop
                log_failure("renewing leases", exc)

    async def _renew_leases(self) -> None:
        """Renew the leases of the instances this engine runs, those that have not lapsed
        (sharing the database, another engine may have taken one that did over already: its
        run here starts no more attempts, ``Runner.held_until``)."""
        if not self.runners:
            return
        now = self.clock.now_ms()
        if self.store.exclusive:
            await self.store.renew_leases(self.owner, now + self.lease_ms, list(self.runners))
            return
        started = elapsed_s()
        runners = list(self.runners.values())
        renewed = await self.store.renew_leases(
            self.owner, now + self.lease_ms, [r.pk for r in runners], valid_at=now
        )
        until = started + self.lease_ms / 1000 - self._lease_margin_s
        for runner in runners:
            runner.held_until = until if runner.pk in renewed else -math.inf
        await self._find_lost_pauses([r for r in runners if r.pk in renewed])

    async def _find_lost_pauses(self, runners: list[Runner]) -> None:
        """Pause the runs whose instance was asked to pause while this engine did not hear
        the notice (its LISTEN connection was down or silent): else they went on running
        steps until the run parked or ended."""
        unasked = [r for r in runners if not r.pause_requested]
        if not unasked:
            return
        noticed = self._pause_noticed = set()
        try:
            pausing = await self.store.pausing_among([r.pk for r in unasked])
        finally:
            self._pause_noticed = None
        # An instance a notice came for meanwhile goes by the notice, newer than the read.
        lost = pausing - noticed
        for runner in unasked:
            if runner.pk in lost and self.runners.get(runner.pk) is runner:
                runner.request_pause()

    async def _retention_loop(self) -> None:
        while True:
            try:
                await self.sweep_expired()
            except Exception as exc:  # nothing may end the loop
                log_failure("retention sweep", exc)
            await asyncio.sleep(self.retention_sweep_ms / 1000)


def log_failure(what: str, exc: Exception) -> None:
    """An error in one of the engine's loops, which goes on: an outage is one line, anything
    else its traceback too."""
    if isinstance(exc, SteplineError | OSError):
        log.error("%s failed: %s; retrying", what, exc)
    else:
        log.exception("%s failed; retrying", what)
