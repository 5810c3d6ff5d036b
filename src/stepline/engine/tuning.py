"""Process-wide settings for a process whose job is to run Stepline (serve, worker)."""

from __future__ import annotations

import gc

__all__ = ["tune_garbage_collector"]


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
