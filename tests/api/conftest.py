"""Fixtures for the HTTP layer: an app over the in-memory client, and httpx clients for it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from stepline.api import ChainAuthenticator, Principal, StaticTokenAuthenticator, create_app

from http_fakes import FakeClient

ACCOUNT = "0123456789abcdef0123456789abcdef"
OTHER_ACCOUNT = "fedcba9876543210fedcba9876543210"
TOKEN = "test-token-123"
READ_ONLY_TOKEN = "read-only-token"
OTHER_TOKEN = "other-account-token"
BASE = f"/client/v4/accounts/{ACCOUNT}/workflows"


class ReadOnlyTokens:
    """A second authenticator in the chain, as the database tokens will be."""

    async def authenticate(
        self, token: str | None, email: str | None, key: str | None
    ) -> Principal | None:
        if token == READ_ONLY_TOKEN:
            return Principal(account_id=ACCOUNT, can_write=False)
        if token == OTHER_TOKEN:
            return Principal(account_id=OTHER_ACCOUNT, can_write=True)
        return None


@pytest.fixture
def fake() -> FakeClient:
    client = FakeClient()
    client.seed_workflow(ACCOUNT, "my-workflow")
    client.seed_workflow(OTHER_ACCOUNT, "their-workflow")
    return client


@pytest.fixture
def app(fake: FakeClient) -> object:
    authenticator = ChainAuthenticator(StaticTokenAuthenticator(ACCOUNT, TOKEN), ReadOnlyTokens())
    return create_app(fake, authenticator, account_name="Test Account")


@pytest.fixture
async def anonymous(app: object) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://stepline") as client:
        yield client


@pytest.fixture
async def http(app: object) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://stepline",
        headers={"Authorization": f"Bearer {TOKEN}"},
    ) as client:
        yield client
