"""Page and cursor parameters of the three lists, per clients.md §5.

- ``page`` is honoured everywhere; past the end the client answers ``result: []`` with 200,
  which is what stops the SDKs' iteration (they never read ``result_info``).
- ``cursor`` (instances only) walks from a previous page; the client puts
  ``result_info.cursor`` on every page that has a successor, which is what wrangler follows.
- ``cursor`` together with ``page`` is refused with 400. The SDKs send exactly that when an
  iteration starts from a cursor; preferring the cursor would return the same page forever,
  and preferring the page would silently drop the caller's starting point. The spec calls the
  two mutually exclusive, so the caller is told.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from starlette.datastructures import QueryParams

from stepline.api.query import MAX_PAGE, QueryReader
from stepline.errors import InvalidRequest
from stepline.store.records import LISTABLE_STATUSES

__all__ = [
    "MAX_PER_PAGE",
    "InstanceListQuery",
    "PageQuery",
    "parse_instance_list_query",
    "parse_page_query",
]

MAX_PER_PAGE = 100


@dataclass(frozen=True, slots=True)
class PageQuery:
    page: int
    per_page: int


def parse_page_query(params: QueryParams, *, default_per_page: int) -> PageQuery:
    query = QueryReader(params)
    page = query.integer("page", minimum=1, maximum=MAX_PAGE)
    per_page = query.integer("per_page", minimum=1, maximum=MAX_PER_PAGE)
    return PageQuery(page=page or 1, per_page=per_page or default_per_page)


@dataclass(frozen=True, slots=True)
class InstanceListQuery:
    page: int | None
    per_page: int
    cursor: str | None
    direction: Literal["asc", "desc"]
    status: str | None
    date_start: str | None
    date_end: str | None


def parse_instance_list_query(params: QueryParams) -> InstanceListQuery:
    query = QueryReader(params)
    page = query.integer("page", minimum=1, maximum=MAX_PAGE)
    cursor = query.text("cursor")
    if page is not None and cursor is not None:
        raise InvalidRequest(
            "query parameters cursor and page are mutually exclusive: page through a cursor by "
            "passing result_info.cursor back, without page"
        )
    direction: Literal["asc", "desc"] = (
        "asc" if query.choice("direction", ("asc", "desc")) == "asc" else "desc"
    )
    return InstanceListQuery(
        page=page,
        per_page=query.integer("per_page", minimum=1, maximum=MAX_PER_PAGE) or 50,
        cursor=cursor,
        direction=direction,
        status=query.choice("status", LISTABLE_STATUSES),
        # An inverted range is not an error: it matches nothing.
        date_start=query.timestamp("date_start"),
        date_end=query.timestamp("date_end"),
    )
