"""The real ``cloudflare`` Python SDK (5.9.0) against the app, in process over ASGI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from conftest import ACCOUNT, TOKEN
from http_fakes import FakeClient

cloudflare = pytest.importorskip("cloudflare")

pytestmark = pytest.mark.clients


@pytest.fixture
async def sdk(app: Any) -> AsyncIterator[Any]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport) as http_client:
        client = cloudflare.AsyncCloudflare(
            api_token=TOKEN,
            base_url="http://stepline/client/v4",
            http_client=http_client,
        )
        yield client


async def test_sdk_round_trip(sdk: Any, fake: FakeClient) -> None:
    workflows = sdk.workflows
    updated = await workflows.update("sdk-wf", account_id=ACCOUNT, class_name="C", script_name="s")
    assert updated.name == "sdk-wf"
    names = [workflow.name async for workflow in workflows.list(account_id=ACCOUNT, per_page=1)]
    assert sorted(names) == ["my-workflow", "sdk-wf"]
    created = await workflows.instances.create(
        "my-workflow", account_id=ACCOUNT, instance_id="sdk-1", params={"a": 1}
    )
    assert created.id == "sdk-1"
    ids = [
        row.id
        async for row in workflows.instances.list("my-workflow", account_id=ACCOUNT, per_page=1)
    ]
    assert ids == ["sdk-1"]
    detail = await workflows.instances.get("sdk-1", account_id=ACCOUNT, workflow_name="my-workflow")
    assert detail.status == "queued"
    status = await workflows.instances.status.edit(
        "sdk-1", account_id=ACCOUNT, workflow_name="my-workflow", status="pause"
    )
    assert status.status == "paused"
    event = await workflows.instances.events.create(
        "approval", account_id=ACCOUNT, workflow_name="my-workflow", instance_id="sdk-1", body=[1]
    )
    assert event is not None
    await workflows.delete("sdk-wf", account_id=ACCOUNT)


async def test_sdk_sees_typed_errors_and_no_retry_on_conflict(sdk: Any, fake: FakeClient) -> None:
    with pytest.raises(cloudflare.NotFoundError) as not_found:
        await sdk.workflows.get("does-not-exist", account_id=ACCOUNT)
    assert not_found.value.errors[0].code == 10200
    await sdk.workflows.instances.create("my-workflow", account_id=ACCOUNT, instance_id="dup")
    with pytest.raises(cloudflare.ConflictError):
        await sdk.workflows.instances.create("my-workflow", account_id=ACCOUNT, instance_id="dup")
    # x-should-retry: false stopped the SDK's two automatic resends of the 409 (Q9).
    assert [call.method for call in fake.calls].count("create_instance") == 2
    with pytest.raises(cloudflare.BadRequestError):
        await sdk.workflows.instances.status.edit(
            "dup", account_id=ACCOUNT, workflow_name="my-workflow", status="restart", from_={}
        )
