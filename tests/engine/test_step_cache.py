"""The step cache: completed and failed steps replay from the store, values are JSON (§2.3)."""

from __future__ import annotations

import pytest

from stepline import Stepline, WorkflowEntrypoint
from tests.conftest import MakeStepline
from tests.engine.helpers import finished, step


class CardDeclined(Exception):
    """An importable user error class, so a replay can rebuild it."""


class ReplaysOnce(WorkflowEntrypoint):
    """Two steps around a long sleep: with a short suspend_after, run() replays."""

    async def run(self, event, step):
        self.env.hit("run")

        @step.do("first")
        async def first():
            return self.env.hit("first")

        value = await first()
        self.env.hit("first seen", value)
        await step.sleep("nap", "1 hour")

        @step.do("second")
        async def second():
            return self.env.hit("second")

        return [value, await second()]


async def test_a_completed_step_never_runs_again_on_replay(suspending: Stepline, probe):
    workflow = await suspending.register("replays", ReplaysOnce)
    view = await finished(await workflow.create())

    assert probe.calls["run"] >= 2, "run() was not replayed; the test proves nothing"
    assert probe.calls["first"] == 1
    assert probe.calls["second"] == 1
    assert probe.seen["first seen"] == [1] * probe.calls["run"]
    assert view["output"] == [1, 1]


async def test_completed_steps_survive_an_engine_restart(
    make_stepline: MakeStepline, tmp_path, probe, clock
):
    clock.auto_skip = False
    first_engine = await make_stepline(tmp_path, suspend_after=50)
    workflow = await first_engine.register("replays", ReplaysOnce)
    instance = await workflow.create(id="survivor")
    await probe.wait_for("first")
    await first_engine.stop()

    clock.auto_skip = True
    second_engine = await make_stepline(tmp_path, suspend_after=50)
    workflow = await second_engine.register("replays", ReplaysOnce)
    view = await finished(await workflow.get("survivor"))

    assert instance.id == "survivor"
    assert view["status"] == "complete"
    assert probe.calls["first"] == 1
    assert view["output"] == [1, 1]


class UserErrorFlow(WorkflowEntrypoint):
    """Catches a failed step in every replay and records what it caught."""

    @staticmethod
    def make_error() -> Exception:
        return CardDeclined("no funds")

    async def run(self, event, step):
        @step.do("charge", config={"retries": {"limit": 0}})
        async def charge():
            self.env.hit("charge")
            raise self.make_error()

        try:
            await charge()
        except Exception as exc:
            self.env.hit("caught", [type(exc).__name__, str(exc), type(exc) is CardDeclined])
        await step.sleep("nap", "1 hour")
        return self.env.seen["caught"][-1]


class BuiltinErrorFlow(UserErrorFlow):
    @staticmethod
    def make_error() -> Exception:
        return ValueError("bad amount")


@pytest.mark.parametrize(
    ("flow", "expected"),
    [
        (UserErrorFlow, ["CardDeclined", "no funds", True]),
        (BuiltinErrorFlow, ["ValueError", "bad amount", False]),
    ],
)
async def test_a_failed_step_reraises_the_same_error_on_replay(
    suspending: Stepline, probe, flow, expected
):
    workflow = await suspending.register("cached-failure", flow)
    view = await finished(await workflow.create())

    assert probe.calls["charge"] == 1
    assert len(probe.seen["caught"]) >= 2, "run() was not replayed; the test proves nothing"
    assert all(seen == expected for seen in probe.seen["caught"]), probe.seen["caught"]
    assert view["output"] == expected


class ReturnsNone(WorkflowEntrypoint):
    async def run(self, event, step):
        @step.do("nothing")
        async def nothing():
            self.env.hit("nothing")

        value = await nothing()
        await step.sleep("nap", "1 hour")
        return {"value": value, "again": await nothing()}


async def test_a_none_result_is_cached(suspending: Stepline, probe):
    workflow = await suspending.register("returns-none", ReturnsNone)
    view = await finished(await workflow.create())

    assert view["output"] == {"value": None, "again": None}
    assert probe.calls["nothing"] == 1


class ReturnsTuple(WorkflowEntrypoint):
    async def run(self, event, step):
        @step.do("pair")
        async def pair():
            return (1, 2)

        @step.do("keys")
        async def keys():
            return {1: "one"}

        first, second = await pair(), await keys()
        self.env.hit("types", [type(first).__name__, first, second])
        await step.sleep("nap", "1 hour")
        return [type(first).__name__, first, second]


async def test_step_results_are_json_round_tripped(any_stepline: Stepline, probe):
    workflow = await any_stepline.register("returns-tuple", ReturnsTuple)
    view = await finished(await workflow.create())

    expected = ["list", [1, 2], {"1": "one"}]
    assert view["output"] == expected
    assert all(seen == expected for seen in probe.seen["types"]), probe.seen["types"]


class ReturnsObject(WorkflowEntrypoint):
    async def run(self, event, step):
        @step.do("opaque", config={"retries": {"limit": 5, "delay": 10}})
        async def opaque():
            self.env.hit("opaque")
            return {"when": object()}

        try:
            return await opaque()
        except Exception as exc:  # a fatal error must not be catchable
            return f"caught {type(exc).__name__}"


async def test_a_non_json_result_fails_the_instance_without_retry(stepline: Stepline, probe):
    workflow = await stepline.register("returns-object", ReturnsObject)
    view = await finished(await workflow.create())

    assert view["status"] == "errored"
    assert view["error"]["name"] == "WorkflowFatalError"
    assert "not serialisable" in view["error"]["message"]
    assert '"opaque-1"' in view["error"]["message"]
    assert probe.calls["opaque"] == 1


class ReturnsBig(WorkflowEntrypoint):
    """Returns a string whose JSON form is ``params`` bytes long."""

    async def run(self, event, step):
        @step.do("big", config={"retries": {"limit": 2, "delay": 10}})
        async def big():
            self.env.hit("big")
            return "x" * (event.payload - 2)

        return len(await big())


async def test_a_result_over_1_mib_is_a_retryable_internal_error(stepline: Stepline, probe):
    workflow = await stepline.register("returns-big", ReturnsBig)
    view = await finished(await workflow.create(params=2**20 + 1))

    assert probe.calls["big"] == 3
    message = "Step big-1 output is too large. Maximum allowed size is 1MiB."
    attempts = step(view, "big-1")["attempts"]
    assert [a["error"] for a in attempts] == [
        {"name": "WorkflowInternalError", "message": message}
    ] * 3
    assert view["error"] == {"name": "WorkflowInternalError", "message": message}


async def test_a_result_of_exactly_1_mib_is_accepted(stepline: Stepline, probe):
    workflow = await stepline.register("returns-big", ReturnsBig)
    view = await finished(await workflow.create(params=2**20))

    assert view["status"] == "complete"
    assert view["output"] == 2**20 - 2
    assert probe.calls["big"] == 1


class MultiByteBig(WorkflowEntrypoint):
    """Under 1 Mi characters but over 1 MiB of UTF-8: the limit counts bytes."""

    async def run(self, event, step):
        @step.do("wide", config={"retries": {"limit": 0}})
        async def wide():
            return "é" * (2**19 + 10)

        return len(await wide())


async def test_the_result_limit_counts_utf8_bytes(stepline: Stepline):
    workflow = await stepline.register("multi-byte", MultiByteBig)
    view = await finished(await workflow.create())

    assert view["status"] == "errored"
    assert view["error"]["name"] == "WorkflowInternalError"
