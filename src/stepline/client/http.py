"""The HTTP transport of the client: the :class:`~stepline.client.base.Client` contract spoken
over Stepline's (and Cloudflare's) v4 REST API.

>>> async with HttpClient("http://127.0.0.1:8787/client/v4", token="s3cret") as client:
...     page = await client.list_instances("acc", "checkout", status="errored")

Every method returns the envelope's ``result``; lists return a :class:`Page` filled from
``result_info``. A ``success: false`` envelope becomes the :mod:`stepline.errors` class with the
same code and HTTP status; a code this version does not know becomes an
:class:`UnrecognizedApiError` that keeps the server's code, message and status. A server that
cannot be reached raises :class:`ServerUnreachable`, and an answer that is not a JSON envelope
raises :class:`MalformedResponse`.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote, urlsplit

import httpx

from stepline.client.base import JSON, Client, Page, RestartFrom, StatusAction
from stepline.client.http_errors import (
    MalformedResponse,
    ServerUnreachable,
    UnrecognizedApiError,
    api_error_from_response,
    as_int,
)
from stepline.errors import RouteNotFound

__all__ = [
    "DEFAULT_API_URL",
    "HttpClient",
    "MalformedResponse",
    "ServerUnreachable",
    "UnrecognizedApiError",
    "api_error_from_response",
    "shown_url",
]

API_PREFIX = "/client/v4"
DEFAULT_API_URL = f"http://127.0.0.1:8787{API_PREFIX}"


def shown_url(url: str) -> str:
    """``url`` as it may be shown in a message: a password in it (``http://user:pw@host``,
    which httpx sends as Basic auth) replaced by ``***``. The user and password run to the
    last ``@``, as a password may hold an ``@``, ``/``, ``?`` or ``#`` of its own; a query
    value with an ``@`` after a ``:`` is hidden too, which costs nothing but the view."""
    scheme, sep, rest = url.partition("://")
    if not sep or any(mark in scheme for mark in "/?#@"):
        scheme, sep, rest = "", "", url
    userinfo, at, after = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.partition(":")[0]
    return f"{scheme}{sep}{user}:***@{after}"


def _user_agent() -> str:
    try:
        return f"stepline/{version('stepline')}"
    except PackageNotFoundError:
        return "stepline"


# --- the client ----------------------------------------------------------------------------


def _segment(value: str) -> str:
    # Cron-created instance ids hold spaces, '*' and '/'; encode every path parameter in full
    # as the SDKs do (clients.md Q5), so such ids still address one resource.
    return quote(value, safe="")


def _drop_none(values: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def _page_from(envelope: Mapping[str, Any], *, requested_page: int | None, per_page: int) -> Page:
    result = envelope.get("result")
    items = [item for item in result if isinstance(item, dict)] if isinstance(result, list) else []
    info = envelope.get("result_info")
    info = dict(info) if isinstance(info, Mapping) else {}
    cursor = info.pop("cursor", None)
    page = as_int(info.pop("page", None))
    reported_per_page = as_int(info.pop("per_page", None))
    total_count = as_int(info.pop("total_count", None))
    return Page(
        items=items,
        page=page if page is not None else requested_page,
        per_page=reported_per_page if reported_per_page is not None else per_page,
        total_count=total_count if total_count is not None else len(items),
        cursor=cursor if isinstance(cursor, str) and cursor else None,
        extra=info,
    )


_NO_BODY = object()


def _known_cause(exc: BaseException) -> str | None:
    """The words for two common mistakes, which httpx's own hide: a connection refused, most
    often no server started on that port ("All connection attempts failed", the refusal only
    among its causes), and https:// to a server of plain HTTP, as Stepline's is
    ("[SSL: WRONG_VERSION_NUMBER] wrong version number")."""
    cause: BaseException | None = exc
    seen: set[int] = set()
    while cause is not None and id(cause) not in seen:  # a chain may loop
        seen.add(id(cause))
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused (is a server running there?)"
        if isinstance(cause, ssl.SSLError) and cause.reason == "WRONG_VERSION_NUMBER":
            return "it does not answer TLS (a server of plain HTTP? then use http://)"
        cause = cause.__cause__ or cause.__context__
    return None


class HttpClient:
    """The Client contract over HTTP. Use it as an async context manager, or call ``aclose``.

    ``api_url`` includes the API prefix (``http://host:8787/client/v4``); ``transport`` lets
    tests and embedders hand in any httpx transport (an ASGI app, a mock).
    """

    def __init__(
        self,
        api_url: str = DEFAULT_API_URL,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        request_headers = {"User-Agent": _user_agent(), "Accept": "application/json"}
        if token:
            request_headers["Authorization"] = f"Bearer {token}"
        request_headers.update(headers or {})
        self._http = httpx.AsyncClient(
            base_url=self.api_url,
            headers=request_headers,
            timeout=timeout,
            transport=transport,
        )

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- transport ---------------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: object = _NO_BODY,
    ) -> dict[str, Any]:
        """Send one request and return the whole envelope of a successful answer."""
        content: bytes | None = None
        headers: dict[str, str] = {}
        if body is not _NO_BODY:
            content = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
            headers["Content-Type"] = "application/json"
        try:
            response = await self._http.request(
                method, path, params=_drop_none(params or {}), content=content, headers=headers
            )
        except httpx.TimeoutException as exc:
            raise ServerUnreachable(
                f"{shown_url(self.api_url)} did not answer in time ({exc!r})",
                delivered_maybe=not isinstance(exc, httpx.ConnectTimeout),
            ) from exc
        except httpx.TransportError as exc:
            reason = _known_cause(exc) or str(exc) or type(exc).__name__
            raise ServerUnreachable(
                f"cannot reach {shown_url(self.api_url)}: {reason}",
                delivered_maybe=not isinstance(exc, httpx.ConnectError),
            ) from exc
        try:
            return self._envelope_of(response)
        except RouteNotFound as exc:
            # The usual cause is a base URL without the API prefix; say so where it shows.
            if urlsplit(self.api_url).path.endswith(API_PREFIX):
                raise
            shown = shown_url(self.api_url)
            hint = f"the API is served under {API_PREFIX}: did you mean {shown}{API_PREFIX}?"
            detail = f"{exc.detail}; {hint}" if exc.detail else hint
            raise RouteNotFound(detail) from None

    @staticmethod
    def _envelope_of(response: httpx.Response) -> dict[str, Any]:
        # wrangler treats an empty 204/205 as success with an empty result; so do we.
        empty = response.status_code in (204, 205) or not response.content.strip()
        if empty and response.is_success:
            return {"success": True, "result": {}}
        request_line = (
            f"{response.request.method} {response.request.url.path} -> "
            f"{response.status_code} {response.reason_phrase}"
        )
        try:
            envelope = response.json()
        except ValueError:
            envelope = None
        if not isinstance(envelope, dict):
            excerpt = response.text[:100]
            raise MalformedResponse(f"{request_line}: {excerpt!r}")
        success = envelope.get("success")
        if success is None:
            success = response.is_success
        if success is not True:
            raise api_error_from_response(response.status_code, envelope)
        return envelope

    async def _result(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: object = _NO_BODY,
    ) -> Any:
        envelope = await self._call(method, path, params=params, body=body)
        return envelope.get("result")

    async def _object(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: object = _NO_BODY,
    ) -> dict[str, JSON]:
        result = await self._result(method, path, params=params, body=body)
        return result if isinstance(result, dict) else {}

    @staticmethod
    def _workflow_path(account_id: str, name: str, *rest: str) -> str:
        segments = ["accounts", account_id, "workflows", name, *rest]
        return "/" + "/".join(_segment(s) for s in segments)

    def _instance_path(self, account_id: str, name: str, instance_id: str, *rest: str) -> str:
        return self._workflow_path(account_id, name, "instances", instance_id, *rest)

    # -- workflows ---------------------------------------------------------------------------

    async def list_workflows(
        self, account_id: str, *, page: int = 1, per_page: int = 10, search: str | None = None
    ) -> Page:
        path = f"/accounts/{_segment(account_id)}/workflows"
        query = {"page": page, "per_page": per_page, "search": search}
        envelope = await self._call("GET", path, params=query)
        return _page_from(envelope, requested_page=page, per_page=per_page)

    async def get_workflow(self, account_id: str, name: str) -> dict[str, JSON]:
        return await self._object("GET", self._workflow_path(account_id, name))

    async def put_workflow(
        self,
        account_id: str,
        name: str,
        *,
        class_name: str,
        script_name: str,
        limits: dict[str, JSON] | None = None,
        default_retention: dict[str, JSON] | None = None,
        concurrency: dict[str, JSON] | None = None,
        schedules: list[str] | None = None,
    ) -> dict[str, JSON]:
        body = _drop_none(
            {
                "class_name": class_name,
                "script_name": script_name,
                "limits": limits,
                "default_retention": default_retention,
                "concurrency": concurrency,
                "schedules": None if schedules is None else [{"cron": c} for c in schedules],
            }
        )
        return await self._object("PUT", self._workflow_path(account_id, name), body=body)

    async def delete_workflow(self, account_id: str, name: str) -> dict[str, JSON]:
        return await self._object("DELETE", self._workflow_path(account_id, name))

    async def list_versions(
        self, account_id: str, name: str, *, page: int = 1, per_page: int = 50
    ) -> Page:
        path = self._workflow_path(account_id, name, "versions")
        envelope = await self._call("GET", path, params={"page": page, "per_page": per_page})
        return _page_from(envelope, requested_page=page, per_page=per_page)

    async def get_version(self, account_id: str, name: str, version_id: str) -> dict[str, JSON]:
        path = self._workflow_path(account_id, name, "versions", version_id)
        return await self._object("GET", path)

    # -- instances ---------------------------------------------------------------------------

    async def list_instances(
        self,
        account_id: str,
        name: str,
        *,
        page: int | None = None,
        per_page: int = 50,
        cursor: str | None = None,
        direction: Literal["asc", "desc"] = "desc",
        status: str | None = None,
        date_start: str | None = None,
        date_end: str | None = None,
    ) -> Page:
        query = {
            "page": page,
            "per_page": per_page,
            "cursor": cursor,
            # Newest first is the server's default; say so only when it matters.
            "direction": direction if cursor is not None or direction != "desc" else None,
            "status": status,
            "date_start": date_start,
            "date_end": date_end,
        }
        path = self._workflow_path(account_id, name, "instances")
        envelope = await self._call("GET", path, params=query)
        return _page_from(envelope, requested_page=page, per_page=per_page)

    async def create_instance(
        self,
        account_id: str,
        name: str,
        *,
        instance_id: str | None = None,
        params: JSON = None,
        retention: dict[str, JSON] | None = None,
        trigger_source: str = "api",
    ) -> dict[str, JSON]:
        # trigger_source is not part of the REST body: the server records "api" for every
        # instance created over HTTP, as Cloudflare does.
        body = _drop_none(
            {"instance_id": instance_id, "params": params, "instance_retention": retention}
        )
        path = self._workflow_path(account_id, name, "instances")
        return await self._object("POST", path, body=body)

    async def create_batch(
        self, account_id: str, name: str, items: list[dict[str, JSON]]
    ) -> list[dict[str, JSON]]:
        """Create up to 100 instances; ids that exist already are skipped and left out."""
        path = self._workflow_path(account_id, name, "instances", "batch")
        result = await self._result("POST", path, body=list(items))
        return (
            [item for item in result if isinstance(item, dict)] if isinstance(result, list) else []
        )

    async def describe_instance(
        self,
        account_id: str,
        name: str,
        instance_id: str,
        *,
        simple: bool = False,
        order: Literal["asc", "desc"] = "asc",
    ) -> dict[str, JSON]:
        query = {"simple": "true" if simple else None, "order": order if order != "asc" else None}
        path = self._instance_path(account_id, name, instance_id)
        return await self._object("GET", path, params=query)

    async def change_status(
        self,
        account_id: str,
        name: str,
        instance_id: str,
        action: StatusAction,
        *,
        restart_from: RestartFrom | None = None,
        rollback: bool = False,
    ) -> dict[str, JSON]:
        """Returns ``{"status": <status after the action>, "timestamp": iso}``."""
        body: dict[str, JSON] = {"status": action}
        if rollback:
            body["rollback"] = True
        if restart_from is not None:
            body["from"] = {
                "name": restart_from.name,
                "count": restart_from.count,
                "type": restart_from.type,
            }
        path = self._instance_path(account_id, name, instance_id, "status")
        return await self._object("PATCH", path, body=body)

    async def send_event(
        self, account_id: str, name: str, instance_id: str, event_type: str, payload: JSON
    ) -> dict[str, JSON]:
        """Returns ``{"instanceId": id, "timestamp": iso}``."""
        path = self._instance_path(account_id, name, instance_id, "events", event_type)
        return await self._object("POST", path, body=payload)

    async def delete_instance(
        self, account_id: str, name: str, instance_id: str
    ) -> dict[str, JSON]:
        return await self._object("DELETE", self._instance_path(account_id, name, instance_id))

    async def delete_batch(
        self, account_id: str, name: str, instance_ids: list[str]
    ) -> dict[str, JSON]:
        """Returns ``{"deleted": [{"id"}], "errors": [{"id", "code", "message"}]}``."""
        path = self._workflow_path(account_id, name, "instances", "batch", "delete")
        return await self._object("POST", path, body={"instances": list(instance_ids)})

    async def terminate_batch(
        self, account_id: str, name: str, instance_ids: list[str]
    ) -> dict[str, JSON]:
        """Returns ``{"instancesTerminated": n, "status": "ok"}``."""
        path = self._workflow_path(account_id, name, "instances", "batch", "terminate")
        return await self._object("POST", path, body=list(instance_ids))

    async def terminate_all(
        self, account_id: str, name: str, *, status: str | None = None
    ) -> dict[str, JSON]:
        """Start terminating every matching non-finished instance: ``{"status": "ok"}``."""
        path = self._workflow_path(account_id, name, "instances", "terminate")
        return await self._object("PUT", path, params={"status": status})

    async def terminate_all_status(self, account_id: str, name: str) -> dict[str, JSON]:
        """``{"status": "running" | "not_running"}``."""
        path = self._workflow_path(account_id, name, "instances", "terminate")
        return await self._object("GET", path)

    async def step_output(
        self,
        account_id: str,
        name: str,
        instance_id: str,
        *,
        step_name: str,
        step_type: Literal["step", "waitForEvent"],
        attempt: int | None = None,
    ) -> dict[str, JSON]:
        query = {"name": step_name, "type": step_type, "attempt": attempt}
        path = self._instance_path(account_id, name, instance_id, "step")
        return await self._object("GET", path, params=query)


if TYPE_CHECKING:
    # mypy proves here that HttpClient keeps to the Client protocol, signature by signature.
    _implements_client: type[Client] = HttpClient
