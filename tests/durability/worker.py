"""A subprocess for durability tests: runs an engine on a SQLite file until told to stop.

    python -m tests.durability.worker DB LEDGER create N      create N instances, buffer event 1
    python -m tests.durability.worker DB LEDGER send-second   buffer event 2 for every instance
    python -m tests.durability.worker DB LEDGER run           run the engine (until killed or done)
    python -m tests.durability.worker DB LEDGER sleepers N    N instances that sleep, report RSS

Step bodies append one line per execution to LEDGER with O_APPEND, so the ledger survives
SIGKILL and shows the order in which step bodies really ran.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import resource
import sys
import time
import uuid

from stepline import Stepline, WorkflowEntrypoint

ACCOUNT = "durability"
STEPS = 5
LEDGER_FD = -1


def ledger(line: str) -> None:
    """Append ``line`` to the ledger. The engine may load this module's classes by import
    (as ``tests.durability.worker``, not ``__main__``) when it claims an instance before
    ``register`` has run: that copy opens the ledger from the environment."""
    global LEDGER_FD
    if LEDGER_FD < 0:
        path = os.environ["STEPLINE_TEST_LEDGER"]
        LEDGER_FD = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(LEDGER_FD, (line + "\n").encode())


class Crashy(WorkflowEntrypoint):
    """Five steps that log each execution, a sleep, and two waits for the same event type."""

    async def run(self, event, step):
        iid = event.instance_id
        total = 0
        for k in range(STEPS):

            @step.do(
                f"work {k}", config={"retries": {"limit": 20, "delay": 5, "backoff": "constant"}}
            )
            async def work(ctx, k=k):
                await asyncio.sleep(random.random() * 0.004)
                token = uuid.uuid4().hex
                ledger(f"{iid} work-{k} {token}")
                return {"k": k, "token": token}

            total += (await work())["k"]
            if k == 2:
                await step.sleep("nap", "150 milliseconds")
        first = await step.wait_for_event("first", "go", timeout="1 hour")
        second = await step.wait_for_event("second", "go", timeout="1 hour")
        return {"total": total, "events": [first["payload"], second["payload"]]}


class Sleeper(WorkflowEntrypoint):
    """Sleeps until the time in its params, then records when it woke."""

    async def run(self, event, step):
        await step.sleep_until("nap", event.payload["wake_at"])

        @step.do("woke")
        async def woke():
            return int(time.time() * 1000)

        return await woke()


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def main(db: str, mode: str, args: list[str]) -> None:
    async with Stepline(
        db,
        account_id=ACCOUNT,
        suspend_after="20 milliseconds",
        run_engine=mode in ("run", "sleepers"),
    ) as stepline:
        crashy = await stepline.register("crashy", Crashy, script_name="tests.durability.worker")
        sleeper = await stepline.register("sleeper", Sleeper, script_name="tests.durability.worker")
        if mode == "create":
            count = int(args[0])
            for start in range(0, count, 100):
                ids = [{"id": f"i{n}"} for n in range(start, min(count, start + 100))]
                await crashy.create_batch(ids)
            for n in range(count):
                await (await crashy.get(f"i{n}")).send_event("go", {"seq": 1})
        elif mode == "send-second":
            page = await stepline.client.list_instances(ACCOUNT, "crashy", per_page=100)
            cursor = page.cursor
            items = list(page.items)
            while cursor:
                page = await stepline.client.list_instances(
                    ACCOUNT, "crashy", per_page=100, cursor=cursor
                )
                items += page.items
                cursor = page.cursor
            for item in items:
                await (await crashy.get(item["id"])).send_event("go", {"seq": 2})
        elif mode == "run":
            await asyncio.Event().wait()  # until killed
        elif mode == "sleepers":
            await sleeper_scenario(stepline, sleeper, int(args[0]), float(args[1]))


async def sleeper_scenario(stepline, sleeper, count: int, sleep_s: float) -> None:
    await asyncio.sleep(0.5)
    baseline = rss_mb()
    now = int(time.time() * 1000)
    wake_base = now + int(sleep_s * 1000)
    for start in range(0, count, 100):
        await sleeper.create_batch(
            [
                {"id": f"s{n}", "params": {"wake_at": wake_base + (n % 4000)}}
                for n in range(start, min(count, start + 100))
            ]
        )
    # Wait until every instance is parked, then measure.
    while True:
        page = await stepline.client.list_instances(
            ACCOUNT, "sleeper", per_page=1, status="waiting"
        )
        if page.total_count == count:
            break
        await asyncio.sleep(0.05)
    parked = rss_mb()
    # The last group commit of suspensions is visible to a reader a moment before its runners
    # have been told and have unwound: a runner that stays is one still here after that.
    for _ in range(200):
        if not stepline.engine.runners:
            break
        await asyncio.sleep(0.01)
    in_memory = len(stepline.engine.runners)
    while True:
        page = await stepline.client.list_instances(
            ACCOUNT, "sleeper", per_page=1, status="complete"
        )
        if page.total_count == count:
            break
        await asyncio.sleep(0.1)
    print(json.dumps({"baseline_mb": baseline, "parked_mb": parked, "runners_parked": in_memory}))


if __name__ == "__main__":
    database, ledger_path, mode, *rest = sys.argv[1:]
    os.environ["STEPLINE_TEST_LEDGER"] = ledger_path
    asyncio.run(main(database, mode, rest))
