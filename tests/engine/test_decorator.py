"""The Python authoring API of ``step.do``: decorator, dependencies, direct calls (§2.2)."""

from __future__ import annotations

import asyncio
import functools
import threading
import time

from stepline import Stepline, WorkflowEntrypoint
from tests.engine.helpers import finished, step, step_names


class DefaultNames(WorkflowEntrypoint):
    async def run(self, event, step):
        @step.do()
        async def fetch_user():
            return {"id": 7}

        @step.do
        async def load_cart():
            return ["sku-1"]

        return [await fetch_user(), await load_cart()]


async def test_the_step_name_defaults_to_the_function_name(stepline: Stepline):
    workflow = await stepline.register("default-names", DefaultNames)
    view = await finished(await workflow.create())

    assert view["output"] == [{"id": 7}, ["sku-1"]]
    assert step_names(view) == ["fetch_user-1", "load_cart-1"]


class Dependencies(WorkflowEntrypoint):
    async def run(self, event, step):
        @step.do()
        async def fetch_user():
            self.env.hit("fetch_user")
            return {"id": 1}

        @step.do()
        async def fetch_prices():
            self.env.hit("fetch_prices")
            return {"sku": 10}

        @step.do("enrich")
        async def enrich(fetch_user, fetch_prices, ctx):
            return {"user": fetch_user["id"] + 1, "price": fetch_prices["sku"], "ctx": ctx.attempt}

        return await enrich()


async def test_parameters_named_after_declared_steps_receive_their_results(
    stepline: Stepline, probe
):
    workflow = await stepline.register("dependencies", Dependencies)
    view = await finished(await workflow.create())

    assert view["output"] == {"user": 2, "price": 10, "ctx": 1}
    assert probe.calls["fetch_user"] == probe.calls["fetch_prices"] == 1
    assert step_names(view) == ["fetch_user-1", "fetch_prices-1", "enrich-1"]


class Parallel(WorkflowEntrypoint):
    """``enrich`` depends on two slow steps; ``params`` is its ``concurrent`` flag."""

    async def run(self, event, step):
        @step.do()
        async def left():
            self.env.timeline.append("left start")
            await asyncio.sleep(0.05)
            self.env.timeline.append("left end")
            return "L"

        @step.do()
        async def right():
            self.env.timeline.append("right start")
            await asyncio.sleep(0.05)
            self.env.timeline.append("right end")
            return "R"

        @step.do(concurrent=event.payload)
        async def enrich(left, right):
            return left + right

        return await enrich()


async def test_concurrent_dependencies_run_in_parallel(stepline: Stepline, probe):
    workflow = await stepline.register("parallel", Parallel)
    view = await finished(await workflow.create(params=True))

    assert view["output"] == "LR"
    starts = {probe.timeline.index("left start"), probe.timeline.index("right start")}
    ends = {probe.timeline.index("left end"), probe.timeline.index("right end")}
    assert max(starts) < min(ends), probe.timeline


async def test_dependencies_run_one_after_the_other_by_default(stepline: Stepline, probe):
    workflow = await stepline.register("parallel", Parallel)
    view = await finished(await workflow.create(params=False))

    assert view["output"] == "LR"
    assert probe.timeline == ["left start", "left end", "right start", "right end"]


class AwaitedTwice(WorkflowEntrypoint):
    async def run(self, event, step):
        @step.do()
        async def once():
            return self.env.hit("once")

        first = await once()
        second = await once()
        third, fourth = await asyncio.gather(once(), once())
        return [first, second, third, fourth]


async def test_a_step_declared_once_and_awaited_many_times_runs_once(stepline: Stepline, probe):
    workflow = await stepline.register("awaited-twice", AwaitedTwice)
    view = await finished(await workflow.create())

    assert view["output"] == [1, 1, 1, 1]
    assert probe.calls["once"] == 1
    assert step_names(view) == ["once-1"]


class UnknownDependency(WorkflowEntrypoint):
    async def run(self, event, step):
        @step.do()
        async def lonely(nobody_declared_me):
            return 1

        try:
            await lonely()
        except TypeError as exc:
            return {"caught": "TypeError", "names_param": "nobody_declared_me" in str(exc)}
        return {"caught": None}


async def test_a_parameter_that_names_no_declared_step_is_a_type_error(stepline: Stepline):
    workflow = await stepline.register("unknown-dependency", UnknownDependency)
    view = await finished(await workflow.create())

    assert view["output"] == {"caught": "TypeError", "names_param": True}


class DirectCall(WorkflowEntrypoint):
    async def run(self, event, step):
        async def charge(ctx):
            return {"step": ctx.step_name, "attempt": ctx.attempt}

        async def refund():
            self.env.hit("refund")
            raise RuntimeError("refund failed")

        charged = await step.do("charge card", charge, config={"timeout": "30 seconds"})
        try:
            await step.do("refund", refund, config={"retries": {"limit": 0}})
        except RuntimeError as exc:
            return {"charged": charged, "refund": str(exc)}
        return {"charged": charged, "refund": None}


async def test_step_do_called_directly_with_a_function_and_config(stepline: Stepline, probe):
    workflow = await stepline.register("direct-call", DirectCall)
    view = await finished(await workflow.create())

    assert view["output"] == {
        "charged": {"step": "charge card", "attempt": 1},
        "refund": "refund failed",
    }
    assert probe.calls["refund"] == 1
    assert step(view, "charge card-1")["config"]["timeout"] == 30_000


class SyncStep(WorkflowEntrypoint):
    async def run(self, event, step):
        loop_thread = threading.current_thread().name

        @step.do()
        def blocking(ctx):
            return {"thread": threading.current_thread().name, "attempt": ctx.attempt}

        result = await blocking()
        direct = await step.do("direct sync", lambda: threading.current_thread().name)
        return {"loop": loop_thread, "decorated": result, "direct": direct}


async def test_sync_step_functions_run_in_a_worker_thread(stepline: Stepline):
    workflow = await stepline.register("sync-step", SyncStep)
    view = await finished(await workflow.create())

    output = view["output"]
    assert view["status"] == "complete", view["error"]
    assert output["decorated"]["attempt"] == 1
    assert output["decorated"]["thread"] != output["loop"]
    assert output["direct"] != output["loop"]


class AwaitsTheDecorator(WorkflowEntrypoint):
    async def run(self, event, step):
        return await step.do("charge")


async def test_awaiting_step_do_without_a_function_says_what_is_missing(stepline: Stepline):
    view = await finished(await (await stepline.register("awaits", AwaitsTheDecorator)).create())

    assert view["status"] == "errored"
    assert view["error"]["name"] == "TypeError"
    assert view["error"]["message"].startswith(
        "step.do('charge') was awaited without a function to run"
    )


class KeywordName(WorkflowEntrypoint):
    async def run(self, event, step):
        @step.do(name="charge card", config={"retries": {"limit": 1}})
        async def charge(ctx):
            return ctx.step_name

        refunded = await step.do(name="refund", fn=lambda: "refunded")
        return [await charge(), refunded]


async def test_the_step_name_may_be_given_by_keyword_as_cloudflares_sdk_takes_it(
    stepline: Stepline,
):
    # Cloudflare's Python SDK declares ``step.do(name=None, *, concurrent, config)``.
    view = await finished(await (await stepline.register("keyword", KeywordName)).create())

    assert view["status"] == "complete", view["error"]
    assert view["output"] == ["charge card", "refunded"]
    assert step_names(view) == ["refund-1", "charge card-1"]


class EmptyName(WorkflowEntrypoint):
    async def run(self, event, step):
        @step.do(event.payload["name"])
        async def fetch_user():
            return {"id": 7}

        return await fetch_user()


async def test_an_empty_step_name_is_refused_not_replaced_by_the_function_name(
    stepline: Stepline,
):
    workflow = await stepline.register("empty-name", EmptyName)
    view = await finished(await workflow.create(params={"name": ""}))

    assert view["status"] == "errored"
    assert view["error"]["message"].startswith("step name '' must be 1-256 characters")
    assert step_names(view) == []


class BuiltinSteps(WorkflowEntrypoint):
    async def run(self, event, step):
        # Where time comes from inside a step, so that a replay gets the same (§2.3).
        started = await step.do("started at", time.time)
        nanos = await step.do("nonce", time.time_ns)
        return {"started": type(started).__name__, "nanos": type(nanos).__name__}


async def test_a_builtin_that_states_no_signature_is_a_step_function(stepline: Stepline):
    # inspect.signature(time.time) raises ValueError: it was raised out of step.do.
    view = await finished(await (await stepline.register("builtins", BuiltinSteps)).create())

    assert view["status"] == "complete", view["error"]
    assert view["output"] == {"started": "float", "nanos": "int"}


class NotAFunction(WorkflowEntrypoint):
    async def run(self, event, step):
        return await step.do("forty-two", 42)


async def test_a_step_that_is_no_function_is_refused_at_once(stepline: Stepline):
    # Taken for a builtin without a signature, it was a step whose every attempt failed:
    # the instance errored after its retries' backoff (some 5 minutes by default).
    view = await finished(await (await stepline.register("not-a-function", NotAFunction)).create())

    assert view["status"] == "errored"
    assert view["error"]["name"] == "TypeError"
    assert step_names(view) == []


def logged(fn):
    """A decorator as users write them: every function it wraps runs the same code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*args, **kwargs)

    return wrapper


def attempt_number(ctx):
    return ctx.attempt


def constant():
    return "no context"


class WrappedSteps(WorkflowEntrypoint):
    async def run(self, event, step):
        first = await step.do("takes the context", logged(attempt_number))
        second = await step.do("takes nothing", logged(constant))
        return [first, second]


async def test_functions_a_decorator_wraps_are_each_called_as_their_own_signature_says(
    stepline: Stepline,
):
    # The shape of a call was kept per code object: the second wrapper, whose code is the
    # first's, was given the context it does not take, and failed every attempt.
    view = await finished(await (await stepline.register("wrapped", WrappedSteps)).create())

    assert view["status"] == "complete", view["steps"]
    assert view["output"] == [1, "no context"]
