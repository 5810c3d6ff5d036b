"""Credentials against the real server: missing, wrong, another account's, read-only, email+key.

The tokens of other accounts and the read-only token were made with ``stepline tokens create``
on the server's database before it started (see ``server.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import cloudflare
import httpx
import pytest
from cloudflare import Cloudflare

from .server import OTHER_ACCOUNT, RunningServer, wait_for_status

pytestmark = pytest.mark.clients

WORKFLOW = "auth-quick"


@pytest.fixture(scope="module")
def instance(server: RunningServer) -> str:
    """An instance of the account that other credentials must not see or touch."""
    with server.http() as http:
        created = http.post(f"/workflows/{WORKFLOW}/instances", json={"instance_id": "auth-1"})
    assert created.status_code == 200, created.text
    wait_for_status(server, WORKFLOW, "auth-1", ("complete",))
    return "auth-1"


@pytest.fixture
def raw(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.account_url, timeout=30) as client:
        yield client


def failure(answer: httpx.Response, status: int, code: int) -> dict[str, Any]:
    assert answer.status_code == status, (answer.request.method, answer.request.url, answer.text)
    body: dict[str, Any] = answer.json()
    assert body["success"] is False and body["result"] is None
    assert [e["code"] for e in body["errors"]] == [code]
    return body


def writes(instance_id: str) -> list[tuple[str, str, Any]]:
    """One of every write the API has, each aimed at something that exists."""
    base = f"/workflows/{WORKFLOW}"
    return [
        ("PUT", base, {"class_name": "QuickWorkflow", "script_name": "client_flows"}),
        ("DELETE", base, None),
        ("POST", f"{base}/instances", {"instance_id": "auth-new"}),
        ("POST", f"{base}/instances/batch", [{"instance_id": "auth-new-2"}]),
        ("PATCH", f"{base}/instances/{instance_id}/status", {"status": "restart"}),
        ("POST", f"{base}/instances/{instance_id}/events/approved", {"by": "mallory"}),
        ("DELETE", f"{base}/instances/{instance_id}", None),
        ("PUT", f"{base}/instances/terminate", None),
        ("POST", f"{base}/instances/batch/delete", {"instances": [instance_id]}),
        ("POST", f"{base}/instances/batch/terminate", [instance_id]),
    ]


def reads(instance_id: str) -> list[str]:
    base = f"/workflows/{WORKFLOW}"
    return [
        "/workflows",
        base,
        f"{base}/versions",
        f"{base}/instances",
        f"{base}/instances/{instance_id}",
        f"{base}/instances/{instance_id}/step?name=fetch+data-1&type=step",
    ]


def assert_untouched(server: RunningServer, instance_id: str) -> None:
    with server.http() as http:
        detail = http.get(f"/workflows/{WORKFLOW}/instances/{instance_id}").json()["result"]
        assert detail["status"] == "complete"
        assert http.get(f"/workflows/{WORKFLOW}/instances/auth-new").status_code == 404
        assert http.get(f"/workflows/{WORKFLOW}/instances/auth-new-2").status_code == 404
        versions = http.get(f"/workflows/{WORKFLOW}/versions").json()["result"]
        assert len(versions) == 1


def test_missing_credentials_are_400_9106(raw: httpx.Client, instance: str) -> None:
    for path in reads(instance):
        body = failure(raw.get(path), 400, 9106)
        assert body["errors"][0]["message"] == (
            "Missing X-Auth-Key, X-Auth-Email or Authorization headers"
        )
    # An email without a key is not a credential either.
    failure(raw.get("/workflows", headers={"X-Auth-Email": "a@example.com"}), 400, 9106)


def test_a_wrong_token_is_401_10000(
    raw: httpx.Client, server: RunningServer, instance: str
) -> None:
    for headers in (
        {"Authorization": "Bearer not-a-token"},
        {"X-Auth-Email": "a@example.com", "X-Auth-Key": "not-a-key"},
    ):
        for path in reads(instance):
            body = failure(raw.get(path, headers=headers), 401, 10000)
            assert body["errors"][0]["message"] == "Authentication error"
    with (
        Cloudflare(api_token="not-a-token", base_url=server.base_url) as sdk,
        pytest.raises(cloudflare.AuthenticationError) as refused,
    ):
        sdk.workflows.list(account_id=server.account_id)
    assert refused.value.status_code == 401


def test_another_accounts_token_is_403_and_learns_nothing(
    raw: httpx.Client, server: RunningServer, instance: str
) -> None:
    other = {"Authorization": f"Bearer {server.other_token}"}
    # The token is valid: its own (empty) account answers.
    own = raw.get(f"{server.base_url}/accounts/{OTHER_ACCOUNT}/workflows", headers=other)
    assert own.status_code == 200 and own.json()["result"] == []

    answers = [raw.get(path, headers=other) for path in reads(instance)]
    # A workflow that does not exist gets the very same answer as one that does.
    answers.append(raw.get("/workflows/no-such-workflow", headers=other))
    answers.append(raw.get("/workflows/no-such-workflow/instances/x", headers=other))
    answers += [
        raw.request(method, path, headers=other, json=body)
        for method, path, body in writes(instance)
    ]
    bodies = {answer.text for answer in answers}
    for answer in answers:
        failure(answer, 403, 10000)
        assert WORKFLOW not in answer.text and instance not in answer.text
    assert len(bodies) == 1, bodies
    assert_untouched(server, instance)

    memberships = raw.get(f"{server.base_url}/memberships", headers=other).json()["result"]
    assert [m["account"]["id"] for m in memberships] == [OTHER_ACCOUNT]


def test_a_read_only_token_reads_but_never_writes(
    raw: httpx.Client, server: RunningServer, instance: str
) -> None:
    read_only = {"Authorization": f"Bearer {server.read_only_token}"}
    for path in reads(instance):
        answer = raw.get(path, headers=read_only)
        assert answer.status_code == 200, (path, answer.text)
        assert answer.json()["success"] is True
    for method, path, body in writes(instance):
        failure(raw.request(method, path, headers=read_only, json=body), 403, 10000)
    assert_untouched(server, instance)

    with Cloudflare(api_token=server.read_only_token, base_url=server.base_url) as sdk:
        names = [w.name for w in sdk.workflows.list(account_id=server.account_id, per_page=50)]
        assert WORKFLOW in names
        with pytest.raises(cloudflare.PermissionDeniedError) as refused:
            sdk.workflows.instances.create(WORKFLOW, account_id=server.account_id)
    assert refused.value.errors[0].code == 10000


def test_email_and_key(server: RunningServer, instance: str) -> None:
    # The Python SDK sends X-Auth-Email + X-Auth-Key (and drops the Bearer when all are set).
    with Cloudflare(
        api_email="ops@example.com", api_key=server.token, base_url=server.base_url
    ) as sdk:
        detail = sdk.workflows.instances.get(
            instance, account_id=server.account_id, workflow_name=WORKFLOW
        )
        assert detail.status == "complete"
        created = sdk.workflows.instances.create(
            WORKFLOW, account_id=server.account_id, instance_id="auth-by-key"
        )
        assert created.id == "auth-by-key"
    with Cloudflare(
        api_email="ops@example.com", api_key=server.read_only_token, base_url=server.base_url
    ) as sdk:
        assert sdk.workflows.get(WORKFLOW, account_id=server.account_id).name == WORKFLOW
        with pytest.raises(cloudflare.PermissionDeniedError):
            sdk.workflows.delete(WORKFLOW, account_id=server.account_id)
