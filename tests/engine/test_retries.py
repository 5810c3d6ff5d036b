"""Retries, backoff, per-attempt timeouts and how step failures reach the instance (§2.4)."""

from __future__ import annotations

import asyncio
import logging
import time
import traceback

import pytest

from stepline import NonRetryableError, Stepline, WorkflowEntrypoint
from stepline.testing import StepMocks
from tests.engine.helpers import finished, gaps, ms, step

_NON_RETRYABLE_MESSAGE = (
    "The execution of the Workflow instance was terminated, as a step threw an "
    "NonRetryableError and it was not handled"
)


class AlwaysFails(WorkflowEntrypoint):
    """Step ``flaky`` fails every attempt; ``params`` is its config (None = defaults)."""

    async def run(self, event, step):
        @step.do("flaky", config=event.payload)
        async def flaky(ctx):
            self.env.hit("flaky", ctx.attempt)
            raise RuntimeError(f"attempt {ctx.attempt} failed")

        return await flaky()


class FailsUntil(WorkflowEntrypoint):
    """Step ``flaky`` fails until attempt ``params["succeed_on"]``."""

    async def run(self, event, step):
        config = {"retries": {"limit": 5, "delay": "1 second", "backoff": "constant"}}

        @step.do("flaky", config=config)
        async def flaky(ctx):
            self.env.hit("flaky")
            if ctx.attempt < event.payload["succeed_on"]:
                raise ConnectionError("upstream down")
            return f"ok on {ctx.attempt}"

        return await flaky()


async def test_default_policy_is_six_attempts_with_exponential_backoff_from_10s(
    stepline: Stepline, probe
):
    workflow = await stepline.register("always-fails", AlwaysFails)
    view = await finished(await workflow.create(params=None))

    assert probe.seen["flaky"] == [1, 2, 3, 4, 5, 6]
    attempts = step(view, "flaky-1")["attempts"]
    assert len(attempts) == 6
    delays = gaps([ms(a["start"]) for a in attempts])
    for actual, expected in zip(delays, [10_000, 20_000, 40_000, 80_000, 160_000], strict=True):
        assert expected <= actual < expected + 1_000, delays


@pytest.mark.parametrize("limit", [0, 1, 3])
async def test_retry_limit_n_means_n_plus_one_attempts(stepline: Stepline, probe, limit):
    workflow = await stepline.register("always-fails", AlwaysFails)
    config = {"retries": {"limit": limit, "delay": 1000, "backoff": "constant"}}
    view = await finished(await workflow.create(params=config))

    assert probe.calls["flaky"] == limit + 1
    assert len(step(view, "flaky-1")["attempts"]) == limit + 1
    assert view["status"] == "errored"


@pytest.mark.parametrize(
    ("backoff", "expected"),
    [
        ("constant", [10_000, 10_000, 10_000]),
        ("linear", [10_000, 20_000, 30_000]),
        ("exponential", [10_000, 20_000, 40_000]),
    ],
)
async def test_backoff_delays_between_attempts(any_stepline: Stepline, backoff, expected):
    workflow = await any_stepline.register("always-fails", AlwaysFails)
    config = {"retries": {"limit": 3, "delay": "10 seconds", "backoff": backoff}}
    view = await finished(await workflow.create(params=config))

    attempts = step(view, "flaky-1")["attempts"]
    delays = gaps([ms(a["start"]) for a in attempts])
    assert len(delays) == 3
    for actual, wanted in zip(delays, expected, strict=True):
        assert wanted <= actual < wanted + 1_000, delays


async def test_a_backoff_waits_at_most_365_days_however_far_it_doubles(stepline: Stepline):
    workflow = await stepline.register("always-fails", AlwaysFails)
    config = {"retries": {"limit": 40, "delay": "1 day", "backoff": "exponential"}}
    view = await finished(await workflow.create(params=config))

    day = 86_400_000
    delays = gaps([ms(a["start"]) for a in step(view, "flaky-1")["attempts"]])
    expected = [min(2**n, 365) * day for n in range(40)]  # 1, 2, ... 256 days, then a year
    assert len(delays) == 40
    for actual, wanted in zip(delays, expected, strict=True):
        assert abs(actual - wanted) < 1_000, delays


async def test_every_failed_attempt_is_logged_with_its_error(stepline: Stepline):
    workflow = await stepline.register("always-fails", AlwaysFails)
    config = {"retries": {"limit": 2, "delay": 1000}}
    view = await finished(await workflow.create(params=config))

    errors = [a["error"] for a in step(view, "flaky-1")["attempts"]]
    assert errors == [{"name": "RuntimeError", "message": f"attempt {n} failed"} for n in (1, 2, 3)]
    assert step(view, "flaky-1")["success"] is False


async def test_exhausted_retries_error_the_instance_with_the_error_name_and_message(
    stepline: Stepline,
):
    workflow = await stepline.register("always-fails", AlwaysFails)
    view = await finished(await workflow.create(params={"retries": {"limit": 1, "delay": 10}}))

    assert view["status"] == "errored"
    assert view["error"] == {"name": "RuntimeError", "message": "attempt 2 failed"}
    assert view["success"] is False


@pytest.mark.parametrize("succeed_on", [2, 4])
async def test_a_step_that_recovers_completes_with_its_value(stepline: Stepline, succeed_on):
    workflow = await stepline.register("fails-until", FailsUntil)
    view = await finished(await workflow.create(params={"succeed_on": succeed_on}))

    assert view["status"] == "complete"
    assert view["output"] == f"ok on {succeed_on}"
    attempts = step(view, "flaky-1")["attempts"]
    assert [a["success"] for a in attempts] == [False] * (succeed_on - 1) + [True]


class MockedFlaky(WorkflowEntrypoint):
    async def run(self, event, step):
        @step.do("call api", config={"retries": {"limit": 3, "delay": 100}})
        async def call_api(ctx):
            return {"attempt": ctx.attempt}

        return await call_api()


async def test_mocked_step_errors_are_retried_like_real_ones(stepline: Stepline, mocks: StepMocks):
    mocks.mock_step_error("call api", ConnectionError("down"), times=2)
    workflow = await stepline.register("mocked", MockedFlaky)
    view = await finished(await workflow.create())

    assert view["output"] == {"attempt": 3}
    errors = [a["error"] for a in step(view, "call api-1")["attempts"]]
    assert errors == [{"name": "ConnectionError", "message": "down"}] * 2 + [None]


class HangsOnce(WorkflowEntrypoint):
    """The first attempt never returns; the 100 ms timeout cuts it off; the second succeeds."""

    async def run(self, event, step):
        config = {"timeout": 100, "retries": {"limit": event.payload, "delay": 10}}

        @step.do("slow", config=config)
        async def slow(ctx):
            self.env.hit("slow")
            if ctx.attempt == 1 or event.payload == 0:
                await asyncio.Event().wait()
            return "done"

        return await slow()


async def test_attempt_timeout_raises_workflow_timeout_error_and_is_retried(stepline: Stepline):
    workflow = await stepline.register("hangs", HangsOnce)
    view = await finished(await workflow.create(params=1))

    assert view["status"] == "complete"
    assert view["output"] == "done"
    first, second = step(view, "slow-1")["attempts"]
    assert first["error"] == {
        "name": "WorkflowTimeoutError",
        "message": "Execution timed out after 100ms",
    }
    assert second["success"] is True


async def test_attempt_timeout_without_retries_errors_the_instance(stepline: Stepline):
    workflow = await stepline.register("hangs", HangsOnce)
    view = await finished(await workflow.create(params=0))

    assert view["error"] == {
        "name": "WorkflowTimeoutError",
        "message": "Execution timed out after 100ms",
    }


class ReturnsACoroutine(WorkflowEntrypoint):
    """A step function that is not ``async def`` yet returns a coroutine: a lambda around
    an async call, a sync function, an object with an async ``__call__``."""

    async def run(self, event, step):
        async def hang():
            await asyncio.Event().wait()

        class Hangs:
            async def __call__(self):
                await hang()

        def sync():
            return hang()

        function = {"lambda": lambda: hang(), "sync": sync, "callable": Hangs()}[event.payload]
        return await step.do("slow", function, config={"timeout": 100, "retries": {"limit": 0}})


@pytest.mark.parametrize("function", ["lambda", "sync", "callable"])
async def test_the_timeout_covers_a_coroutine_that_a_step_function_returns(
    stepline: Stepline, function: str
):
    """§2.4: each attempt is raced against its timeout, however its function is written."""
    workflow = await stepline.register("returns-a-coroutine", ReturnsACoroutine)
    view = await finished(await workflow.create(params=function), timeout=5)

    assert view["error"] == {
        "name": "WorkflowTimeoutError",
        "message": "Execution timed out after 100ms",
    }


class SwallowsItsTimeout(WorkflowEntrypoint):
    """The first attempt outlives its 100 ms timeout, catches the cancellation and returns
    anyway; the second returns at once."""

    async def run(self, event, step):
        @step.do("slow", config={"timeout": 100, "retries": {"limit": 1, "delay": 10}})
        async def slow(ctx):
            if ctx.attempt == 1:
                try:
                    await asyncio.sleep(5)
                except asyncio.CancelledError:
                    return "late"
            return "in time"

        after = await slow()
        await asyncio.sleep(0)  # the run goes on: no cancellation is left pending on its task
        return after


async def test_an_attempt_that_returns_after_its_timeout_has_timed_out(stepline: Stepline):
    """A result that comes after the timeout, the cancellation caught, is not the step's:
    the attempt timed out (§2.4: each attempt is raced against its timeout)."""
    workflow = await stepline.register("swallows", SwallowsItsTimeout)
    view = await finished(await workflow.create())

    assert (view["status"], view["output"]) == ("complete", "in time")
    first, second = step(view, "slow-1")["attempts"]
    assert first["error"] == {
        "name": "WorkflowTimeoutError",
        "message": "Execution timed out after 100ms",
    }
    assert second["success"] is True


class NonRetryable(WorkflowEntrypoint):
    """Step ``charge`` raises NonRetryableError; ``params["catch"]`` handles it in run()."""

    async def run(self, event, step):
        @step.do("charge", config={"retries": {"limit": 5, "delay": 10}})
        async def charge():
            self.env.hit("charge")
            raise NonRetryableError("card declined")

        if not event.payload["catch"]:
            return await charge()
        try:
            await charge()
        except NonRetryableError as exc:
            caught = {"class": type(exc).__name__, "message": str(exc)}

        @step.do("notify")
        async def notify():
            return "notified"

        return {"caught": caught, "then": await notify()}


class PreservingNonRetryable(NonRetryable):
    preserve_non_retryable_error_message = True


async def test_non_retryable_error_stops_retries_at_once(stepline: Stepline, probe):
    workflow = await stepline.register("non-retryable", NonRetryable)
    view = await finished(await workflow.create(params={"catch": False}))

    assert probe.calls["charge"] == 1
    assert len(step(view, "charge-1")["attempts"]) == 1


async def test_uncaught_non_retryable_error_is_a_generic_fatal_error(stepline: Stepline):
    workflow = await stepline.register("non-retryable", NonRetryable)
    view = await finished(await workflow.create(params={"catch": False}))

    assert view["status"] == "errored"
    assert view["error"] == {"name": "WorkflowFatalError", "message": _NON_RETRYABLE_MESSAGE}


async def test_preserve_flag_keeps_the_non_retryable_name_and_message(stepline: Stepline):
    workflow = await stepline.register("non-retryable", PreservingNonRetryable)
    view = await finished(await workflow.create(params={"catch": False}))

    assert view["error"] == {"name": "NonRetryableError", "message": "card declined"}


async def test_non_retryable_error_caught_in_run_lets_the_run_continue(stepline: Stepline, probe):
    workflow = await stepline.register("non-retryable", NonRetryable)
    view = await finished(await workflow.create(params={"catch": True}))

    assert view["status"] == "complete"
    assert view["output"] == {
        "caught": {"class": "NonRetryableError", "message": "card declined"},
        "then": "notified",
    }
    assert probe.calls["charge"] == 1


class CatchesExhausted(WorkflowEntrypoint):
    async def run(self, event, step):
        @step.do("flaky", config={"retries": {"limit": 1, "delay": 10}})
        async def flaky():
            raise KeyError("missing")

        try:
            await flaky()
        except KeyError as exc:
            return {"caught": type(exc).__name__}
        return {"caught": None}


async def test_a_step_that_ran_out_of_retries_raises_a_catchable_error(stepline: Stepline):
    workflow = await stepline.register("catches", CatchesExhausted)
    view = await finished(await workflow.create())

    assert view["status"] == "complete"
    assert view["output"] == {"caught": "KeyError"}


class RaisesInRun(WorkflowEntrypoint):
    async def run(self, event, step):
        @step.do("fine")
        async def fine():
            return 1

        await fine()
        raise LookupError("no such order")


async def test_an_error_raised_outside_steps_errors_the_instance(stepline: Stepline):
    workflow = await stepline.register("raises", RaisesInRun)
    view = await finished(await workflow.create())

    assert view["status"] == "errored"
    assert view["error"] == {"name": "LookupError", "message": "no such order"}
    assert step(view, "fine-1")["success"] is True


class MissingField(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(f"missing field {name}")
        self.name = name


class MissingThings(WorkflowEntrypoint):
    """Raises, outside a step, an error named by ``params`` with a ``name`` attribute of its
    own: the attribute, module, variable or field it is about."""

    async def run(self, event, step):
        kind = event.payload
        if kind == "attribute":
            return event.payload.get("sku")  # a str has no .get
        if kind == "module":
            raise ModuleNotFoundError("No module named 'gone'", name="gone")
        if kind == "field":
            raise MissingField("email")
        return undefined_name  # type: ignore[name-defined]  # noqa: F821


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        ("attribute", "AttributeError"),
        ("module", "ModuleNotFoundError"),
        ("name", "NameError"),
        ("field", "MissingField"),
    ],
)
async def test_an_error_is_named_by_its_class_not_by_what_it_is_about(
    stepline: Stepline, kind: str, name: str
):
    workflow = await stepline.register("missing-things", MissingThings)
    view = await finished(await workflow.create(params=kind))

    assert view["status"] == "errored"
    assert view["error"]["name"] == name, view["error"]


class SlowSyncStep(WorkflowEntrypoint):
    async def run(self, event, step):
        @step.do("blocking", config={"timeout": 100, "retries": {"limit": 0}})
        def blocking():
            time.sleep(0.5)
            return "too late"

        return await blocking()


async def test_the_attempt_timeout_applies_to_sync_steps(stepline: Stepline):
    workflow = await stepline.register("slow-sync", SlowSyncStep)
    view = await finished(await workflow.create())

    assert view["error"] == {
        "name": "WorkflowTimeoutError",
        "message": "Execution timed out after 100ms",
    }


async def test_an_instance_that_errors_says_so_in_the_log(
    stepline: Stepline, caplog: pytest.LogCaptureFixture
):
    workflow = await stepline.register("raises", RaisesInRun)
    with caplog.at_level(logging.INFO, logger="stepline.engine"):
        instance = await workflow.create(id="logged")
        await finished(instance)

    said = [r.getMessage() for r in caplog.records if r.name == "stepline.engine"]
    assert "instance logged of raises errored: LookupError: no such order" in said


class LetsACancellationOut(WorkflowEntrypoint):
    """Step "inner" awaits a task that gets cancelled, and lets the CancelledError out."""

    async def run(self, event, step):
        @step.do("inner", config={"retries": {"limit": 1, "delay": 10}})
        async def inner(ctx):
            self.env.hit("inner", ctx.attempt)
            task = asyncio.ensure_future(asyncio.sleep(10))
            await asyncio.sleep(0)
            task.cancel()
            await task

        return await inner()


async def test_a_cancellation_let_out_by_a_step_is_a_failed_attempt(any_stepline: Stepline, probe):
    """Not a cancellation of the run: the attempt fails, is retried, and the instance errors
    once the retries are spent, rather than being left running."""
    workflow = await any_stepline.register("lets-a-cancellation-out", LetsACancellationOut)
    view = await finished(await workflow.create())

    assert view["status"] == "errored", view
    assert view["error"]["name"] == "CancelledError"
    attempts = step(view, "inner-1")["attempts"]
    assert [(a["success"], a["error"]["name"]) for a in attempts] == [
        (False, "CancelledError"),
        (False, "CancelledError"),
    ]
    assert probe.seen["inner"] == [1, 2]


class FailsInRun(WorkflowEntrypoint):
    async def run(self, event, step):
        await step.do("fine", lambda: 1)
        raise ValueError("bad input")  # the line an author needs to find


async def test_an_errored_instance_is_logged_with_the_traceback_of_its_error(
    stepline: Stepline, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, logger="stepline")
    workflow = await stepline.register("fails-in-run", FailsInRun)
    view = await finished(await workflow.create())

    assert view["error"] == {"name": "ValueError", "message": "bad input"}
    [record] = [r for r in caplog.records if "errored: ValueError: bad input" in r.getMessage()]
    assert record.exc_info is not None
    frames = traceback.extract_tb(record.exc_info[2])
    assert any(f.filename == __file__ and f.name == "run" for f in frames)
