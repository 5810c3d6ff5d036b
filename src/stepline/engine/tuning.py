"""Process-wide settings for a process whose job is to run Stepline (serve, worker)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Coroutine
from typing import Any

from stepline.engine.loop_watch import LoopWatch

__all__ = ["run_owned_process", "tune_garbage_collector"]


def tune_garbage_collector() -> None:
    """Collect young objects less often and never rescan the objects loaded at start.

    An engine keeps thousands of instances' coroutines and records alive; with CPython's
    default thresholds the collector rescans them so often that it took a quarter of the
    event loop's time in the throughput benchmark. Call it once, after imports, in a
    process that Stepline owns; an embedding application decides for itself.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def run_owned_process(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` as the whole of a process Stepline owns (``serve``, ``worker``): the
    collector tuned, on uvloop when it is installed, and a warning when something holds up
    the event loop (:class:`LoopWatch`)."""
    tune_garbage_collector()
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        asyncio.run(_watched(main))
    else:
        uvloop.run(_watched(main))


async def _watched(main: Coroutine[Any, Any, None]) -> None:
    watch = LoopWatch()
    watch.start()
    try:
        await main
    finally:
        watch.stop()
