"""Scenario 5, idle scale: N instances that sleep until a due time, in one engine process.

Measured: the time to create them (``create_batch`` of 100, in-process, with the engine
running and parking them as they come), the engine process's resident memory once all are
parked (VmRSS from ``/proc/self/status``, after a garbage collection, against the baseline
before creating any), and how late each one woke: the step after the sleep records
``now - due``. Due times are spread evenly over a window that starts once every instance is
parked, at ``wake_rate`` instances per second (default 1,000/s), so the engine is never
asked for more than that rate. 100,000 by default; 1,000,000 with ``--million``.
Also reported: the highest resident memory seen while they wake (sampled at each poll), and
what a full garbage collection finds once all have woken.
"""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any

from bench._common import PeakRss, count_status, fresh_dir, percentile, rss_mb, wait_count
from bench._harness import Case, Metric, Size

NAME = "idle scale"
METRICS = (
    Metric("create_per_s", "inst/s", True),
    Metric("parked_rss_mb", "MB", False),
    Metric("rss_growth_mb", "MB", False),
    Metric("late_p50_ms", "ms", False),
    Metric("late_p99_ms", "ms", False),
    Metric("waking_rss_peak_mb", "MB", False),
)


def cases(size: Size) -> list[Case]:
    rate = int(size.options.get("wake_rate") or 1_000)
    counts = [2_000] if size.quick else [100_000] + ([1_000_000] if size.million else [])
    return [
        Case(
            f"stepline local {count:,} sleepers FULL, wake {rate}/s",
            f"{__name__}:local",
            {"synchronous": "FULL", "instances": count, "wake_rate": rate},
            METRICS,
            timeout_s=7_200,
        )
        for count in counts
    ]


async def local(synchronous: str, instances: int, wake_rate: int) -> dict[str, Any]:
    from bench import workflows
    from stepline import Stepline

    with fresh_dir() as folder:
        async with Stepline(
            f"sqlite:///{folder / 'stepline.sqlite3'}", account_id="bench", synchronous=synchronous
        ) as stepline:
            flow = await stepline.register(
                "sleeper", workflows.Sleeper, script_name="bench.workflows"
            )
            await asyncio.sleep(0.5)
            gc.collect()
            baseline = rss_mb()
            # Generous lead time: creation runs at a few thousand per second on this machine.
            lead_ms = 10_000 + instances // 2
            due_from = int(time.time() * 1000) + lead_ms
            spread_ms = instances * 1000 // wake_rate
            started = time.perf_counter()
            for first in range(0, instances, 100):
                await flow.create_batch(
                    [
                        {"params": {"wake_at": due_from + n * spread_ms // instances}}
                        for n in range(first, min(instances, first + 100))
                    ]
                )
            created = time.perf_counter() - started
            await wait_count(
                lambda: count_status(stepline, "sleeper", "waiting"), instances, interval=0.25
            )
            parked_at_ms = time.time() * 1000
            in_memory = len(stepline.engine.runners)
            gc.collect()
            parked = rss_mb()
            peak = PeakRss()
            await wait_count(
                lambda: peak.sampled(count_status(stepline, "sleeper", "complete")),
                instances,
                interval=0.25,
                timeout=lead_ms / 1000 + spread_ms / 1000 + 600,
            )
            lateness = workflows.WAKE_LATENESS_MS
            # What the waking left to the cyclic collector, and the memory once it has run.
            unreachable = gc.collect()
            after_collect = rss_mb()
            # The lateness list is the benchmark's own: a float and a slot per instance.
            own_mb = (len(lateness) * (24 + 8)) / 2**20
    return {
        "create_per_s": instances / created,
        "create_s": created,
        "baseline_rss_mb": baseline,
        "parked_rss_mb": parked,
        "rss_growth_mb": parked - baseline,
        "runners_in_memory_parked": in_memory,
        "parked_before_first_due": parked_at_ms < due_from,
        "waking_rss_peak_mb": peak.mb,
        "waking_rss_peak_parts_mb": peak.parts,
        "woken_gc_unreachable": unreachable,
        "woken_rss_after_collect_mb": after_collect,
        "bench_lateness_list_mb": own_mb,
        "wake_rate_per_s": wake_rate,
        "late_p50_ms": percentile(lateness, 50),
        "late_p99_ms": percentile(lateness, 99),
        "late_max_ms": max(lateness),
        "woke": len(lateness),
    }
