"""A running instance holds no step result or event payload it has already handed to ``run``.

A step's result and an event's payload may each be up to 1 MiB, and an instance may take
thousands of steps. They are kept in the store, so the engine needs one only until ``run`` has
it: a finished step's key is not reached again in the same run, and a replay reads them from
the store afresh.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator

import pytest

from stepline import Stepline, WorkflowEntrypoint
from stepline.validation import dump_json
from tests.engine.helpers import finished

BIG = 1_000_000
"""One result's or payload's size in characters: under the 1 MiB limit of each."""
EACH = 8
"""Big steps before the sleep, big events, big steps after: 3 × 8 MB through the run."""


class BigValues(WorkflowEntrypoint):
    """Big step results and event payloads that ``run`` drops at once, a long sleep (which
    replays them when the instance suspends), then a step that weighs the heap now and at
    its peak since the sleep began."""

    async def run(self, event, step):
        await self.big_steps(step, "before")
        for n in range(EACH):
            got = await step.wait_for_event(f"wait-{n}", "big", timeout="1 hour")
            assert len(got.pop("payload")) == BIG

        @step.do("reset the peak")
        async def reset():
            tracemalloc.reset_peak()

        await reset()
        await step.sleep("nap", "1 hour")
        await self.big_steps(step, "after")

        @step.do("weigh")
        async def weigh():
            now, peak = tracemalloc.get_traced_memory()
            self.env.hit("heap", now)
            self.env.hit("peak", peak)

        await weigh()

    @staticmethod
    async def big_steps(step, side):
        for n in range(EACH):

            @step.do(f"{side}-{n}")
            async def big():
                return "x" * BIG

            assert len(await big()) == BIG


@pytest.fixture
def traced() -> Iterator[None]:
    tracemalloc.start()
    try:
        yield
    finally:
        tracemalloc.stop()


@pytest.mark.usefixtures("traced")
async def test_a_run_does_not_hold_the_values_it_has_taken(any_stepline: Stepline, probe):
    workflow = await any_stepline.register("big-values", BigValues)
    payload = "x" * BIG
    before = tracemalloc.get_traced_memory()[0]
    instance = await workflow.create()
    for _ in range(EACH):
        await instance.send_event("big", payload)
    # Not ``finished``: its polls read every step, and one under way would be weighed too.
    await probe.wait_for("heap", timeout=30)
    assert (await finished(instance))["status"] == "complete"
    held = probe.seen["heap"][-1] - before
    # 24 values of 1 MB went through the run. Allowed: the value ``run`` holds now, the last
    # writes in flight (their text, 1 MB each), and anything small.
    assert held < 8 * BIG, f"{held / BIG:.1f} MB held after {3 * EACH} values of 1 MB"


@pytest.mark.usefixtures("traced")
async def test_a_wake_reads_a_large_value_only_when_the_replay_reaches_it(
    any_stepline: Stepline, probe
):
    workflow = await any_stepline.register("big-values", BigValues)
    payload = "x" * BIG
    instance = await workflow.create()
    for _ in range(EACH):
        await instance.send_event("big", payload)
    await probe.wait_for("heap", timeout=30)

    assert (await finished(instance))["status"] == "complete"
    peak = probe.seen["peak"][-1] - probe.seen["heap"][-1]
    # Since the sleep: the wake and the replay of 16 values of 1 MB, or (hot) none, then 8
    # more steps. One value at a time, and its JSON text, is what a step needs.
    assert peak < 6 * BIG, f"a peak of {peak / BIG:.1f} MB over the heap after the run"


LARGE = 100_000
"""Larger than what a wake loads with the steps (16 KiB): read when the replay needs it."""


class LargeResults(WorkflowEntrypoint):
    """Distinct large results, a small one and a large event, a sleep that replays them all,
    then what the replay gave back."""

    async def run(self, event, step):
        self.env.hit("run")
        values = [
            await step.do(f"large {n}", lambda n=n: chr(ord("a") + n) * LARGE) for n in range(3)
        ]
        values.append(await step.do("small", lambda: {"small": True}))
        got = await step.wait_for_event("large event", "large", timeout="1 hour")
        values.append(got["payload"])
        await step.sleep("nap", "1 hour")
        return [v if isinstance(v, dict) else [v[0], len(v)] for v in values]


async def test_a_replay_gives_back_large_values_read_from_the_store(suspending: Stepline, probe):
    workflow = await suspending.register("large-results", LargeResults)
    instance = await workflow.create()
    await instance.send_event("large", "z" * LARGE)
    view = await finished(instance)

    assert probe.calls["run"] >= 2, "run() was not replayed; the test proves nothing"
    assert view["output"] == [
        ["a", LARGE],
        ["b", LARGE],
        ["c", LARGE],
        {"small": True},
        ["z", LARGE],
    ]


async def test_a_replay_whose_large_value_is_gone_ends_and_the_new_run_goes_on(
    suspending: Stepline, probe, clock, monkeypatch
):
    """Restarted by another process between the wake and the replay's read: the read finds
    no row, the old run ends without a write, and the restarted run does the work again."""
    workflow = await suspending.register("large-results", LargeResults)
    instance = await workflow.create()
    await instance.send_event("large", "z" * LARGE)
    store = suspending.store
    read = store.step_output
    restarted: list[int] = []

    async def restarted_first(pk: int, key: str) -> str | None:
        if not restarted:  # what another process's restart does to the rows
            again = await store.restart(pk, from_seq=None, now=clock.now_ms())
            assert again is not None
            restarted.append(again.generation)
            await store.buffer_event(pk, "large", dump_json("y" * LARGE), now=clock.now_ms())
            suspending.engine.wake()  # its notice
        return await read(pk, key)

    monkeypatch.setattr(store, "step_output", restarted_first)
    view = await finished(instance)

    assert len(restarted) == 1
    assert view["status"] == "complete", view
    expected = [["a", LARGE], ["b", LARGE], ["c", LARGE], {"small": True}, ["y", LARGE]]
    assert view["output"] == expected
