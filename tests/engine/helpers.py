"""Small helpers shared by the engine tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from datetime import datetime
from itertools import pairwise
from typing import Any

from stepline import InstanceHandle, Stepline
from stepline.store.records import InstanceRecord
from stepline.testing import wait_for_status

FINISHED = ("complete", "errored", "terminated")


async def finished(instance: InstanceHandle, timeout: float = 10.0) -> dict[str, Any]:
    """The describe view once the instance is complete, errored or terminated."""
    return await wait_for_status(instance, FINISHED, timeout=timeout)


def ms(iso: str) -> int:
    """An ISO timestamp of the describe view as epoch milliseconds."""
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def step(view: dict[str, Any], name: str) -> dict[str, Any]:
    """The step named ``name`` (e.g. ``"charge-1"``) in a describe view."""
    for entry in view["steps"]:
        if entry.get("name") == name:
            return entry
    names = [entry.get("name") for entry in view["steps"]]
    raise AssertionError(f"no step {name!r} in {names}")


def step_names(view: dict[str, Any]) -> list[str]:
    return [entry["name"] for entry in view["steps"] if "name" in entry]


def gaps(times: list[int]) -> list[int]:
    return [b - a for a, b in pairwise(times)]


def poke(stepline: Stepline) -> None:
    """After moving a TestClock by hand: make the scheduler look at the timers again."""
    stepline.engine.wake()


async def cancelled_inside(store: Any, method: str, call: Coroutine[Any, Any, Any]) -> None:
    """Run ``call`` and cancel it from inside its call of ``store.<method>``: the method goes
    on (its write is submitted), while ``call`` ends cancelled."""
    original = getattr(store, method)
    caller: asyncio.Task[Any] | None = None

    async def cancelling(*args: Any, **kwargs: Any) -> Any:
        assert caller is not None
        caller.cancel()
        return await original(*args, **kwargs)

    setattr(store, method, cancelling)
    try:
        caller = asyncio.create_task(call)
        with contextlib.suppress(asyncio.CancelledError):
            await caller
    finally:
        setattr(store, method, original)
    assert caller.cancelled()


async def stored_instance(stepline: Stepline, workflow: str, instance_id: str) -> InstanceRecord:
    """The store's row of an instance, for a test that changes it as another process would."""
    stored = await stepline.store.get_workflow(stepline.account_id, workflow)
    assert stored is not None
    record = await stepline.store.get_instance(stored.id, instance_id)
    assert record is not None
    return record
