"""Workflows the live CLI tests run on a real ``stepline serve``.

The server imports this module by name (``script_name = "cli_live_flows"``), with this folder on
``PYTHONPATH``. Each class gives the CLI something to show:

- ``QuickWorkflow`` completes at once with two steps and an output (the sum of its numbers);
- ``SleepyWorkflow`` runs one step, then sleeps for an hour (pause, resume, terminate, restart);
- ``NapWorkflow`` runs a step, sleeps 1.5 s, runs another and completes (``describe --watch``);
- ``ApprovalWorkflow`` waits for an ``approved`` event and returns its payload;
- ``BrokenWorkflow`` fails its only step, with no retries, so the instance errors at once.
"""

from __future__ import annotations

from typing import Any

from stepline import WorkflowEntrypoint

NO_RETRIES = {"retries": {"limit": 0, "delay": "1 second", "backoff": "constant"}}


class QuickWorkflow(WorkflowEntrypoint):
    async def run(self, event: Any, step: Any) -> Any:
        payload = event.payload if isinstance(event.payload, dict) else {}

        @step.do("fetch numbers")
        async def fetch() -> Any:
            return {"numbers": payload.get("numbers", [1, 2, 3])}

        @step.do("add up")
        async def add_up(fetch: Any) -> Any:
            return sum(fetch["numbers"])

        return {"total": await add_up()}


class SleepyWorkflow(WorkflowEntrypoint):
    async def run(self, event: Any, step: Any) -> Any:
        @step.do("prepare")
        async def prepare() -> Any:
            return "prepared"

        await prepare()
        await step.sleep("nap", "1 hour")
        return "woke up"


class NapWorkflow(WorkflowEntrypoint):
    async def run(self, event: Any, step: Any) -> Any:
        @step.do("before")
        async def before() -> Any:
            return "ready"

        await before()
        await step.sleep("short nap", "1500 ms")

        @step.do("after")
        async def after() -> Any:
            return "rested"

        return await after()


class ApprovalWorkflow(WorkflowEntrypoint):
    async def run(self, event: Any, step: Any) -> Any:
        approval = await step.wait_for_event("wait for approval", "approved", timeout="1 hour")
        return {"approved_by": approval["payload"]}


class BrokenWorkflow(WorkflowEntrypoint):
    async def run(self, event: Any, step: Any) -> Any:
        @step.do("explode", config=NO_RETRIES)
        async def explode() -> Any:
            raise ValueError("boom")

        return await explode()
