"""Credentials: the two Cloudflare styles, the failure codes, and account isolation."""

from __future__ import annotations

from typing import cast

import httpx
import pytest

from stepline.api import ChainAuthenticator, Principal, StaticTokenAuthenticator
from stepline.errors import ConfigError
from stepline.store.port import Store
from stepline.store.records import TokenRecord
from stepline.tokens import StoreTokenAuthenticator, hash_token

from api_asserts import assert_failure
from conftest import ACCOUNT, BASE, OTHER_ACCOUNT, OTHER_TOKEN, READ_ONLY_TOKEN, TOKEN
from http_fakes import FakeClient


async def test_missing_credentials_is_400_9106(anonymous: httpx.AsyncClient) -> None:
    for headers in ({}, {"X-Auth-Email": "a@b.c"}, {"X-Auth-Key": TOKEN}, {"Authorization": ""}):
        response = await anonymous.get(BASE, headers=headers)
        assert_failure(
            response, 400, 9106, "Missing X-Auth-Key, X-Auth-Email or Authorization headers"
        )


async def test_unknown_or_garbled_credentials_are_401(anonymous: httpx.AsyncClient) -> None:
    for headers in (
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": "Bearer"},
        {"X-Auth-Email": "a@b.c", "X-Auth-Key": "wrong"},
    ):
        response = await anonymous.get(BASE, headers=headers)
        assert_failure(response, 401, 10000, "Authentication error")


async def test_bearer_token_and_email_key_both_work(anonymous: httpx.AsyncClient) -> None:
    bearer = await anonymous.get(BASE, headers={"Authorization": f"Bearer {TOKEN}"})
    email_key = await anonymous.get(
        BASE, headers={"X-Auth-Email": "me@example.com", "X-Auth-Key": TOKEN}
    )
    assert bearer.status_code == email_key.status_code == 200


async def test_ts_sdk_sending_every_credential_is_accepted(anonymous: httpx.AsyncClient) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}", "X-Auth-Email": "a@b.c", "X-Auth-Key": "x"}
    assert (await anonymous.get(BASE, headers=headers)).status_code == 200


async def test_another_accounts_data_is_403_and_never_reaches_the_client(
    anonymous: httpx.AsyncClient, fake: FakeClient
) -> None:
    other_base = f"/client/v4/accounts/{OTHER_ACCOUNT}/workflows"
    own = {"Authorization": f"Bearer {TOKEN}"}
    for path in (other_base, f"{other_base}/their-workflow", f"{other_base}/missing"):
        response = await anonymous.get(path, headers=own)
        assert_failure(response, 403, 10000, "Authentication error")
    # The same answer for an account that does not exist at all: nothing can be probed.
    response = await anonymous.get("/client/v4/accounts/nobody/workflows", headers=own)
    assert_failure(response, 403, 10000, "Authentication error")
    assert fake.calls == []


async def test_a_token_of_another_account_cannot_see_this_one(
    anonymous: httpx.AsyncClient,
) -> None:
    response = await anonymous.get(BASE, headers={"Authorization": f"Bearer {OTHER_TOKEN}"})
    assert_failure(response, 403, 10000, "Authentication error")


async def test_read_only_token_reads_but_never_writes(
    anonymous: httpx.AsyncClient, fake: FakeClient
) -> None:
    headers = {"Authorization": f"Bearer {READ_ONLY_TOKEN}"}
    assert (await anonymous.get(BASE, headers=headers)).status_code == 200
    assert (await anonymous.get(f"{BASE}/my-workflow", headers=headers)).status_code == 200
    calls_before = len(fake.calls)
    writes = [
        ("PUT", f"{BASE}/my-workflow"),
        ("DELETE", f"{BASE}/my-workflow"),
        ("POST", f"{BASE}/my-workflow/instances"),
        ("PATCH", f"{BASE}/my-workflow/instances/x/status"),
        ("POST", f"{BASE}/my-workflow/instances/x/events/t"),
        ("PUT", f"{BASE}/my-workflow/instances/terminate"),
    ]
    for method, path in writes:
        response = await anonymous.request(method, path, headers=headers, json={})
        assert_failure(response, 403, 10000, "Authentication error")
    assert len(fake.calls) == calls_before


async def test_openapi_needs_no_credentials(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/client/v4/openapi.json")
    assert response.status_code == 200
    assert response.json()["openapi"].startswith("3.")


async def test_discovery_endpoints_describe_the_callers_account(http: httpx.AsyncClient) -> None:
    accounts = (await http.get("/client/v4/accounts", params={"page": 1})).json()
    assert accounts["result"] == [
        {"id": ACCOUNT, "name": "Test Account", "type": "standard", "settings": {}}
    ]
    assert accounts["result_info"]["total_count"] == 1
    memberships = (await http.get("/client/v4/memberships", params={"page": 1})).json()
    [membership] = memberships["result"]
    assert membership["status"] == "accepted"
    assert membership["account"] == {"id": ACCOUNT, "name": "Test Account"}
    verify = (await http.get("/client/v4/user/tokens/verify")).json()
    assert verify["result"]["status"] == "active"
    user = (await http.get("/client/v4/user")).json()
    assert user["success"] is True and user["result"]["email"] is None
    assert (await http.get(f"/client/v4/accounts/{ACCOUNT}")).json()["result"]["id"] == ACCOUNT
    other = await http.get(f"/client/v4/accounts/{OTHER_ACCOUNT}")
    assert_failure(other, 403, 10000, "Authentication error")


async def test_discovery_needs_credentials(anonymous: httpx.AsyncClient) -> None:
    for path in ("/client/v4/accounts", "/client/v4/memberships", "/client/v4/user"):
        assert (await anonymous.get(path)).status_code == 400


async def test_static_authenticator_matches_only_its_secret() -> None:
    auth = StaticTokenAuthenticator(ACCOUNT, TOKEN)
    expected = Principal(account_id=ACCOUNT, can_write=True)
    assert await auth.authenticate(TOKEN, None, None) == expected
    assert await auth.authenticate(None, "anyone@example.com", TOKEN) == expected
    assert await auth.authenticate(None, None, TOKEN) is None
    assert await auth.authenticate(TOKEN + "x", None, None) is None
    assert await auth.authenticate("", None, None) is None


async def test_chain_asks_each_authenticator_in_turn() -> None:
    first = StaticTokenAuthenticator("first", "one")
    second = StaticTokenAuthenticator("second", "two", can_write=False)
    chain = ChainAuthenticator(first, second)
    assert await chain.authenticate("two", None, None) == Principal("second", can_write=False)
    assert await chain.authenticate("three", None, None) is None
    assert await ChainAuthenticator().authenticate("one", None, None) is None


def test_static_authenticator_from_env() -> None:
    assert StaticTokenAuthenticator.from_env({}) is None
    auth = StaticTokenAuthenticator.from_env(
        {"STEPLINE_ACCOUNT_ID": ACCOUNT, "STEPLINE_API_TOKEN": TOKEN}
    )
    assert isinstance(auth, StaticTokenAuthenticator)
    with pytest.raises(ConfigError):
        StaticTokenAuthenticator.from_env({"STEPLINE_ACCOUNT_ID": ACCOUNT})
    with pytest.raises(ConfigError):
        StaticTokenAuthenticator.from_env(
            {"STEPLINE_ACCOUNT_ID": "not/valid", "STEPLINE_API_TOKEN": TOKEN}
        )


class _TokenRows:
    """The one store call a :class:`StoreTokenAuthenticator` makes, over saved rows."""

    def __init__(self, *tokens: TokenRecord) -> None:
        self._rows = {t.token_hash: t for t in tokens}

    async def find_token(self, token_hash: str) -> TokenRecord | None:
        return self._rows.get(token_hash)


async def test_stored_token_is_found_in_either_credential_the_ts_sdk_sends() -> None:
    """The TS SDK sends every credential it has (clients.md §1): a Bearer that is no Stepline
    token beside an X-Auth-Key that is one is accepted, as the static token is."""
    stored = "stpl_stored-secret"
    rows = _TokenRows(TokenRecord(hash_token(stored), ACCOUNT, True, "ci", 0))
    auth = StoreTokenAuthenticator(cast(Store, rows))
    expected = Principal(account_id=ACCOUNT, can_write=True)
    assert await auth.authenticate(stored, "a@b.c", "not-a-token") == expected
    assert await auth.authenticate("not-a-token", "a@b.c", stored) == expected
    assert await auth.authenticate(None, "a@b.c", stored) == expected
    assert await auth.authenticate("not-a-token", None, stored) is None  # a key needs an email
    assert await auth.authenticate("not-a-token", "a@b.c", "nor-this") is None
