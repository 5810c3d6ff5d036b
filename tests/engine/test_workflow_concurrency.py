"""A workflow's own concurrency limit (PUT ``concurrency.limit``) caps its running instances."""

from __future__ import annotations

import asyncio

from stepline import Stepline, WorkflowEntrypoint
from stepline.store.port import WorkflowSettings
from stepline.testing import wait_for_status


class Gate(WorkflowEntrypoint):
    async def run(self, event, step):
        @step.do("wait at the gate")
        async def blocked():
            self.env["running"].add(event.instance_id)
            self.env["peak"] = max(self.env["peak"], len(self.env["running"]))
            await self.env["gate"].wait()
            self.env["running"].discard(event.instance_id)
            return event.instance_id

        return await blocked()


async def test_a_workflow_runs_no_more_instances_than_its_limit(tmp_path) -> None:
    probe = {"running": set(), "peak": 0, "gate": asyncio.Event()}
    async with Stepline(f"sqlite:///{tmp_path}/c.sqlite3", env=probe) as stepline:
        await stepline.control.register(
            stepline.account_id, "gated", Gate, WorkflowSettings(concurrency_limit=2)
        )
        free = await stepline.register("free", Gate)
        gated = stepline.workflow("gated")
        capped = [await gated.create(id=f"g{n}") for n in range(5)]
        others = [await free.create(id=f"f{n}") for n in range(3)]
        for instance in others:  # another workflow is not held back by this one's limit
            await wait_for_status(instance, "running")
        await asyncio.sleep(0.3)
        statuses = [(await i.status())["status"] for i in capped]
        assert statuses.count("running") == 2
        assert statuses.count("queued") == 3
        probe["gate"].set()
        for instance in capped + others:
            await wait_for_status(instance, "complete")
        assert probe["peak"] == 2 + 3
