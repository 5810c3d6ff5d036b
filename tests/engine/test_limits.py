"""Limits of §4: steps per instance, payload sizes, instance ids, step names."""

from __future__ import annotations

import pytest

from stepline import Stepline, WorkflowEntrypoint
from stepline.errors import InvalidName, InvalidRequest, PayloadTooLarge
from stepline.testing import StepMocks
from tests.engine.helpers import finished

_LIMIT_MESSAGE = (
    "The limit of 3 steps has been reached. This limit can be changed in your worker configuration."
)


def _returns(value):
    return lambda: value


class ManySteps(WorkflowEntrypoint):
    """``params["steps"]`` step.do calls, each followed by a sleep and a wait."""

    async def run(self, event, step):
        done = []
        for n in range(event.payload["steps"]):
            done.append(await step.do("work", _returns(n)))
            await step.sleep("breathe", "1 minute")
            await step.wait_for_event(f"signal {n}", "tick", timeout="1 hour")
        return done


async def test_the_step_after_the_limit_fails_the_instance(stepline: Stepline, mocks: StepMocks):
    mocks.mock_event("tick", None)
    workflow = await stepline.register("many-steps", ManySteps, step_limit=3)
    view = await finished(await workflow.create(params={"steps": 4}))

    assert view["status"] == "errored"
    assert view["error"] == {"name": "WorkflowFatalError", "message": _LIMIT_MESSAGE}
    assert [s["name"] for s in view["steps"] if s["type"] == "step"] == [
        "work-1",
        "work-2",
        "work-3",
    ]


async def test_sleeps_and_waits_do_not_count_toward_the_step_limit(
    any_stepline: Stepline, mocks: StepMocks
):
    mocks.mock_event("tick", None)
    workflow = await any_stepline.register("many-steps", ManySteps, step_limit=3)
    view = await finished(await workflow.create(params={"steps": 3}))

    assert view["status"] == "complete"
    assert view["output"] == [0, 1, 2]


class CatchesLimit(WorkflowEntrypoint):
    async def run(self, event, step):
        for n in range(3):
            try:
                await step.do("work", _returns(n))
            except Exception as exc:
                return f"caught {type(exc).__name__}"
        return "no limit"


async def test_the_step_limit_cannot_be_caught(stepline: Stepline):
    workflow = await stepline.register("catches-limit", CatchesLimit, step_limit=2)
    view = await finished(await workflow.create())

    assert view["status"] == "errored"
    assert view["error"]["message"].startswith("The limit of 2 steps has been reached.")


class Echo(WorkflowEntrypoint):
    async def run(self, event, step):
        if event.payload is not None:
            return len(event.payload)
        got = await step.wait_for_event("payload", "big", timeout="1 hour")
        return len(got["payload"])


async def test_params_over_1_mib_are_rejected(stepline: Stepline):
    workflow = await stepline.register("echo", Echo)

    with pytest.raises(PayloadTooLarge):
        await workflow.create(id="too-big", params="x" * (2**20 - 1))


async def test_params_of_exactly_1_mib_are_accepted(stepline: Stepline):
    workflow = await stepline.register("echo", Echo)

    instance = await workflow.create(params="x" * (2**20 - 2))

    assert (await finished(instance))["output"] == 2**20 - 2


async def test_params_that_are_not_json_are_rejected(stepline: Stepline):
    workflow = await stepline.register("echo", Echo)

    with pytest.raises(InvalidRequest):
        await workflow.create(params={"when": object()})
    with pytest.raises(InvalidRequest):
        await workflow.create(params={"at": float("inf")})
    with pytest.raises(InvalidRequest):
        await workflow.create(params=["lone \ud800 surrogate"])


async def test_an_event_payload_over_1_mib_is_rejected(stepline: Stepline):
    workflow = await stepline.register("echo", Echo)
    instance = await workflow.create()

    with pytest.raises(PayloadTooLarge):
        await instance.send_event("big", "x" * (2**20 - 1))
    await instance.send_event("big", "x" * (2**20 - 2))

    assert (await finished(instance))["output"] == 2**20 - 2


@pytest.mark.parametrize(
    "instance_id",
    ["a", "A_b-1", "0", "_x", "x" * 100, "cf_" + "a" * 63, "cf_" + "g" * 64],
)
async def test_valid_instance_ids_are_accepted(stepline: Stepline, instance_id):
    workflow = await stepline.register("echo", Echo)

    instance = await workflow.create(id=instance_id, params="")

    assert instance.id == instance_id
    assert (await finished(instance))["status"] == "complete"


@pytest.mark.parametrize(
    "instance_id",
    ["", "-a", "a.b", "a b", "a/b", "é", "x" * 101, "cf_" + "0123456789abcdef" * 4],
)
async def test_invalid_instance_ids_are_rejected(stepline: Stepline, instance_id):
    workflow = await stepline.register("echo", Echo)

    with pytest.raises(InvalidName):
        await workflow.create(id=instance_id)


class NamedStep(WorkflowEntrypoint):
    async def run(self, event, step):
        return await step.do(event.payload, lambda: "ran")


@pytest.mark.parametrize(
    "name",
    ["s" * 256, "with spaces and ünïcode", "é" * 256, "\U0001f680" * 128, "s" + "\U0001f680" * 127],
    ids=["256 ascii", "unicode", "256 accented", "128 rockets", "a letter and 127 rockets"],
)
async def test_step_names_up_to_256_characters_are_allowed(stepline: Stepline, name):
    workflow = await stepline.register("named-step", NamedStep)
    view = await finished(await workflow.create(params=name))

    assert view["status"] == "complete"
    assert view["steps"][0]["name"] == f"{name}-1"


@pytest.mark.parametrize(
    "name",  # JavaScript counts a character past U+FFFF (a rocket) as two
    ["s" * 257, "\U0001f680" * 129, "sss" + "\U0001f680" * 127, "tab\there", "new\nline", ""],
)
async def test_invalid_step_names_fail_the_instance(stepline: Stepline, name):
    workflow = await stepline.register("named-step", NamedStep)
    view = await finished(await workflow.create(params=name))

    assert view["status"] == "errored"
