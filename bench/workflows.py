"""The Stepline workflows the scenarios run, in-process and in a ``stepline serve`` subprocess.

Step bodies are trivial ``async`` functions so that what is measured is the engine: the
durable write of each step, scheduling and replay. Bodies that time themselves append to
module-level lists, which only the in-process scenarios read.
"""

from __future__ import annotations

import time

from stepline import WorkflowEntrypoint

__all__ = ["STAMPS", "WAKE_LATENESS_MS", "Parker", "Sleeper", "Stamped", "Trivial", "Waiter"]

STAMPS: list[float] = []
"""``time.perf_counter()`` at the start of each step body of :class:`Stamped`."""

WAKE_LATENESS_MS: list[float] = []
"""Per :class:`Sleeper`: wall-clock ms between its due time and its first step after waking."""


class Trivial(WorkflowEntrypoint):
    """``params["steps"]`` sequential trivial async steps (the throughput scenario)."""

    async def run(self, event, step):
        total = 0
        for index in range(event.payload["steps"]):

            async def body(index=index):
                return index

            total += await step.do(f"s{index}", body)
        return total


class Stamped(WorkflowEntrypoint):
    """Like :class:`Trivial`, and each step body records when it started (step latency)."""

    async def run(self, event, step):
        for index in range(event.payload["steps"]):

            async def body(index=index):
                STAMPS.append(time.perf_counter())
                return index

            await step.do(f"s{index}", body)
        return len(STAMPS)


class Waiter(WorkflowEntrypoint):
    """Waits for event ``go``, then a step records the wall-clock time it resumed (µs)."""

    async def run(self, event, step):
        await step.wait_for_event("go", "go", timeout="1 hour")

        async def resumed():
            return time.time_ns() // 1_000

        return await step.do("resumed", resumed)


class Parker(WorkflowEntrypoint):
    """Parks at once on an event that never comes (REST create measures creation only)."""

    async def run(self, event, step):
        await step.wait_for_event("never", "never", timeout="1 day")


class Sleeper(WorkflowEntrypoint):
    """Sleeps until ``params["wake_at"]`` (epoch ms), then records how late it woke."""

    async def run(self, event, step):
        wake_at = event.payload["wake_at"]
        await step.sleep_until("nap", wake_at)

        async def woke():
            late = time.time() * 1000 - wake_at
            WAKE_LATENESS_MS.append(late)
            return late

        return await step.do("woke", woke)
