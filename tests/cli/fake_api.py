"""A stand-in for the Stepline REST API, for testing the CLI and the HTTP client only.

It answers the Workflows endpoints the CLI calls with Cloudflare-shaped envelopes from an
in-memory :class:`FakeState`, records every request, and can be told to fail the next
requests. It knows nothing of running workflows; the real server is tested elsewhere.
"""

from __future__ import annotations

import itertools
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

ACCOUNT_ID = "acc-test"
TOKEN = "test-token"
VERSION_ID = "ee2560fb-c4cf-4510-8b42-b4f1960cc467"
WORKFLOW_ID = "a327b27c-acb3-43b6-8976-ff27665b3fed"
EPOCH = datetime(2026, 11, 22, 21, 0, 0, tzinfo=UTC)
FINISHED = {"complete", "errored", "terminated"}


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def at(seconds: float) -> str:
    return iso(EPOCH + timedelta(seconds=seconds))


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    headers: dict[str, str]


@dataclass
class FakeState:
    """What the fake server holds; tests seed it and read ``requests`` back."""

    workflows: dict[str, dict[str, Any]] = field(default_factory=dict)
    instances: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    canned_failures: list[tuple[int, str] | None] = field(default_factory=list)
    """(HTTP status, raw body) answered, in order, before any real handling; None lets a
    request through to it."""
    polls_until_complete: dict[str, int] = field(default_factory=dict)
    version_settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    """By workflow: what its version view adds (limits, concurrency, default_retention)."""
    clock: itertools.count[int] = field(default_factory=lambda: itertools.count(3600))

    def reset(self) -> None:
        fresh = FakeState()
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(fresh, name))

    def now(self) -> str:
        return at(next(self.clock))

    def add_workflow(self, name: str, created_at: float = 0) -> None:
        self.workflows[name] = {
            "id": WORKFLOW_ID if not self.workflows else str(uuid.uuid4()),
            "name": name,
            "class_name": name.title().replace("-", ""),
            "script_name": f"{name}-script",
            "created_on": at(created_at),
            "modified_on": at(created_at),
            "triggered_on": None,
        }
        self.instances[name] = {}

    def add_instance(self, workflow: str, instance_id: str, **details: Any) -> dict[str, Any]:
        created = details.pop("created_on", None) or self.now()
        instance = {
            "id": instance_id,
            "status": "queued",
            "params": None,
            "trigger": {"source": "api"},
            "versionId": VERSION_ID,
            "queued": created,
            "start": None,
            "end": None,
            "success": None,
            "error": None,
            "output": None,
            "rollback": None,
            "steps": [],
            "created_on": created,
            "modified_on": created,
        }
        instance.update(details)
        self.instances[workflow][instance_id] = instance
        return instance

    def paths(self) -> list[str]:
        return [f"{r.method} {r.path}" for r in self.requests]


def envelope(result: Any, **result_info: Any) -> JSONResponse:
    body: dict[str, Any] = {"success": True, "errors": [], "messages": [], "result": result}
    if result_info:
        body["result_info"] = result_info
    return JSONResponse(body)


def failure(status: int, code: int, message: str, detail: str | None = None) -> JSONResponse:
    messages = [{"code": code, "message": detail}] if detail else []
    body = {
        "success": False,
        "errors": [{"code": code, "message": message}],
        "messages": messages,
        "result": None,
    }
    return JSONResponse(body, status_code=status)


def failure_text(code: int, message: str) -> str:
    """A failure envelope as raw text, for ``FakeState.canned_failures``."""
    return json.dumps({"success": False, "errors": [{"code": code, "message": message}]})


def summary(workflow: dict[str, Any], instance: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": instance["id"],
        "workflow_id": workflow["id"],
        "version_id": VERSION_ID,
        "status": instance["status"],
        "created_on": instance["created_on"],
        "modified_on": instance["modified_on"],
        "started_on": instance["start"],
        "ended_on": instance["end"],
        "trigger_source": "api",
    }


Handler = Callable[[FakeState, Request, dict[str, str], Any], Response]
_ROUTES: list[tuple[str, re.Pattern[str], Handler]] = []


def route(method: str, pattern: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        regex = re.compile("^" + pattern.replace("{", "(?P<").replace("}", ">[^/]+)") + "/?$")
        _ROUTES.append((method, regex, handler))
        return handler

    return register


W = "/accounts/{account}/workflows"


@route("GET", W)
def list_workflows(state: FakeState, request: Request, _: dict[str, str], __: Any) -> Response:
    page, per_page = (
        int(request.query_params.get("page", 1)),
        int(request.query_params.get("per_page", 10)),
    )
    names = sorted(state.workflows)
    rows = []
    for name in names[(page - 1) * per_page : page * per_page]:
        counts: dict[str, int] = {}
        for instance in state.instances[name].values():
            counts[instance["status"]] = counts.get(instance["status"], 0) + 1
        rows.append({**state.workflows[name], "instances": counts})
    return envelope(rows, page=page, per_page=per_page, count=len(rows), total_count=len(names))


def _workflow(state: FakeState, params: dict[str, str]) -> dict[str, Any] | Response:
    workflow = state.workflows.get(params["name"])
    if workflow is None:
        detail = f'workflow "{params["name"]}" does not exist'
        return failure(404, 10200, "workflows.api.error.workflow.not_found", detail)
    return workflow


def _instance(state: FakeState, params: dict[str, str]) -> dict[str, Any] | Response:
    found = _workflow(state, params)
    if isinstance(found, Response):
        return found
    instance = state.instances[params["name"]].get(params["id"])
    if instance is None:
        detail = f'instance "{params["id"]}" does not exist'
        return failure(404, 10400, "workflows.api.error.instance.not_found", detail)
    return instance


@route("GET", W + "/{name}")
def get_workflow(state: FakeState, _: Request, params: dict[str, str], __: Any) -> Response:
    found = _workflow(state, params)
    return found if isinstance(found, Response) else envelope(found)


@route("DELETE", W + "/{name}")
def delete_workflow(state: FakeState, _: Request, params: dict[str, str], __: Any) -> Response:
    found = _workflow(state, params)
    if isinstance(found, Response):
        return found
    del state.workflows[params["name"]]
    return envelope({"status": "ok", "success": True})


@route("GET", W + "/{name}/versions")
def list_versions(state: FakeState, _: Request, params: dict[str, str], __: Any) -> Response:
    found = _workflow(state, params)
    if isinstance(found, Response):
        return found
    version = {
        "id": VERSION_ID,
        "workflow_id": found["id"],
        "class_name": found["class_name"],
        "created_on": found["created_on"],
        "modified_on": found["modified_on"],
        "has_dag": False,
        "language": "python",
        **state.version_settings.get(params["name"], {}),
    }
    return envelope([version], page=1, per_page=50, count=1, total_count=1)


@route("GET", W + "/{name}/instances")
def list_instances(state: FakeState, request: Request, params: dict[str, str], _: Any) -> Response:
    found = _workflow(state, params)
    if isinstance(found, Response):
        return found
    query = request.query_params
    rows = sorted(state.instances[params["name"]].values(), key=lambda i: i["created_on"])
    if query.get("direction") != "asc":
        rows.reverse()
    if "status" in query:
        rows = [row for row in rows if row["status"] == query["status"]]
    page, per_page = int(query.get("page", 1)), int(query.get("per_page", 50))
    chunk = rows[(page - 1) * per_page : page * per_page]
    return envelope(
        [summary(found, row) for row in chunk],
        page=page,
        per_page=per_page,
        count=len(chunk),
        total_count=len(rows),
    )


@route("POST", W + "/{name}/instances")
def create_instance(state: FakeState, _: Request, params: dict[str, str], body: Any) -> Response:
    found = _workflow(state, params)
    if isinstance(found, Response):
        return found
    instance_id = body.get("instance_id") or str(uuid.uuid4())
    if instance_id in state.instances[params["name"]]:
        return failure(409, 10405, "workflows.api.error.instance.already_exists")
    state.add_instance(params["name"], instance_id, params=body.get("params"))
    return envelope(
        {
            "id": instance_id,
            "status": "queued",
            "version_id": VERSION_ID,
            "workflow_id": found["id"],
        }
    )


@route("POST", W + "/{name}/instances/batch")
def create_batch(state: FakeState, _: Request, params: dict[str, str], body: Any) -> Response:
    found = _workflow(state, params)
    if isinstance(found, Response):
        return found
    if not isinstance(body, list) or not 1 <= len(body) <= 100:
        return failure(400, 10002, "workflows.api.error.body", "1 to 100 instances per batch")
    created = []
    for item in body:
        instance_id = item.get("instance_id") or str(uuid.uuid4())
        if instance_id in state.instances[params["name"]]:
            continue
        state.add_instance(params["name"], instance_id, params=item.get("params"))
        created.append(
            {"id": instance_id, "status": "queued", "version_id": VERSION_ID, "workflow_id": "w"}
        )
    return envelope(created)


@route("POST", W + "/{name}/instances/batch/delete")
def delete_batch(state: FakeState, _: Request, params: dict[str, str], body: Any) -> Response:
    found = _workflow(state, params)
    if isinstance(found, Response):
        return found
    deleted, errors = [], []
    for instance_id in body["instances"]:
        if state.instances[params["name"]].pop(instance_id, None) is None:
            message = "workflows.api.error.instance.not_found"
            errors.append({"id": instance_id, "code": 10400, "message": message})
        else:
            deleted.append({"id": instance_id})
    return envelope({"deleted": deleted, "errors": errors})


@route("PUT", W + "/{name}/instances/terminate")
def terminate_all(state: FakeState, request: Request, params: dict[str, str], _: Any) -> Response:
    found = _workflow(state, params)
    if isinstance(found, Response):
        return found
    wanted = request.query_params.get("status")
    for instance in state.instances[params["name"]].values():
        if instance["status"] not in FINISHED and wanted in (None, instance["status"]):
            instance["status"] = "terminated"
    return envelope({"status": "ok"})


@route("GET", W + "/{name}/instances/{id}")
def describe(state: FakeState, _: Request, params: dict[str, str], __: Any) -> Response:
    found = _instance(state, params)
    if isinstance(found, Response):
        return found
    remaining = state.polls_until_complete.get(params["id"])
    if remaining is not None:
        if remaining <= 1:
            found.update(status="complete", success=True, end=state.now(), output={"done": True})
            del state.polls_until_complete[params["id"]]
        else:
            state.polls_until_complete[params["id"]] = remaining - 1
    shown = {k: v for k, v in found.items() if k not in ("created_on", "modified_on")}
    return envelope({**shown, "step_count": len(found["steps"])})


_AFTER = {"pause": "paused", "resume": "queued", "terminate": "terminated", "restart": "queued"}


@route("PATCH", W + "/{name}/instances/{id}/status")
def change_status(state: FakeState, _: Request, params: dict[str, str], body: Any) -> Response:
    found = _instance(state, params)
    if isinstance(found, Response):
        return found
    action = body["status"]
    if action == "terminate" and found["status"] in FINISHED:
        return failure(409, 10401, "workflows.api.error.instance.cannot_terminate")
    found["status"] = _AFTER[action]
    return envelope({"status": found["status"], "timestamp": state.now()})


@route("POST", W + "/{name}/instances/{id}/events/{type}")
def send_event(state: FakeState, _: Request, params: dict[str, str], __: Any) -> Response:
    found = _instance(state, params)
    if isinstance(found, Response):
        return found
    return envelope({"instanceId": found["id"], "timestamp": state.now()})


def build_app(state: FakeState) -> Starlette:
    async def dispatch(request: Request) -> Response:
        raw = await request.body()
        body = json.loads(raw) if raw else None
        path = "/" + request.path_params["rest"]
        state.requests.append(
            Recorded(request.method, path, dict(request.query_params), body, dict(request.headers))
        )
        canned = state.canned_failures.pop(0) if state.canned_failures else None
        if canned is not None:
            status, text = canned
            return Response(text, status_code=status, media_type="application/json")
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return failure(401, 10000, "Authentication error")
        for method, regex, handler in _ROUTES:
            match = regex.match(path)
            if match and method == request.method:
                if match.group("account") != ACCOUNT_ID:
                    return failure(403, 10000, "Authentication error")
                return handler(state, request, match.groupdict(), body)
        return failure(404, 7003, "workflows.api.error.not_found")

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    return Starlette(routes=[Route("/client/v4/{rest:path}", dispatch, methods=methods)])
