"""API tokens: made once, stored only as a SHA-256 digest, checked in constant time.

A token carries an account and a permission: write ("Workers Scripts Write") or read-only
("Workers Scripts Read").
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from stepline.api.auth import Principal
from stepline.store.port import Store
from stepline.store.records import TokenRecord

__all__ = [
    "StoreTokenAuthenticator",
    "TokenGrant",
    "hash_token",
    "issue_token",
    "verify_token",
]

TOKEN_PREFIX = "stpl_"


@dataclass(frozen=True, slots=True)
class TokenGrant:
    """Who a token speaks for."""

    account_id: str
    can_write: bool


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def issue_token(store: Store, account_id: str, *, read_only: bool, name: str = "") -> str:
    """Make a token for ``account_id``; the caller must show it now, it is never shown again."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    await store.save_token(
        TokenRecord(
            token_hash=hash_token(token),
            account_id=account_id,
            can_write=not read_only,
            name=name or ("read-only" if read_only else "read-write"),
            created_on=int(time.time() * 1000),
        )
    )
    return token


async def verify_token(store: Store, token: str) -> TokenGrant | None:
    digest = hash_token(token)
    found = await store.find_token(digest)
    if found is None or not hmac.compare_digest(found.token_hash, digest):
        return None
    return TokenGrant(found.account_id, found.can_write)


class StoreTokenAuthenticator:
    """Tokens made with ``stepline tokens create``, looked up by digest in the store."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def authenticate(
        self, token: str | None, email: str | None, key: str | None
    ) -> Principal | None:
        # The Bearer token first, then the key of an email+key pair, as the static token is
        # checked: the TS SDK sends every credential it has, and one may be for elsewhere.
        for secret in (token, key if email else None):
            if not secret:
                continue
            grant = await verify_token(self._store, secret)
            if grant is not None:
                return Principal(account_id=grant.account_id, can_write=grant.can_write)
        return None
