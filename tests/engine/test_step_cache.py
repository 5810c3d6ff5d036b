"""The step cache: completed and failed steps replay from the store, values are JSON (§2.3)."""

from __future__ import annotations

import enum

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


class PaymentDeclined(Exception):
    """An error whose ``__init__`` takes other parameters than its ``args``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code


class HttpError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.response = object()  # not JSON: left out, as it cannot be kept


ERRORS = {
    "declined": lambda: PaymentDeclined(402, "insufficient funds"),
    "http": lambda: HttpError(503),
    "key": lambda: KeyError("missing"),
    "os": lambda: FileNotFoundError(2, "No such file", "/tmp/gone"),
}


class RaisesChosenError(WorkflowEntrypoint):
    """Step "fail" raises ``ERRORS[params]``; ``run`` catches it in every replay and records
    its class, ``str``, ``args`` and JSON-able attributes."""

    async def run(self, event, step):
        @step.do("fail", config={"retries": {"limit": 0}})
        async def fail():
            raise ERRORS[event.payload]()

        try:
            await fail()
        except Exception as exc:
            attrs = {k: v for k, v in vars(exc).items() if k != "response"}
            self.env.hit("caught", [type(exc).__name__, str(exc), list(exc.args), attrs])
        await step.sleep("nap", "1 hour")
        return self.env.seen["caught"][-1]


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("declined", ["PaymentDeclined", "402: insufficient funds", ["402: insufficient funds"],
                      {"code": 402}]),
        ("http", ["HttpError", "HTTP 503", ["HTTP 503"], {"status": 503}]),
        ("key", ["KeyError", "'missing'", ["missing"], {}]),
        ("os", ["FileNotFoundError", "[Errno 2] No such file: '/tmp/gone'",
                [2, "No such file"], {}]),
    ],
)  # fmt: skip
async def test_a_replayed_error_has_its_class_args_and_attributes(
    suspending: Stepline, probe, kind, expected
):
    """§2.3: a cached failure is thrown again identically on replay, so ``except`` and what it
    reads behave as on the run that failed."""
    workflow = await suspending.register("chosen-error", RaisesChosenError)
    view = await finished(await workflow.create(params=kind))

    assert len(probe.seen["caught"]) >= 2, "run() was not replayed; the test proves nothing"
    assert probe.seen["caught"] == [expected] * len(probe.seen["caught"])
    assert view["output"] == expected


class CallsInParallel(WorkflowEntrypoint):
    """Step "fan out" fails as a TaskGroup does, with an ExceptionGroup; ``run`` handles its
    HTTP errors with ``except*`` in every replay and records what it matched."""

    async def run(self, event, step):
        @step.do("fan out", config={"retries": {"limit": 0}})
        async def fan_out():
            raise ExceptionGroup("calls failed", [HttpError(503), KeyError("k")])

        try:
            await fan_out()
        except* HttpError as http:
            self.env.hit("caught", [[type(e).__name__, e.status] for e in http.exceptions])
        except* KeyError as missing:
            self.env.hit("missing", [str(e) for e in missing.exceptions])
        await step.sleep("nap", "1 hour")
        return [self.env.seen["caught"][-1], self.env.seen["missing"][-1]]


async def test_a_replayed_exception_group_matches_except_star_as_it_did(
    suspending: Stepline, probe
):
    workflow = await suspending.register("calls-in-parallel", CallsInParallel)
    view = await finished(await workflow.create())

    assert len(probe.seen["caught"]) >= 2, "run() was not replayed; the test proves nothing"
    assert probe.seen["caught"] == [[["HttpError", 503]]] * len(probe.seen["caught"])
    assert probe.seen["missing"] == [["'k'"]] * len(probe.seen["missing"])
    assert view["output"] == [[["HttpError", 503]], ["'k'"]]


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


class Color(enum.StrEnum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


class ReturnsEnums(WorkflowEntrypoint):
    """Steps return members of str and int enums; ``run`` records what it got back, in every
    replay."""

    async def run(self, event, step):
        color = await step.do("color", lambda: Color.RED)
        level = await step.do("level", lambda: Level.HIGH)
        self.env.hit("got", [type(color).__name__, color, type(level).__name__, level])
        await step.sleep("nap", "1 hour")
        return self.env.seen["got"][-1]


async def test_a_result_that_subclasses_str_or_int_comes_back_as_json_makes_it(
    any_stepline: Stepline, probe
):
    workflow = await any_stepline.register("returns-enums", ReturnsEnums)
    view = await finished(await workflow.create())

    expected = ["str", "red", "int", 3]
    assert view["output"] == expected
    assert all(seen == expected for seen in probe.seen["got"]), probe.seen["got"]


OPAQUE = {
    "object": lambda: {"when": object()},
    "generator": lambda: (n for n in range(3)),  # on 3.11, asyncio took it for a coroutine
}


class ReturnsObject(WorkflowEntrypoint):
    async def run(self, event, step):
        @step.do("opaque", config={"retries": {"limit": 5, "delay": 10}})
        async def opaque():
            self.env.hit("opaque")
            return OPAQUE[event.payload or "object"]()

        try:
            return await opaque()
        except Exception as exc:  # a fatal error must not be catchable
            return f"caught {type(exc).__name__}"


@pytest.mark.parametrize("kind", sorted(OPAQUE))
async def test_a_non_json_result_fails_the_instance_without_retry(stepline: Stepline, probe, kind):
    workflow = await stepline.register("returns-object", ReturnsObject)
    view = await finished(await workflow.create(params=kind))

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
