"""An engine that cannot load a workflow's class (its module is missing here, or a deploy has
not reached this engine yet) leaves the workflow's instances queued for an engine that can,
and tries again a minute later; the instances are not errored for the engine's lack."""

from __future__ import annotations

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
