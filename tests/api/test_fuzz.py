"""Malformed requests of every kind at every endpoint: never a 5xx, always an honest envelope."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stepline.api import ChainAuthenticator, StaticTokenAuthenticator, create_app

from api_asserts import assert_envelope
from conftest import ACCOUNT, OTHER_TOKEN, READ_ONLY_TOKEN, TOKEN, ReadOnlyTokens
from http_fakes import FakeClient

ROUTES = [
    ("GET", ""),
    ("GET", "/{wf}"),
    ("PUT", "/{wf}"),
    ("DELETE", "/{wf}"),
    ("GET", "/{wf}/versions"),
    ("GET", "/{wf}/versions/{id}"),
    ("GET", "/{wf}/instances"),
    ("POST", "/{wf}/instances"),
    ("POST", "/{wf}/instances/batch"),
    ("POST", "/{wf}/instances/batch/terminate"),
    ("POST", "/{wf}/instances/batch/delete"),
    ("GET", "/{wf}/instances/terminate"),
    ("PUT", "/{wf}/instances/terminate"),
    ("GET", "/{wf}/instances/{id}"),
    ("DELETE", "/{wf}/instances/{id}"),
    ("PATCH", "/{wf}/instances/{id}/status"),
    ("GET", "/{wf}/instances/{id}/step"),
    ("POST", "/{wf}/instances/{id}/events/{event}"),
]
QUERY_KEYS = [
    "page",
    "per_page",
    "search",
    "cursor",
    "direction",
    "status",
    "date_start",
    "date_end",
    "simple",
    "order",
    "name",
    "type",
    "attempt",
]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
# Objects built from the keys the endpoints read, so the parsers' deeper branches are reached.
known_keys = st.sampled_from(
    [
        "instance_id",
        "params",
        "instance_retention",
        "success_retention",
        "error_retention",
        "location_hint",
        "status",
        "rollback",
        "from",
        "name",
        "count",
        "type",
        "class_name",
        "script_name",
        "limits",
        "steps",
        "default_retention",
        "concurrency",
        "limit",
        "schedules",
        "instances",
    ]
)
shaped_values = st.recursive(
    json_values,
    lambda children: (
        st.dictionaries(known_keys, children, max_size=5) | st.lists(children, max_size=3)
    ),
    max_leaves=10,
)
json_bodies = (json_values | shaped_values).map(lambda value: json.dumps(value).encode())
raw_bodies = st.one_of(
    json_bodies,
    st.binary(max_size=64),
    st.sampled_from([b"", b"{", b"[1,", b"NaN", b'{"a": Infinity}', b'"\\udc00"', b"[" * 3000]),
)
path_segments = st.one_of(
    st.sampled_from(["my-workflow", "inst-1", "latest", "batch", "terminate", "a.b", "-x", "_"]),
    st.text(
        alphabet=st.characters(codec="utf-8", exclude_characters="/?#"), min_size=1, max_size=12
    ),
    st.text(alphabet="abc-_09", min_size=60, max_size=120),
)
query_values = st.one_of(
    st.sampled_from(["1", "2.0", "0", "-1", "1e9", "nan", "true", "asc", "queued", "step", ""]),
    st.text(max_size=12),
)
credentials = st.sampled_from(
    [
        {"Authorization": f"Bearer {TOKEN}"},
        {"Authorization": f"Bearer {TOKEN}"},
        {"Authorization": f"Bearer {TOKEN}"},
        {"X-Auth-Email": "me@example.com", "X-Auth-Key": TOKEN},
        {"Authorization": f"Bearer {READ_ONLY_TOKEN}"},
        {"Authorization": f"Bearer {OTHER_TOKEN}"},
        {"Authorization": "Bearer nope"},
        {"Authorization": "Basic abc"},
        {},
    ]
)


def make_app() -> Any:
    fake = FakeClient()
    fake.seed_workflow(ACCOUNT, "my-workflow")
    fake.seed_instance(ACCOUNT, "my-workflow", "inst-1", status="running")
    authenticator = ChainAuthenticator(StaticTokenAuthenticator(ACCOUNT, TOKEN), ReadOnlyTokens())
    return create_app(fake, authenticator)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    route=st.sampled_from(ROUTES),
    method_override=st.none() | st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE"]),
    workflow=path_segments,
    instance=path_segments,
    event=path_segments,
    query=st.dictionaries(st.sampled_from(QUERY_KEYS), query_values, max_size=4),
    body=st.none() | raw_bodies,
    headers=credentials,
    content_type=st.sampled_from([None, "application/json", "text/plain"]),
    trailing_slash=st.booleans(),
)
async def test_no_request_makes_the_server_fail(
    route: tuple[str, str],
    method_override: str | None,
    workflow: str,
    instance: str,
    event: str,
    query: dict[str, str],
    body: bytes | None,
    headers: dict[str, str],
    content_type: str | None,
    trailing_slash: bool,
) -> None:
    method, template = route
    path = f"/client/v4/accounts/{ACCOUNT}/workflows" + template.format(
        wf=quote(workflow, safe=""), id=quote(instance, safe=""), event=quote(event, safe="")
    )
    request_headers = dict(headers)
    if content_type is not None:
        request_headers["Content-Type"] = content_type
    transport = httpx.ASGITransport(app=make_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://stepline") as client:
        response = await client.request(
            method_override or method,
            path + ("/" if trailing_slash else ""),
            params=query,
            content=body,
            headers=request_headers,
        )
    assert response.status_code < 500, (response.status_code, response.text)
    assert_envelope(response)
