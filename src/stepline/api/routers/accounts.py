"""Account discovery for wrangler without ``CLOUDFLARE_ACCOUNT_ID`` and for ``wrangler whoami``.

A credential belongs to exactly one account, so each list has one row. wrangler pages these by
number and keeps going while ``page * per_page < total_count`` (clients.md §5-6), so the lists
carry ``page``, ``per_page`` and ``total_count`` and honour ``page`` like every other list.
"""

from __future__ import annotations

import hashlib

from starlette.requests import Request
from starlette.responses import Response

from stepline.api.auth import Principal, read_credentials
from stepline.api.envelope import list_response, success_response
from stepline.api.pagination import parse_page_query
from stepline.api.routing import Routes
from stepline.client.base import JSON, Page

__all__ = ["routes"]

routes = Routes()


def _opaque_id(*parts: str) -> str:
    """A stable 32-hex id derived from ``parts``, in the shape Cloudflare's ids have."""
    return hashlib.sha256("\x00".join(parts).encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _account(request: Request, principal: Principal) -> dict[str, JSON]:
    return {
        "id": principal.account_id,
        "name": request.app.state.stepline_account_name,
        "type": "standard",
        "settings": {},
    }


def _single_row_page(request: Request, row: dict[str, JSON]) -> Page:
    paging = parse_page_query(request.query_params, default_per_page=20)
    rows = [row] if paging.page == 1 else []
    return Page(items=rows, page=paging.page, per_page=paging.per_page, total_count=1)


@routes.get("/accounts")
async def list_accounts(request: Request, principal: Principal) -> Response:
    return list_response(_single_row_page(request, _account(request, principal)))


@routes.get("/accounts/{account_id}")
async def get_account(request: Request, principal: Principal) -> Response:
    return success_response(_account(request, principal))


@routes.get("/memberships")
async def list_memberships(request: Request, principal: Principal) -> Response:
    account = _account(request, principal)
    membership: dict[str, JSON] = {
        "id": _opaque_id("membership", principal.account_id),
        "status": "accepted",
        "roles": ["Administrator"] if principal.can_write else ["Administrator Read Only"],
        "account": {"id": account["id"], "name": account["name"]},
    }
    return list_response(_single_row_page(request, membership))


@routes.get("/user/tokens/verify")
async def verify_token(request: Request) -> Response:
    credentials = read_credentials(request)
    secret = credentials.token or credentials.key or ""
    return success_response({"id": _opaque_id("token", secret), "status": "active"})


@routes.get("/user")
async def get_user(request: Request, principal: Principal) -> Response:
    # Only the email+key style names a person; a bare token answers with no email, as an
    # account-owned Cloudflare token does.
    email = read_credentials(request).email
    return success_response({"id": _opaque_id("user", principal.account_id), "email": email})
