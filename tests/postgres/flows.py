"""Workflows run by the worker processes of the PostgreSQL fleet tests.

Each step body appends one line to the ledger named by ``STEPLINE_TEST_LEDGER`` with
O_APPEND, so the ledger survives SIGKILL and tells how often each step body really ran.
"""

from __future__ import annotations

import asyncio
import os
import random
import uuid
from typing import Any

from stepline import WorkflowEntrypoint

STEPS = 3
_ledger_fd = -1


def ledger(line: str) -> None:
    global _ledger_fd
    if _ledger_fd < 0:
        path = os.environ["STEPLINE_TEST_LEDGER"]
        _ledger_fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(_ledger_fd, (line + "\n").encode())


class Fleet(WorkflowEntrypoint):
    """Three logged steps, a sleep after the first (long enough to suspend for odd ``n``),
    then a wait for an "approve" event."""

    async def run(self, event: Any, step: Any) -> Any:
        iid, n = event.instance_id, event.payload["n"]
        tokens = []
        for k in range(STEPS):

            @step.do(f"work {k}", config={"retries": {"limit": 10, "delay": 50}})
            async def work(ctx: Any, k: int = k) -> dict[str, Any]:
                await asyncio.sleep(random.random() * 0.01)
                token = uuid.uuid4().hex
                ledger(f"{iid} work-{k} {token}")
                return {"k": k, "token": token}

            tokens.append((await work())["token"])
            if k == 0:
                await step.sleep("nap", "1200 milliseconds" if n % 2 else "50 milliseconds")
        approval = await step.wait_for_event("approval", "approve", timeout="1 hour")
        return {"tokens": tokens, "approval": approval["payload"]}
