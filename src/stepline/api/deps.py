"""Checks of path parameters that only the API has (names and ids are in ``validation``)."""

from __future__ import annotations

from stepline.errors import InvalidRequest

__all__ = ["check_version_id"]


def check_version_id(version_id: str) -> str:
    """Version ids are uuids the client made; only refuse what could never be one of its ids."""
    if not 1 <= len(version_id) <= 100 or not version_id.isprintable():
        raise InvalidRequest(f"version id {version_id!r} must be 1-100 printable characters")
    return version_id
