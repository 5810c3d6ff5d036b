"""What every handler needs: the client behind the API, and checked path parameters.

The client and the authenticator live on ``app.state`` (set by ``create_app``), so routers are
plain module-level objects that any number of apps can include.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from stepline.client.base import Client
from stepline.errors import InvalidRequest

__all__ = ["ClientDep", "check_version_id", "get_client"]


async def get_client(request: Request) -> Client:
    # async on purpose: FastAPI runs a plain ``def`` dependency in a worker thread, a thread
    # hop on every request for what is one attribute read.
    client: Client = request.app.state.stepline_client
    return client


ClientDep = Annotated[Client, Depends(get_client)]


def check_version_id(version_id: str) -> str:
    """Version ids are uuids the client made; only refuse what could never be one of its ids."""
    if not 1 <= len(version_id) <= 100 or not version_id.isprintable():
        raise InvalidRequest(f"version id {version_id!r} must be 1-100 printable characters")
    return version_id
