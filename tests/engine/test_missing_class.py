"""An engine that cannot load a workflow's class (its module is missing here, or a deploy has
not reached this engine yet) leaves the workflow's instances queued for an engine that can,
and tries again a minute later; the instances are not errored for the engine's lack."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from stepline import Stepline, WorkflowEntrypoint
from stepline.engine.registry import WorkflowClasses
from stepline.errors import WorkflowClassNotFound
from stepline.testing import TestClock
from tests.conftest import MakeStepline
from tests.engine.helpers import finished, poke


class Quick(WorkflowEntrypoint):
    async def run(self, event, step):
        return await step.do("one", lambda: event.payload)


class Missing:
    """Makes ``classes`` fail to load ``class_name`` while ``missing`` is set."""

    def __init__(self, classes: WorkflowClasses, class_name: str) -> None:
        self.missing = True
        self.tries = 0
        load = classes.load

        def patched(script_name: str, name: str) -> Any:
            if name == class_name and self.missing:
                self.tries += 1
                raise WorkflowClassNotFound(f"module {script_name!r} has no class {name!r}")
            return load(script_name, name)

        classes.load = patched  # type: ignore[method-assign]


class Absent(Quick):
    pass


async def _status(stepline: Stepline, handle: Any) -> str:
    return (await handle.status())["status"]


@pytest.mark.parametrize("concurrency", [None, 5], ids=["no limit", "a concurrency limit"])
async def test_instances_of_a_class_the_engine_cannot_load_wait_queued_until_it_can(
    make_stepline: MakeStepline, clock: TestClock, concurrency: int | None
):
    stepline = await make_stepline()
    absent = await stepline.register("absent", Absent, concurrency=concurrency)
    fine = await stepline.register("fine", Quick)
    missing = Missing(stepline.engine.classes, "Absent")

    waiting = await absent.create(params="later")
    # The engine goes on with what it can run, and leaves the other one alone.
    assert (await finished(await fine.create(params=1)))["output"] == 1
    second = await absent.create(params="also later")
    assert (await finished(await fine.create(params=2)))["output"] == 2
    assert missing.tries == 1
    assert [await _status(stepline, h) for h in (waiting, second)] == ["queued", "queued"]

    # The code arrives (a deploy, a fixed module): within a minute both run.
    missing.missing = False
    clock.advance("61 seconds")
    poke(stepline)
    assert (await finished(waiting))["output"] == "later"
    assert (await finished(second))["output"] == "also later"


class Present(Quick):
    pass


async def test_a_version_whose_class_cannot_be_loaded_holds_back_no_other_version(
    make_stepline: MakeStepline,
):
    """A deploy renamed the class: instances of the version before it wait for that code,
    and those of the new version run at once."""
    stepline = await make_stepline()
    await stepline.register("renamed", Absent)
    Missing(stepline.engine.classes, "Absent")
    before = await stepline.workflow("renamed").create(params="old")

    await stepline.register("renamed", Present)
    after = await stepline.workflow("renamed").create(params="new")

    assert (await finished(after, timeout=5))["output"] == "new"
    assert await _status(stepline, before) == "queued"


class Blocker(WorkflowEntrypoint):
    async def run(self, event, step):
        @step.do("hold")
        async def hold():
            await self.env.gate("go").wait()
            return "held"

        return await hold()


@pytest.mark.timeout(30)
async def test_the_wait_before_trying_again_ends_while_the_engine_is_full(
    make_stepline: MakeStepline, clock: TestClock, probe
):
    """The engine's slots are all taken when the minute is up: the scheduler waits for a
    slot as usual. (It spun: on SQLite the event loop never came back.)"""
    stepline = await make_stepline(concurrency=1)
    absent = await stepline.register("absent", Absent)
    missing = Missing(stepline.engine.classes, "Absent")
    waiting = await absent.create(params="later")
    for _ in range(500):  # claimed at the create, or (sharing the database) by the scheduler
        if missing.tries:
            break
        await asyncio.sleep(0.01)
    assert missing.tries == 1
    blocker = await (await stepline.register("blocker", Blocker)).create()
    await asyncio.sleep(0.05)

    missing.missing = False
    clock.advance("61 seconds")
    await asyncio.sleep(0.2)  # never returned while the scheduler spun
    probe.gate("go").set()

    assert (await finished(blocker))["output"] == "held"
    assert (await finished(waiting))["output"] == "later"


async def test_a_pause_that_lands_before_the_instance_is_given_back_pauses_it(
    make_stepline: MakeStepline, clock: TestClock
):
    """Asked between the claim and the release: no step ran, so the instance is paused at
    once (it stayed waitingForPause, leased to this engine, until the lease lapsed), and a
    resume queues it again for an engine that can load it."""
    stepline = await make_stepline()
    absent = await stepline.register("absent", Absent)
    missing = Missing(stepline.engine.classes, "Absent")
    release = stepline.store.release

    async def paused_first(pk: int, generation: int, *, now: int) -> None:
        await (await absent.get("late")).pause()
        await release(pk, generation, now=now)

    stepline.store.release = paused_first  # type: ignore[method-assign]
    handle = await absent.create("late", params="later")
    for _ in range(500):
        if await _status(stepline, handle) == "paused":
            break
        await asyncio.sleep(0.01)
    assert await _status(stepline, handle) == "paused"
    stepline.store.release = release  # type: ignore[method-assign]

    missing.missing = False
    clock.advance("61 seconds")
    await handle.resume()
    assert (await finished(handle))["output"] == "later"
