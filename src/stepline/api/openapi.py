"""The OpenAPI document served at ``GET /client/v4/openapi.json``.

It is the project's reconstruction of Cloudflare's Workflows API (``openapi_workflows.json``,
a copy of ``shared/spec/openapi-workflows.json``), narrowed to what this server does, so that
the envelope, field names and response models are Cloudflare's rather than whatever FastAPI
would infer from handlers that parse their own input. The narrowing:

- optional endpoints that Stepline does not serve (``/settings``, the older ``/dag``) are gone;
  ``/graph`` is served with ``graph: null`` (Stepline derives no static graph);
- the server URL is ``/client/v4``, relative to wherever the document was fetched from;
- parameters say what the handlers check: integer pages, Stepline's instance id rule,
  non-empty step names without control characters, account ids up to 64 characters;
- ``schedules`` must be empty (there is no cron trigger); batch ids follow the instance id rule;
- every operation declares every failure the server can send (bad input 400, auth 401/403,
  unknown resource 404, conflicts 409, oversize bodies 413, rate limits 429, 500/503),
  each in Cloudflare's failure envelope.
"""

from __future__ import annotations

import copy
import functools
import json
from importlib import resources
from typing import Any

from stepline.api.query import MAX_PAGE
from stepline.api.routers.instances import MAX_ATTEMPT
from stepline.validation import STEP_LABEL_MAX, STEP_SHOWN_NAME_MAX_BYTES

__all__ = ["openapi_document"]

_UNSERVED_PATH_SUFFIXES = ("/settings", "/dag")
_FAILURE_STATUSES = {
    "400": "Bad request: code 10002 workflows.api.error.body, or 9106 missing credentials",
    "401": "Unknown credentials: code 10000 Authentication error",
    "403": "Another account, or a read-only token on a write: code 10000",
    "404": "Unknown workflow (10200), version (10300), instance (10400) or route (7003)",
    "409": "The instance's state forbids the action (10401-10405); x-should-retry: false",
    "413": "The body or a payload in it is over 1 MiB: code 10002",
    "429": "Too many instance creations",
    "500": "Internal error: code 10001",
    "503": "The store is unavailable: code 10001; safe to retry",
}
_STEP_NAME = {
    "type": "string",
    "minLength": 1,
    "maxLength": STEP_SHOWN_NAME_MAX_BYTES,
    "pattern": "^[^\\x00-\\x1f\\x7f]+$",
}
"""A step's full name as shown: one inside another's body is named within it.
Its bound is in UTF-8 bytes, which a schema cannot say: as many characters is the most."""
_FULL_NAME = (
    "a step inside another's body is named within it (`process-2/fetch`, in its second "
    f"attempt `process-2#2/fetch`), in all at most {STEP_SHOWN_NAME_MAX_BYTES} bytes of UTF-8"
)
_INSTANCE_ID = {
    "type": "string",
    "minLength": 1,
    "maxLength": 100,
    "pattern": "^[a-zA-Z0-9_][a-zA-Z0-9-_]*$",
}


def _load_reconstruction() -> dict[str, Any]:
    text = resources.files("stepline.api").joinpath("openapi_workflows.json").read_text("utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


def _operations(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [operation for item in document["paths"].values() for operation in item.values()]


def _tighten_parameters(document: dict[str, Any]) -> None:
    shared = document["components"]["parameters"]
    shared["account_id"]["schema"] = {
        "type": "string",
        "minLength": 1,
        "maxLength": 64,
        "pattern": "^[A-Za-z0-9_-]+$",
    }
    shared["instance_id"]["schema"] = dict(_INSTANCE_ID)
    shared["instance_id"]["description"] = "Letters, digits, '-' and '_', at most 100."
    for operation in _operations(document):
        for parameter in operation.get("parameters", []):
            name = parameter.get("name")
            if name == "page":
                parameter["schema"] = {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}
            elif name == "per_page":
                default = parameter["schema"].get("default", 50)
                parameter["schema"] = {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": 100,
                    "default": default,
                }
            elif name == "name" and parameter.get("in") == "query":
                # The name as the describe view gives it: with its count (``charge-1``).
                parameter["schema"] = {**_STEP_NAME, "maxLength": STEP_LABEL_MAX}
                parameter["description"] = (
                    f"Step name including counter suffix, e.g. `my step-1`; {_FULL_NAME}."
                )
            elif name == "attempt":
                parameter["schema"] = {"type": "integer", "minimum": 1, "maximum": MAX_ATTEMPT}
            elif name == "cursor":
                parameter["schema"] = {"type": "string", "maxLength": 1024}
                parameter["description"] = (
                    "Opaque cursor from result_info.cursor. Sending it with page is a 400."
                )


def _loosen_bodies(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    # "Any JSON value" is the empty schema; "nullable" without a "type" means nothing in 3.0.
    schemas["InstanceCreateRequest"]["properties"]["params"].pop("nullable", None)
    events = document["paths"][
        "/accounts/{account_id}/workflows/{workflow_name}/instances/{instance_id}/events/{event_type}"
    ]["post"]
    events["requestBody"]["content"]["application/json"]["schema"].pop("nullable", None)
    schemas["WorkflowUpdateRequest"]["properties"]["schedules"] = {
        "type": "array",
        "maxItems": 0,
        "description": "Stepline has no cron trigger: only an empty list is accepted.",
    }
    schemas["BatchDeleteRequest"]["properties"]["instances"]["items"] = dict(_INSTANCE_ID)
    batch_terminate = document["paths"][
        "/accounts/{account_id}/workflows/{workflow_name}/instances/batch/terminate"
    ]["post"]
    batch_terminate["requestBody"]["content"]["application/json"]["schema"]["items"] = dict(
        _INSTANCE_ID
    )
    for variant in schemas["StatusChangeRequest"]["oneOf"]:
        restart_from = variant["properties"].get("from")
        if restart_from is not None:
            restart_from["properties"]["name"] = {
                **_STEP_NAME,
                "description": f"The step's name, without its count; {_FULL_NAME}.",
            }


def _declare_failures(document: dict[str, Any]) -> None:
    failure = {"application/json": {"schema": {"$ref": "#/components/schemas/ApiResponseFailure"}}}
    for operation in _operations(document):
        responses = operation["responses"]
        for status, description in _FAILURE_STATUSES.items():
            responses.setdefault(status, {"description": description, "content": failure})


@functools.cache
def _served_document() -> dict[str, Any]:
    document = _load_reconstruction()
    document["paths"] = {
        path: item
        for path, item in document["paths"].items()
        if not path.endswith(_UNSERVED_PATH_SUFFIXES)
    }
    document["info"]["title"] = "Stepline: Cloudflare Workflows v4 API"
    document["info"]["description"] = (
        "The Cloudflare Workflows REST API as served by Stepline. Point the cloudflare SDKs or "
        "wrangler at this server's /client/v4 to use it."
    )
    document["servers"] = [{"url": "/client/v4"}]
    _tighten_parameters(document)
    _loosen_bodies(document)
    _declare_failures(document)
    return document


def openapi_document() -> dict[str, Any]:
    """A fresh copy of the served document (callers may mutate it)."""
    return copy.deepcopy(_served_document())
