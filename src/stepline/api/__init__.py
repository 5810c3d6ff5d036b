"""The Cloudflare v4-compatible HTTP API: app factory, auth, envelope and errors."""

from stepline.api.app import API_PREFIX, create_app
from stepline.api.auth import (
    Authenticator,
    ChainAuthenticator,
    Principal,
    StaticTokenAuthenticator,
)

__all__ = [
    "API_PREFIX",
    "Authenticator",
    "ChainAuthenticator",
    "Principal",
    "StaticTokenAuthenticator",
    "create_app",
]
