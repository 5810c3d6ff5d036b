"""``python -m bench.wake_memory``: the engine's resident memory while instances with large
step results run, park and wake.

N instances each run K steps that return S bytes and sleep 3 seconds (which parks them, past
``suspend_after``); a second process then starts an engine on the same database, which wakes
them, replays the K results and ends them. Each process samples its resident set every 10 ms;
the table gives each one's peak above what it had before its phase began.

    python -m bench.wake_memory                                  # 10 x 20 steps of 1 MB
    python -m bench.wake_memory --instances 50 --steps 10 --size 100000

A replay needs one result at a time; an engine that loads every result of an instance when
it wakes holds N x K x S at once (200 MB by default).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import subprocess
import sys
from typing import Any

from bench._common import PeakRss, count_status, fresh_dir, rss_mb, wait_complete, wait_count
from stepline import Stepline, WorkflowEntrypoint


class Hoarder(WorkflowEntrypoint):
    """``params``: ``steps`` results of ``size`` bytes each, a 3-second sleep, then their
    total size as replayed."""

    async def run(self, event, step):
        size = event.payload["size"]
        lengths = []
        for index in range(event.payload["steps"]):

            async def body(index=index):
                return chr(ord("a") + index % 26) * (size - 2)

            lengths.append(len(await step.do(f"r{index}", body)))
        await step.sleep("park", "3 seconds")
        return sum(lengths)


async def run_and_park(database: str, instances: int, steps: int, size: int) -> dict[str, Any]:
    """Create the instances and wait until every one has parked; the peak while they ran."""
    async with Stepline(database, account_id="bench", synchronous="NORMAL") as stepline:
        flow = await stepline.register("hoarder", Hoarder, script_name="bench.wake_memory")
        waiting = functools.partial(count_status, stepline, "hoarder", "waiting")
        base = rss_mb()
        async with PeakRss().sampling() as peak:
            params = {"steps": steps, "size": size}
            await flow.create_batch([{"params": params}] * instances)
            await wait_count(waiting, instances, interval=0.01)
    return {"peak_mb": peak.mb - base}


async def wake(database: str, instances: int) -> dict[str, Any]:
    """Start an engine on a database of parked instances and wait until they are complete;
    the peak while they woke and replayed."""
    base = rss_mb()
    async with (
        PeakRss().sampling() as peak,
        Stepline(database, account_id="bench", synchronous="NORMAL") as stepline,
    ):
        await wait_complete(stepline, "hoarder", instances)
    return {"peak_mb": peak.mb - base}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=10)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int, default=1_000_000, help="bytes a result")
    parser.add_argument("--wake", metavar="DATABASE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.wake:  # the second process: only the wake
        print(json.dumps(asyncio.run(wake(args.wake, args.instances))))
        return
    with fresh_dir() as folder:
        database = f"sqlite:///{folder / 'stepline.sqlite3'}"
        ran = asyncio.run(run_and_park(database, args.instances, args.steps, args.size))
        # A process of its own, so that what the first one allocated is not counted again.
        child = [sys.executable, "-m", "bench.wake_memory", "--wake", database]
        child += ["--instances", str(args.instances)]
        woke = json.loads(subprocess.run(child, check=True, capture_output=True).stdout)
    total = args.instances * args.steps * args.size / 1e6
    print(
        f"{args.instances} instances x {args.steps} results of {args.size:,} bytes "
        f"({total:,.0f} MB in all), SQLite NORMAL"
    )
    print("phase (process)           peak resident MB above its start")
    print(f"run, then park (first)    {ran['peak_mb']:33.0f}")
    print(f"wake and replay (second)  {woke['peak_mb']:33.0f}")


if __name__ == "__main__":
    main()
