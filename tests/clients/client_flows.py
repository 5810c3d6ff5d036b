"""Workflows the client tests run on a real ``stepline serve``.

The server imports this module by name (``script_name = "client_flows"``), with this folder on
``PYTHONPATH``. Each class is built for what the tests need to see through the clients:

- ``QuickWorkflow`` completes in well under a second with two steps and an output;
- ``SleepyWorkflow`` runs one step, then sleeps for an hour (pause, resume, terminate, restart);
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
        numbers = payload.get("numbers", [1, 2, 3])

        @step.do("fetch data")
        async def fetch() -> Any:
            return {"numbers": numbers}

        @step.do("add up")
        async def add_up(fetch: Any) -> Any:
            return sum(fetch["numbers"])

        total = await add_up()
        return {"total": total, "label": payload.get("label", "none")}


class SleepyWorkflow(WorkflowEntrypoint):
    async def run(self, event: Any, step: Any) -> Any:
        @step.do("prepare")
        async def prepare() -> Any:
            return "prepared"

        await prepare()
        await step.sleep("nap", "1 hour")
        return "woke up"


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
