"""Who is calling: Cloudflare's two credential styles, checked by a pluggable authenticator.

A request carries either ``Authorization: Bearer <token>`` or ``X-Auth-Email`` + ``X-Auth-Key``
(spec §1.1). Some clients send both (the TS SDK sends every credential it has), so all three
values go to the :class:`Authenticator`, which decides. The outcomes, as Cloudflare answers them:

- no usable credentials: 400 9106 (``MissingCredentials``);
- credentials nobody recognises: 401 10000 (``AuthenticationFailed``);
- a valid credential for another account, or a read-only one on a write: 403 10000
  (``PermissionDenied``). The check runs before the client is called, so nothing about the
  other account, not even whether a workflow exists there, leaks.

Persistent tokens (hashed in the database) plug in as another :class:`Authenticator` behind a
:class:`ChainAuthenticator`; the API layer itself never stores anything.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from fastapi import Request

from stepline.errors import (
    AuthenticationFailed,
    ConfigError,
    MissingCredentials,
    PermissionDenied,
)

__all__ = [
    "Authenticator",
    "ChainAuthenticator",
    "Credentials",
    "Principal",
    "StaticTokenAuthenticator",
    "authenticated_principal",
    "authorized_account",
    "read_credentials",
]

WRITE_METHODS = frozenset({"PUT", "POST", "PATCH", "DELETE"})
# wrangler 4.164 refuses account ids outside this alphabet (clients.md §6).
_ACCOUNT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller."""

    account_id: str
    """The one account this credential may act on."""
    can_write: bool
    """False for read-only tokens: every PUT, POST, PATCH and DELETE is refused with 403."""


class Authenticator(Protocol):
    """Maps the credentials of a request to a :class:`Principal`, or ``None`` if unknown."""

    async def authenticate(
        self, token: str | None, email: str | None, key: str | None
    ) -> Principal | None: ...


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


class StaticTokenAuthenticator:
    """One account and one secret (``STEPLINE_ACCOUNT_ID`` and ``STEPLINE_API_TOKEN``).

    The secret is accepted as a Bearer token, and as ``X-Auth-Key`` with any ``X-Auth-Email``
    (so wrangler and the SDKs work in either credential mode). Only its SHA-256 digest is kept,
    and digests are compared with :func:`hmac.compare_digest`, so timing reveals nothing.

    >>> auth = StaticTokenAuthenticator("acc1", "s3cret")
    """

    def __init__(self, account_id: str, token: str, *, can_write: bool = True) -> None:
        if not _ACCOUNT_ID.fullmatch(account_id):
            raise ConfigError(f"account id {account_id!r} must be 1-64 letters, digits, '-' or '_'")
        if not token:
            raise ConfigError("the API token must not be empty")
        self._principal = Principal(account_id=account_id, can_write=can_write)
        self._token_digest = _digest(token)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> StaticTokenAuthenticator | None:
        """The authenticator for ``STEPLINE_ACCOUNT_ID`` + ``STEPLINE_API_TOKEN``, if set."""
        env = os.environ if environ is None else environ
        account_id = env.get("STEPLINE_ACCOUNT_ID", "")
        token = env.get("STEPLINE_API_TOKEN", "")
        if not account_id and not token:
            return None
        if not account_id or not token:
            raise ConfigError("set both STEPLINE_ACCOUNT_ID and STEPLINE_API_TOKEN, or neither")
        return cls(account_id, token)

    def _matches(self, secret: str | None) -> bool:
        return secret is not None and hmac.compare_digest(_digest(secret), self._token_digest)

    async def authenticate(
        self, token: str | None, email: str | None, key: str | None
    ) -> Principal | None:
        if self._matches(token) or (email and self._matches(key)):
            return self._principal
        return None


class ChainAuthenticator:
    """Asks each authenticator in turn; the first that knows the credentials wins."""

    def __init__(self, *authenticators: Authenticator) -> None:
        self._authenticators = authenticators

    async def authenticate(
        self, token: str | None, email: str | None, key: str | None
    ) -> Principal | None:
        for authenticator in self._authenticators:
            principal = await authenticator.authenticate(token, email, key)
            if principal is not None:
                return principal
        return None


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a request presented, empty headers read as absent."""

    token: str | None
    email: str | None
    key: str | None


def read_credentials(request: Request) -> Credentials:
    """Extract the credentials, or raise 9106 when there are none and 401 when they are garbled."""
    authorization = request.headers.get("authorization", "").strip()
    email = request.headers.get("x-auth-email", "").strip() or None
    key = request.headers.get("x-auth-key", "").strip() or None
    token: str | None = None
    garbled = False
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            token = value.strip()
        else:
            garbled = True
    if token is None and not (email and key):
        if garbled:
            raise AuthenticationFailed("the Authorization header must be 'Bearer <token>'")
        raise MissingCredentials()
    return Credentials(token=token, email=email, key=key)


def _authenticator_of(request: Request) -> Authenticator:
    authenticator: Authenticator = request.app.state.stepline_authenticator
    return authenticator


async def authenticated_principal(request: Request) -> Principal:
    """The caller, who may write only if the method is a read or the credential allows it."""
    credentials = read_credentials(request)
    principal = await _authenticator_of(request).authenticate(
        credentials.token, credentials.email, credentials.key
    )
    if principal is None:
        raise AuthenticationFailed()
    if request.method in WRITE_METHODS and not principal.can_write:
        raise PermissionDenied("this token is read-only")
    return principal


async def authorized_account(request: Request, account_id: str) -> Principal:
    """For ``/accounts/{account_id}/...``: the caller, who must own the account.

    Another account's id gets 403 whether or not that account exists, so ids cannot be probed.
    """
    principal = await authenticated_principal(request)
    if not hmac.compare_digest(
        principal.account_id.encode("utf-8", "surrogatepass"),
        account_id.encode("utf-8", "surrogatepass"),
    ):
        raise PermissionDenied("this credential belongs to another account")
    return principal
