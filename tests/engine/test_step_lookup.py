"""``/step`` finds one step by the name the describe view gives it (its code's name and its
count, ``pay-2``), and ``simple=true`` counts the steps; neither reads every step's output."""

from __future__ import annotations

import httpx
import pytest

from stepline import Stepline, WorkflowEntrypoint
from stepline.api import StaticTokenAuthenticator, create_app
from stepline.client.views import OUTPUT_PREVIEW_CHARS
from stepline.errors import InvalidRequest
from stepline.validation import STEP_LABEL_MAX, STEP_SHOWN_NAME_MAX_BYTES
from tests.conftest import MakeStepline
from tests.engine.helpers import finished


class Named(WorkflowEntrypoint):
    async def run(self, event, step):
        for n in range(2):

            async def pay(n=n):
                return {"paid": n}

            await step.do("pay-by-card", pay)
        await step.do("7", lambda: "a number for a name")
        waited = await step.wait_for_event("the go-ahead", "go", timeout="1 minute")
        return waited["payload"]


async def test_a_step_is_found_by_the_name_its_describe_view_gives(make_stepline: MakeStepline):
    stepline = await make_stepline()
    workflow = await stepline.register("named", Named)
    instance = await workflow.create("one")
    await instance.send_event("go", {"ok": True})  # kept until the wait takes it
    full = await finished(instance)
    client = stepline.client

    async def step(name: str, type: str = "step") -> dict:
        return await client.step_output(
            stepline.account_id, "named", "one", step_name=name, step_type=type
        )

    assert full["status"] == "complete"
    assert [s["name"] for s in full["steps"]] == [
        "pay-by-card-1",
        "pay-by-card-2",
        "7-1",
        "the go-ahead-1",
    ]
    assert (await step("pay-by-card-2"))["output"] == {"paid": 1}
    assert (await step("7-1"))["output"] == "a number for a name"
    assert (await step("the go-ahead-1", "waitForEvent"))["output"] == {"ok": True}
    for missing, type in [
        ("pay-by-card-02", "step"),  # the same key once read as a number, not the same name
        ("pay-by-card-3", "step"),
        ("pay-by-card", "step"),
        ("pay-by-card-", "step"),
        ("-1", "step"),
        ("pay-by-card-0", "step"),
        ("pay-by-card-\u00b2", "step"),  # a digit to str.isdigit, not to int()
        ("pay-by-card-" + "1" * 5_000, "step"),  # past int()'s limit on digits
        ("the go-ahead-1", "step"),  # a wait is not a step.do
    ]:
        with pytest.raises(InvalidRequest, match="no "):
            await step(missing, type)

    simple = await client.describe_instance(stepline.account_id, "named", "one", simple=True)
    assert simple["steps"] == [] and simple["step_count"] == full["step_count"] == 4

    async def attempt(name: str, type: str, number: int) -> dict:
        return await client.step_output(
            stepline.account_id, "named", "one", step_name=name, step_type=type, attempt=number
        )

    assert (await attempt("pay-by-card-2", "step", 1))["output"] == {"paid": 1}
    with pytest.raises(InvalidRequest, match=r": attempt must be 1 to 1 for this step$"):
        await attempt("pay-by-card-2", "step", 2)
    # It said "attempt must be 1 to 0".
    with pytest.raises(InvalidRequest, match=r": a waitForEvent has no attempts: leave out "):
        await attempt("the go-ahead-1", "waitForEvent", 1)


class FetchesInAStep(WorkflowEntrypoint):
    """Step "process" runs step "fetch" in its body (shown as "process-1/fetch-1")."""

    async def run(self, event, step):
        async def process() -> str:
            return await step.do("fetch", lambda: "fetched")

        return await step.do("process", process)


async def test_a_step_inside_anothers_body_is_found_by_the_name_shown(
    make_stepline: MakeStepline,
):
    """Its key joins the names with a separator the name shown does not have."""
    stepline = await make_stepline()
    instance = await (await stepline.register("fetches-in-a-step", FetchesInAStep)).create("one")
    assert (await finished(instance))["output"] == "fetched"

    assert await output_of(stepline, "fetches-in-a-step", "process-1/fetch-1") == "fetched"


async def output_of(stepline: Stepline, workflow: str, step_name: str) -> object:
    """The output ``/step`` gives for ``step_name`` of instance ``one``."""
    found = await stepline.client.step_output(
        stepline.account_id, workflow, "one", step_name=step_name, step_type="step"
    )
    return found["output"]


class NamedAsAnInnerStepIsShown(WorkflowEntrypoint):
    """``fetch`` twice inside the first ``process``, then a step named ``process-1/fetch`` in
    code: the first and the last are both shown as ``process-1/fetch-1``."""

    async def run(self, event, step):
        async def process() -> list[str]:
            return [await step.do("fetch", lambda n=n: f"inner {n}") for n in (1, 2)]

        inner = await step.do("process", process)
        return [*inner, await step.do("process-1/fetch", lambda: "top")]


async def test_steps_shown_alike_are_found_by_their_count_as_a_restart_counts_them(
    make_stepline: MakeStepline,
):
    """In the order they ran: the step named so in code, whose key is the name shown, was
    found in place of the first inner one, which could not be looked up at all."""
    stepline = await make_stepline()
    workflow = await stepline.register("named-as-an-inner-step", NamedAsAnInnerStepIsShown)
    assert (await finished(await workflow.create("one")))["output"] == [
        "inner 1",
        "inner 2",
        "top",
    ]

    for count, output in [(1, "inner 1"), (2, "inner 2"), (3, "top")]:
        shown = f"process-1/fetch-{count}"
        assert await output_of(stepline, "named-as-an-inner-step", shown) == output
    with pytest.raises(InvalidRequest, match="no step named 'process-1/fetch-4'"):
        await output_of(stepline, "named-as-an-inner-step", "process-1/fetch-4")


class Sized(WorkflowEntrypoint):
    async def run(self, event, step):
        for size in event.payload:
            await step.do(f"s{size}", lambda size=size: "é" * size)  # JSON: size + 2 chars


async def test_describe_shows_each_outputs_preview_and_step_shows_it_whole(
    make_stepline: MakeStepline,
):
    stepline = await make_stepline()
    workflow = await stepline.register("sized", Sized)
    preview = OUTPUT_PREVIEW_CHARS
    view = await finished(await workflow.create("one", params=[preview - 2, preview - 1, 5_000]))
    assert view["status"] == "complete"

    exact, over, long = (s["output"] for s in view["steps"])
    assert exact == "é" * (preview - 2)  # its JSON is exactly the preview: whole
    assert over == '"' + "é" * (preview - 1) + "[truncated output]"
    assert long == '"' + "é" * (preview - 1) + "[truncated output]"
    whole = await stepline.client.step_output(
        stepline.account_id, "sized", "one", step_name="s5000-1", step_type="step"
    )
    assert whole["output"] == "é" * 5_000


OUTER = "o" * 256


class FetchesInALongNamedStep(WorkflowEntrypoint):
    """Step ``OUTER`` (256 characters, the most a name may have) runs "fetch the orders" in its
    body: shown as ``OUTER-1/fetch the orders-1``, 282 characters."""

    async def run(self, event, step):
        env = self.env

        async def outer() -> str:
            return await step.do("fetch the orders", lambda: f"fetched {env.hit('fetch')}")

        return await step.do(OUTER, outer)


async def test_the_api_finds_and_restarts_from_a_step_whose_full_name_is_long(
    make_stepline: MakeStepline,
):
    """The full name of a step inside another's body adds up past the 256 characters a name
    may have: ``/step`` and a restart's ``from.name`` refused it as too long."""
    stepline = await make_stepline()
    await stepline.register("long-named", FetchesInALongNamedStep)
    app = create_app(stepline.client, StaticTokenAuthenticator(stepline.account_id, "token"))
    transport = httpx.ASGITransport(app=app)
    instance_path = f"/client/v4/accounts/{stepline.account_id}/workflows/long-named/instances/one"
    inner = f"{OUTER}-1/fetch the orders"
    async with httpx.AsyncClient(
        transport=transport, base_url="http://stepline", headers={"Authorization": "Bearer token"}
    ) as http:
        instance = await stepline.workflow("long-named").create("one")
        assert (await finished(instance))["output"] == "fetched 1"

        found = await http.get(
            f"{instance_path}/step", params={"name": f"{inner}-1", "type": "step"}
        )
        assert found.status_code == 200, found.text
        assert found.json()["result"]["output"] == "fetched 1"

        restart = {"status": "restart", "from": {"name": inner}}
        restarted = await http.patch(f"{instance_path}/status", json=restart)
        assert restarted.status_code == 200, restarted.text
        assert (await finished(instance))["output"] == "fetched 2"

        over = "x" * (STEP_SHOWN_NAME_MAX_BYTES + 1)
        looked_up = await http.get(
            f"{instance_path}/step", params={"name": f"{over}-123456789", "type": "step"}
        )
        restart_over = {"status": "restart", "from": {"name": over}}
        restarted_over = await http.patch(f"{instance_path}/status", json=restart_over)
    assert_refused(looked_up, f"longer than {STEP_LABEL_MAX} characters")
    assert_refused(restarted_over, f"1-{STEP_SHOWN_NAME_MAX_BYTES} bytes of UTF-8")


def assert_refused(response: httpx.Response, saying: str) -> None:
    """A 400 in Cloudflare's envelope, whose sentence says ``saying``."""
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["success"] is False and body["result"] is None
    assert body["errors"] == [{"code": 10002, "message": "workflows.api.error.body"}]
    assert saying in body["messages"][0]["message"]
