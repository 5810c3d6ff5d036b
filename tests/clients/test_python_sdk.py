"""The real ``cloudflare`` Python SDK (5.9.0) against a running ``stepline serve``.

Every workflows method of clients.md §3, as a user calls it: only ``base_url`` differs from
talking to Cloudflare. Unless a test says otherwise the client validates every response
strictly (``_strict_response_validation=True``), which turns any shape mismatch into an
``APIResponseValidationError``; ``instances.get`` is read leniently (quirk Q8: the SDK types
``output`` as ``str | float``, so an object or null output cannot pass strict mode).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import cloudflare
import httpx
import pytest
from cloudflare import AsyncCloudflare, Cloudflare

from .server import TERMINAL, RunningServer, wait_for_status

pytestmark = pytest.mark.clients


class Recorder:
    """Counts what the SDK really sends, retries included."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> None:
        self.requests.append(request)

    def since(self, mark: int) -> list[str]:
        return [f"{r.method} {r.url.path}?{r.url.query.decode()}" for r in self.requests[mark:]]


@pytest.fixture(scope="module")
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture(scope="module")
def sdk(server: RunningServer, recorder: Recorder) -> Iterator[Cloudflare]:
    """The SDK as a careful user would run it: strict validation on."""
    http_client = httpx.Client(event_hooks={"request": [recorder]})
    client = Cloudflare(
        api_token=server.token,
        base_url=server.base_url,
        http_client=http_client,
        _strict_response_validation=True,
    )
    with client:
        yield client


@pytest.fixture(scope="module")
def lenient(server: RunningServer) -> Iterator[Cloudflare]:
    """The SDK's default (lenient) validation, for ``instances.get`` (Q8)."""
    with Cloudflare(api_token=server.token, base_url=server.base_url) as client:
        yield client


@pytest.fixture(scope="module")
def account(server: RunningServer) -> str:
    return server.account_id


def wait_sdk(
    lenient: Cloudflare, account: str, workflow: str, instance_id: str, statuses: tuple[str, ...]
) -> Any:
    """Poll ``instances.get`` as a user would, until one of ``statuses``."""
    deadline = time.monotonic() + 15
    while True:
        detail = lenient.workflows.instances.get(
            instance_id, account_id=account, workflow_name=workflow
        )
        if detail.status in statuses:
            return detail
        assert time.monotonic() < deadline, f"{instance_id} stuck in {detail.status}"
        time.sleep(0.05)


# -- workflows and versions ----------------------------------------------------------------


def test_update_get_versions_and_delete(sdk: Cloudflare, lenient: Cloudflare, account: str) -> None:
    workflows = sdk.workflows
    first = workflows.update(
        "sdk-put",
        account_id=account,
        class_name="QuickWorkflow",
        script_name="client_flows",
        concurrency={"limit": 5},
        default_retention={"error_retention": "7 days", "success_retention": 3_600_000},
        limits={"steps": 100},
    )
    assert (first.name, first.class_name, first.script_name) == (
        "sdk-put",
        "QuickWorkflow",
        "client_flows",
    )
    assert first.is_deleted == 0 and first.terminator_running == 0
    assert first.triggered_on is None
    assert isinstance(first.created_on, datetime) and first.created_on.tzinfo is not None
    assert first.version_id

    # Every PUT is a new version; the list is newest first (wrangler reads result[0]).
    second = workflows.update(
        "sdk-put", account_id=account, class_name="QuickWorkflow", script_name="client_flows"
    )
    assert second.id == first.id
    assert second.version_id != first.version_id
    versions = list(workflows.versions.list("sdk-put", account_id=account))
    assert [v.id for v in versions] == [second.version_id, first.version_id]
    assert all(v.workflow_id == first.id and v.class_name == "QuickWorkflow" for v in versions)

    old = workflows.versions.get(first.version_id, account_id=account, workflow_name="sdk-put")
    assert old.id == first.version_id
    assert old.language == "python"
    assert old.has_dag is False
    assert old.limits is not None and old.limits.steps == 100
    assert old.concurrency is not None and old.concurrency.limit == 5
    assert old.default_retention is not None
    assert old.default_retention.error_retention == 7 * 24 * 3600 * 1000
    assert old.default_retention.success_retention == 3_600_000

    graph = workflows.versions.graph(first.version_id, account_id=account, workflow_name="sdk-put")
    assert graph.id == first.version_id and graph.workflow_id == first.id
    assert graph.graph is None  # Stepline derives no static graph from Python code

    fetched = workflows.get("sdk-put", account_id=account)
    assert fetched.id == first.id and fetched.name == "sdk-put"
    assert fetched.instances["complete"] == 0

    # The class is importable by the server, so the workflow really runs.
    created = workflows.instances.create("sdk-put", account_id=account, params={"numbers": [2]})
    assert created.version_id == second.version_id
    done = wait_sdk(lenient, account, "sdk-put", created.id, TERMINAL)
    assert done.status == "complete" and done.output == {"total": 2, "label": "none"}
    assert workflows.get("sdk-put", account_id=account).triggered_on is not None

    deleted = workflows.delete("sdk-put", account_id=account)
    assert deleted.status == "ok" and deleted.success is True
    with pytest.raises(cloudflare.NotFoundError) as gone:
        workflows.get("sdk-put", account_id=account)
    assert gone.value.errors[0].code == 10200
    assert gone.value.errors[0].message == "workflows.api.error.workflow.not_found"


def test_update_after_an_edit_runs_the_edited_code(
    sdk: Cloudflare, lenient: Cloudflare, account: str, server: RunningServer
) -> None:
    """An update is a deploy: edit the workflow's module beside ``stepline.toml``, update,
    and the instances created then run the edited code under a version of their own. The
    first deploy names a class the module lacks; the fix of that deploys too."""
    module = server.log_path.parent / "redeployed_flows.py"
    flow = (
        "from stepline import WorkflowEntrypoint\n\n"
        "class {name}(WorkflowEntrypoint):\n"
        "    async def run(self, event, step):\n"
        "        return {result!r}\n"
    )

    def deploy(name: str, result: str) -> Any:
        module.write_text(flow.format(name=name, result=result))
        return sdk.workflows.update(
            "sdk-redeployed", account_id=account, class_name="Flow", script_name="redeployed_flows"
        )

    with pytest.raises(cloudflare.BadRequestError, match="has no class 'Flow'"):
        deploy("Flwo", "v0")
    versions = []
    for result in ("v1", "v2"):  # the same size: an edit in place
        versions.append(deploy("Flow", result).version_id)
        created = sdk.workflows.instances.create("sdk-redeployed", account_id=account)
        assert created.version_id == versions[-1]
        done = wait_sdk(lenient, account, "sdk-redeployed", created.id, TERMINAL)
        assert (done.status, done.output) == ("complete", result)
    assert versions[0] != versions[1]


def test_update_after_an_edit_that_does_not_compile_is_refused_and_keeps_the_code(
    sdk: Cloudflare, lenient: Cloudflare, account: str, server: RunningServer
) -> None:
    """An edit with a syntax error is refused as any edit that does not import is (400,
    10201, the error's words), and what ran before runs on; it was a 500 internal_server."""
    module = server.log_path.parent / "miscompiled_flows.py"
    flow = (
        "from stepline import WorkflowEntrypoint\n\n"
        "class Flow(WorkflowEntrypoint):\n"
        "    async def run(self, event, step):\n"
        "        return 'v1'\n"
    )

    def deploy() -> Any:
        return sdk.workflows.update(
            "sdk-miscompiled",
            account_id=account,
            class_name="Flow",
            script_name="miscompiled_flows",
        )

    module.write_text(flow)
    deployed = deploy()
    module.write_text(flow + "oops = (\n")
    with pytest.raises(cloudflare.BadRequestError) as refused:
        deploy()
    assert refused.value.errors[0].code == 10201
    assert "cannot import module 'miscompiled_flows': SyntaxError" in str(refused.value)

    created = sdk.workflows.instances.create("sdk-miscompiled", account_id=account)
    assert created.version_id == deployed.version_id
    done = wait_sdk(lenient, account, "sdk-miscompiled", created.id, TERMINAL)
    assert (done.status, done.output) == ("complete", "v1")


@pytest.mark.parametrize("script_name", ["no_such_module", "../../etc/passwd", ".relative"])
def test_update_with_a_class_the_server_cannot_import(
    sdk: Cloudflare, account: str, script_name: str
) -> None:
    with pytest.raises(cloudflare.BadRequestError) as refused:
        sdk.workflows.update(
            "sdk-ghost", account_id=account, class_name="Ghost", script_name=script_name
        )
    assert refused.value.status_code == 400
    assert refused.value.errors[0].code == 10201
    with pytest.raises(cloudflare.NotFoundError):
        sdk.workflows.get("sdk-ghost", account_id=account)


@pytest.mark.parametrize(
    ("script_name", "class_name"),
    [("stepline", "WorkflowEntrypoint"), ("node_tools", "Flow"), ("json", "JSONDecoder")],
    ids=["stepline's own base class", "on the path, not declared", "standard library"],
)
def test_update_naming_a_module_outside_the_project_is_refused(
    sdk: Cloudflare, account: str, script_name: str, class_name: str
) -> None:
    """The server imports on request only the project's code (its config's folder, declared
    packages and ``modules``): importing any other module would run its top-level code."""
    name = f"sdk-outside-{script_name.replace('_', '-')}"
    with pytest.raises(cloudflare.BadRequestError) as refused:
        sdk.workflows.update(
            name, account_id=account, class_name=class_name, script_name=script_name
        )
    assert (refused.value.status_code, refused.value.errors[0].code) == (400, 10201)
    with pytest.raises(cloudflare.NotFoundError):
        sdk.workflows.get(name, account_id=account)


@pytest.mark.parametrize(
    "schedules",
    [[{"cron": "0 0 31 4 *"}], [{"cron": f"{m} {h} * * *"} for h in range(3) for m in range(50)]],
    ids=["a date that never comes", "more than the account may hold"],
)
def test_update_with_schedules_refused_writes_nothing(
    sdk: Cloudflare, account: str, schedules: list[dict[str, str]]
) -> None:
    def update(name: str, steps: int, schedules: list[dict[str, str]]) -> None:
        sdk.workflows.update(
            name, account_id=account, class_name="QuickWorkflow", script_name="client_flows",
            limits={"steps": steps}, schedules=schedules,  # type: ignore[arg-type]
        )  # fmt: skip

    with pytest.raises(cloudflare.BadRequestError) as refused:
        update("sdk-cron-new", 100, schedules)
    assert (refused.value.status_code, refused.value.errors[0].code) == (400, 10002)
    with pytest.raises(cloudflare.NotFoundError):
        sdk.workflows.get("sdk-cron-new", account_id=account)

    update("sdk-cron-kept", 100, [])
    before = sdk.workflows.get("sdk-cron-kept", account_id=account)
    with pytest.raises(cloudflare.BadRequestError):
        update("sdk-cron-kept", 7, schedules)
    after = sdk.workflows.get("sdk-cron-kept", account_id=account)
    assert after.to_dict() == before.to_dict()


def test_workflow_list_pages_until_an_empty_page(
    sdk: Cloudflare, server: RunningServer, recorder: Recorder, account: str
) -> None:
    with server.http() as http:
        total = http.get("/workflows", params={"per_page": 100}).json()["result_info"]
    mark = len(recorder.requests)
    names = [w.name for w in sdk.workflows.list(account_id=account, per_page=4)]
    assert len(names) == total["total_count"] == len(set(names))
    assert {"sdk-quick", "sdk-sleepy", "wr-quick", "ts-quick"} <= set(names)
    assert names == sorted(names)
    pages = -(-len(names) // 4)
    sent = recorder.since(mark)
    # One request per page, then one that comes back empty and stops the iteration.
    assert len(sent) == pages + 1
    assert sent[-1].endswith(f"per_page=4&page={pages + 1}")

    first = sdk.workflows.list(account_id=account, per_page=4, page=2)
    assert [w.name for w in first.result] == names[4:8]
    assert first.result_info is not None
    assert (first.result_info.page, first.result_info.per_page) == (2, 4)

    found = sdk.workflows.list(account_id=account, search="sdk-quick")
    assert [w.name for w in found.result] == ["sdk-quick"]
    assert set(found.result[0].instances) >= {"queued", "running", "complete"}

    past_the_end = sdk.workflows.list(account_id=account, page=999)
    assert past_the_end.result == []


# -- instances -----------------------------------------------------------------------------


def test_create_get_and_step_output(sdk: Cloudflare, lenient: Cloudflare, account: str) -> None:
    instances = sdk.workflows.instances
    created = instances.create(
        "sdk-quick",
        account_id=account,
        instance_id="sdk-one",
        params={"numbers": [4, 5, 6], "label": "six"},
        instance_retention={"success_retention": "1 day", "error_retention": 3_600_000},
    )
    assert created.id == "sdk-one"
    assert created.status == "queued"
    assert created.trigger_source == "api"
    workflow = sdk.workflows.get("sdk-quick", account_id=account)
    assert created.workflow_id == workflow.id

    detail = wait_sdk(lenient, account, "sdk-quick", "sdk-one", TERMINAL)
    assert detail.status == "complete"
    assert detail.success is True and detail.error is None
    assert detail.output == {"total": 15, "label": "six"}
    assert detail.params == {"numbers": [4, 5, 6], "label": "six"}
    assert detail.trigger.source == "api"
    assert detail.version_id == created.version_id
    assert detail.start is not None and detail.end is not None and detail.queued <= detail.start
    assert [(s.type, s.name) for s in detail.steps] == [
        ("step", "fetch data-1"),
        ("step", "add up-1"),
    ]
    assert detail.step_count == 2
    fetch = detail.steps[0]
    assert fetch.output == {"numbers": [4, 5, 6]}
    assert [a.success for a in fetch.attempts] == [True]

    newest_first = lenient.workflows.instances.get(
        "sdk-one", account_id=account, workflow_name="sdk-quick", order="desc"
    )
    assert [s.name for s in newest_first.steps] == ["add up-1", "fetch data-1"]
    simple = lenient.workflows.instances.get(
        "sdk-one", account_id=account, workflow_name="sdk-quick", simple="true"
    )
    assert simple.steps == [] and simple.step_count == 2

    # The step name has a space: the SDK sends name=fetch+data-1 (Q4).
    step = instances.step(
        "sdk-one", account_id=account, workflow_name="sdk-quick", name="fetch data-1", type="step"
    )
    assert step.status == "complete" and step.error is None
    assert step.output == {"numbers": [4, 5, 6]}
    attempt = instances.step(
        "sdk-one",
        account_id=account,
        workflow_name="sdk-quick",
        name="add up-1",
        type="step",
        attempt=1,
    )
    assert attempt.status == "complete" and attempt.output == 15


def test_params_given_as_a_string(sdk: Cloudflare, lenient: Cloudflare, account: str) -> None:
    # The SDK types params as a "JSON-encoded string" and sends a str as a JSON string (Q3).
    created = sdk.workflows.instances.create(
        "sdk-quick", account_id=account, params='{"numbers": [7]}'
    )
    detail = wait_sdk(lenient, account, "sdk-quick", created.id, TERMINAL)
    assert detail.status == "complete"
    assert detail.params in ('{"numbers": [7]}', {"numbers": [7]})


def test_bulk_creates_and_skips_existing_ids(
    sdk: Cloudflare, lenient: Cloudflare, account: str
) -> None:
    instances = sdk.workflows.instances
    page = instances.bulk(
        "sdk-quick",
        account_id=account,
        body=[
            {"instance_id": "sdk-bulk-1", "params": {"numbers": [1]}},
            {"params": {"numbers": [2]}, "location_hint": "enam"},
            {"instance_id": "sdk-bulk-3", "instance_retention": {"success_retention": "1 hour"}},
        ],
    )
    created = list(page)
    assert len(created) == 3
    assert created[0].id == "sdk-bulk-1" and created[2].id == "sdk-bulk-3"
    assert created[1].id not in ("sdk-bulk-1", "sdk-bulk-3")
    assert {c.status for c in created} == {"queued"}
    again = list(
        instances.bulk(
            "sdk-quick",
            account_id=account,
            body=[{"instance_id": "sdk-bulk-1"}, {"instance_id": "sdk-bulk-4"}],
        )
    )
    assert [c.id for c in again] == ["sdk-bulk-4"]
    detail = wait_sdk(lenient, account, "sdk-quick", created[1].id, TERMINAL)
    assert detail.output == {"total": 2, "label": "none"}


def test_instance_list_iterates_every_page(
    sdk: Cloudflare, server: RunningServer, recorder: Recorder, account: str
) -> None:
    instances = sdk.workflows.instances
    ids = [f"sdk-page-{n:02d}" for n in range(12)]
    instances.bulk("sdk-pages", account_id=account, body=[{"instance_id": i} for i in ids])
    for instance_id in ids:
        wait_for_status(server, "sdk-pages", instance_id, TERMINAL)

    mark = len(recorder.requests)
    listed = list(instances.list("sdk-pages", account_id=account, per_page=5))
    assert sorted(i.id for i in listed) == ids
    assert len(recorder.since(mark)) == 4  # 5 + 5 + 2, then an empty page
    # Newest first by default, so wrangler's "latest" is on the first page.
    created = [i.created_on for i in listed]
    assert created == sorted(created, reverse=True)
    assert all(i.status == "complete" and i.ended_on is not None for i in listed)

    ascending = list(instances.list("sdk-pages", account_id=account, per_page=5, direction="asc"))
    assert [i.id for i in ascending] == [i.id for i in reversed(listed)]
    assert [i.id for i in instances.list("sdk-pages", account_id=account, status="complete")] == [
        i.id for i in listed
    ]
    assert list(instances.list("sdk-pages", account_id=account, status="running")) == []

    now = datetime.now(UTC)
    window = instances.list(
        "sdk-pages",
        account_id=account,
        date_start=now - timedelta(hours=1),
        date_end=now + timedelta(hours=1),
    )
    assert len(window.result) == 12
    later = now + timedelta(hours=1)
    assert instances.list("sdk-pages", account_id=account, date_start=later).result == []

    first = instances.list("sdk-pages", account_id=account, per_page=5)
    extra = first.result_info.model_extra if first.result_info is not None else None
    assert extra is not None and extra["total_count"] == 12
    cursor = extra["cursor"]
    assert isinstance(cursor, str) and cursor
    after = instances.list("sdk-pages", account_id=account, per_page=5, cursor=cursor)
    assert [i.id for i in after.result] == [i.id for i in listed[5:10]]
    # Iterating on from a cursor makes the SDK send cursor and page together (§5 d): the
    # server refuses that with 400 rather than serve the same page forever.
    with pytest.raises(cloudflare.BadRequestError):
        list(after.iter_pages())


def test_pause_resume_restart_terminate(sdk: Cloudflare, lenient: Cloudflare, account: str) -> None:
    status = sdk.workflows.instances.status
    target = {"account_id": account, "workflow_name": "sdk-sleepy"}
    sdk.workflows.instances.create("sdk-sleepy", account_id=account, instance_id="sdk-nap")
    asleep = wait_sdk(lenient, account, "sdk-sleepy", "sdk-nap", ("waiting",))
    prepared_at = asleep.steps[0].start

    paused = status.edit("sdk-nap", **target, status="pause")
    assert paused.status == "paused"
    assert isinstance(paused.timestamp, datetime)
    assert lenient.workflows.instances.get("sdk-nap", **target).status == "paused"

    resumed = status.edit("sdk-nap", **target, status="resume")
    assert resumed.status in ("queued", "running", "waiting")
    wait_sdk(lenient, account, "sdk-sleepy", "sdk-nap", ("waiting",))

    # restart from the sleep keeps the step before it (Python's from_ goes out as "from").
    restarted = status.edit(
        "sdk-nap", **target, status="restart", from_={"name": "nap", "type": "sleep"}
    )
    assert restarted.status == "queued"
    again = wait_sdk(lenient, account, "sdk-sleepy", "sdk-nap", ("waiting",))
    assert [s.name for s in again.steps] == ["prepare-1", "nap-1"]
    assert again.steps[0].start == prepared_at

    terminated = status.edit("sdk-nap", **target, status="terminate", rollback=True)
    assert terminated.status == "terminated"
    ended = lenient.workflows.instances.get("sdk-nap", **target)
    assert ended.status == "terminated" and ended.success is False
    assert ended.steps[-1].type == "termination"

    fresh = status.edit("sdk-nap", **target, status="restart")
    assert fresh.status == "queued"
    reborn = wait_sdk(lenient, account, "sdk-sleepy", "sdk-nap", ("waiting",))
    assert reborn.steps[0].start > prepared_at


def test_events_reach_the_waiting_instance(
    sdk: Cloudflare, lenient: Cloudflare, account: str
) -> None:
    instances = sdk.workflows.instances
    instances.create("sdk-approval", account_id=account, instance_id="sdk-approve-1")
    wait_sdk(lenient, account, "sdk-approval", "sdk-approve-1", ("waiting", "running"))
    sent = instances.events.create(
        "approved",
        account_id=account,
        workflow_name="sdk-approval",
        instance_id="sdk-approve-1",
        body={"by": "ada"},
    )
    assert sent.instance_id == "sdk-approve-1"
    assert isinstance(sent.timestamp, datetime)
    done = wait_sdk(lenient, account, "sdk-approval", "sdk-approve-1", TERMINAL)
    assert done.status == "complete" and done.output == {"approved_by": {"by": "ada"}}
    wait_step = done.steps[0]
    assert (wait_step.type, wait_step.name, wait_step.finished) == (
        "waitForEvent",
        "wait for approval-1",
        True,
    )
    step = instances.step(
        "sdk-approve-1",
        account_id=account,
        workflow_name="sdk-approval",
        name="wait for approval-1",
        type="waitForEvent",
    )
    assert step.status == "complete"
    assert step.output == {"by": "ada"} and step.event_type == "approved"

    # Sent before the instance reaches its wait: buffered; any JSON body, here an array.
    instances.create("sdk-approval", account_id=account, instance_id="sdk-approve-2")
    instances.events.create(
        "approved",
        account_id=account,
        workflow_name="sdk-approval",
        instance_id="sdk-approve-2",
        body=[1, 2, 3],
    )
    done = wait_sdk(lenient, account, "sdk-approval", "sdk-approve-2", TERMINAL)
    assert done.output == {"approved_by": [1, 2, 3]}


def test_an_event_wakes_an_instance_that_is_waiting_for_it_at_once(
    sdk: Cloudflare, lenient: Cloudflare, account: str
) -> None:
    instances = sdk.workflows.instances
    instances.create("sdk-approval", account_id=account, instance_id="sdk-prompt")
    wait_sdk(lenient, account, "sdk-approval", "sdk-prompt", ("waiting", "running"))
    time.sleep(0.1)  # inside wait_for_event now, within its first second
    started = time.monotonic()
    instances.events.create(
        "approved",
        account_id=account,
        workflow_name="sdk-approval",
        instance_id="sdk-prompt",
        body={"by": "quick"},
    )
    done = wait_sdk(lenient, account, "sdk-approval", "sdk-prompt", TERMINAL)
    elapsed = time.monotonic() - started
    assert done.output == {"approved_by": {"by": "quick"}}
    # An event is a signal, not something to poll for: it must not wait for the engine's
    # one-second hot wait to run out.
    assert elapsed < 0.5, f"the event took {elapsed:.2f} s to reach the waiting instance"


def test_a_failing_workflow_reports_its_error(
    sdk: Cloudflare, lenient: Cloudflare, account: str
) -> None:
    sdk.workflows.instances.create("sdk-broken", account_id=account, instance_id="sdk-boom")
    detail = wait_sdk(lenient, account, "sdk-broken", "sdk-boom", TERMINAL)
    assert detail.status == "errored" and detail.success is False
    assert detail.error is not None
    assert (detail.error.name, detail.error.message) == ("ValueError", "boom")
    explode = detail.steps[0]
    assert explode.name == "explode-1" and explode.success is False
    assert [a.error.message for a in explode.attempts if a.error] == ["boom"]
    step = sdk.workflows.instances.step(
        "sdk-boom", account_id=account, workflow_name="sdk-broken", name="explode-1", type="step"
    )
    assert step.status == "errored"
    assert step.error is not None and step.error.message == "boom"


# -- errors, as the SDK raises them ---------------------------------------------------------


def test_not_found_errors(sdk: Cloudflare, account: str) -> None:
    cases = [
        (lambda: sdk.workflows.get("sdk-missing", account_id=account), 10200),
        (
            lambda: sdk.workflows.instances.create("sdk-missing", account_id=account),
            10200,
        ),
        (
            lambda: sdk.workflows.instances.get(
                "nobody", account_id=account, workflow_name="sdk-quick"
            ),
            10400,
        ),
        (
            lambda: sdk.workflows.instances.status.edit(
                "nobody", account_id=account, workflow_name="sdk-quick", status="pause"
            ),
            10400,
        ),
        (
            lambda: sdk.workflows.versions.get(
                "00000000-0000-0000-0000-000000000000",
                account_id=account,
                workflow_name="sdk-quick",
            ),
            10300,
        ),
    ]
    for call, code in cases:
        with pytest.raises(cloudflare.NotFoundError) as missing:
            call()
        assert missing.value.status_code == 404
        assert [e.code for e in missing.value.errors] == [code]
        assert missing.value.body["success"] is False  # type: ignore[index]


def test_conflicts_are_not_retried(sdk: Cloudflare, recorder: Recorder, account: str) -> None:
    instances = sdk.workflows.instances
    instances.create("sdk-quick", account_id=account, instance_id="sdk-dup")
    mark = len(recorder.requests)
    started = time.monotonic()
    with pytest.raises(cloudflare.ConflictError) as conflict:
        instances.create("sdk-quick", account_id=account, instance_id="sdk-dup")
    elapsed = time.monotonic() - started
    assert conflict.value.status_code == 409
    assert conflict.value.errors[0].code == 10405
    assert conflict.value.errors[0].message == "workflows.api.error.instance.already_exists"
    assert conflict.value.response.headers["x-should-retry"] == "false"
    # Without x-should-retry: false the SDK would send the POST 3 times over ~1.5 s (Q9).
    assert len(recorder.since(mark)) == 1
    assert elapsed < 0.5

    wait_sdk_status = sdk.workflows.instances.status
    with pytest.raises(cloudflare.ConflictError) as finished:
        for _ in range(100):
            wait_sdk_status.edit(
                "sdk-dup", account_id=account, workflow_name="sdk-quick", status="terminate"
            )
            time.sleep(0.05)
    assert finished.value.errors[0].code == 10401
    with pytest.raises(cloudflare.ConflictError) as closed:
        instances.events.create(
            "approved",
            account_id=account,
            workflow_name="sdk-quick",
            instance_id="sdk-dup",
            body={},
        )
    assert closed.value.errors[0].code == 10403


def test_bad_requests(sdk: Cloudflare, account: str) -> None:
    instances = sdk.workflows.instances
    cases = [
        lambda: instances.create("sdk-quick", account_id=account, instance_id="no spaces!"),
        lambda: instances.list("sdk-quick", account_id=account, per_page=1000),
        lambda: instances.events.create(
            "has.dot",
            account_id=account,
            workflow_name="sdk-approval",
            instance_id="sdk-approve-1",
            body={},
        ),
        lambda: instances.step(
            "sdk-one", account_id=account, workflow_name="sdk-quick", name="", type="step"
        ),
        lambda: instances.bulk("sdk-quick", account_id=account, body=[]),
        # Well-formed, but past what the database keeps (a 64-bit count of ms):
        lambda: instances.list(
            "sdk-quick", account_id=account, cursor=cursor_of("99999999999999999999.1")
        ),
        # Digits of other scripts, which str.isdigit takes and int reads (or cannot):
        lambda: instances.list("sdk-quick", account_id=account, cursor=cursor_of("١٢٣.١")),
        lambda: instances.list("sdk-quick", account_id=account, cursor=cursor_of("²³.1")),
        lambda: instances.create(
            "sdk-quick",
            account_id=account,
            instance_retention={"success_retention": "100000000000 years"},
        ),
    ]
    for call in cases:
        with pytest.raises(cloudflare.BadRequestError) as refused:
            call()
        assert refused.value.status_code == 400
        assert refused.value.errors and refused.value.errors[0].code == 10002


def cursor_of(text: str) -> str:
    """A cursor as the server writes them: URL-safe base64 of ``created.pk``, unpadded."""
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


# -- the async client ------------------------------------------------------------------------


async def test_async_client(server: RunningServer) -> None:
    account = server.account_id
    async with AsyncCloudflare(
        api_token=server.token, base_url=server.base_url, _strict_response_validation=True
    ) as client:
        instances = client.workflows.instances
        created = await instances.create(
            "sdk-quick", account_id=account, instance_id="sdk-async", params={"numbers": [9]}
        )
        assert created.id == "sdk-async"
        workflow = await client.workflows.get("sdk-quick", account_id=account)
        assert workflow.id == created.workflow_id
        ids = [i.id async for i in instances.list("sdk-quick", account_id=account, per_page=3)]
        assert "sdk-async" in ids and len(ids) == len(set(ids))
        with pytest.raises(cloudflare.NotFoundError):
            await instances.get("sdk-nobody", account_id=account, workflow_name="sdk-quick")
    detail = wait_for_status(server, "sdk-quick", "sdk-async", TERMINAL)
    assert detail["output"] == {"total": 9, "label": "none"}
