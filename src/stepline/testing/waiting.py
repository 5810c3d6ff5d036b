"""Waiting for an instance to reach a status, without sleeping blindly in tests."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import Any

from stepline.client.handles import InstanceHandle

__all__ = ["wait_for_status"]

_ENDED = frozenset(("complete", "errored", "terminated"))


async def wait_for_status(
    instance: InstanceHandle,
    status: str | Collection[str],
    *,
    timeout: float = 10.0,
    interval: float = 0.01,
) -> dict[str, Any]:
    """Poll until ``instance`` has ``status`` (or one of several); returns its describe view.

    Raises ``TimeoutError`` naming the last status seen: after ``timeout`` seconds, or at once
    when the instance has ended (complete, errored, terminated) in a status not asked for.
    """
    wanted = {status} if isinstance(status, str) else set(status)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    seen: dict[str, Any] = {}
    while loop.time() < deadline:
        seen = await instance.status()
        if seen["status"] in wanted:
            return seen
        if seen["status"] in _ENDED:
            raise TimeoutError(
                f"instance {instance.id} ended {seen['status']!r}, not {sorted(wanted)} "
                f"(error: {seen.get('error')})"
            )
        await asyncio.sleep(interval)
    raise TimeoutError(
        f"instance {instance.id} is {seen.get('status')!r}, not {sorted(wanted)} "
        f"after {timeout}s (error: {seen.get('error')})"
    )
