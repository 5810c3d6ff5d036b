"""``python -m bench.split``: where the throughput scenario's time goes, per instance.

Creates N instances of ``Trivial`` with the engine stopped, then starts the engine and times
the run alone: wall time, the event loop thread's CPU time, and the whole process's CPU time
(the loop, the SQLite writer thread and the reader threads), each per instance. Run for
several step counts, the difference between two rows divided by the difference in steps is
the cost of one step; what is left at zero steps is the cost of an instance (claim, runner,
finish). Wall time close to the process's CPU time means the threads take turns rather than
working side by side.

    python -m bench.split                       # 2,000 instances; 0, 1, 3 and 10 steps; 3 runs
    python -m bench.split --instances 5000 --steps 3,10 --runs 5 --synchronous NORMAL
    python -m bench.split --steps 3,10 --runs 5 --steps-not-written

``--steps-not-written`` is an experiment, not a mode of Stepline: each step's write is
settled in the next loop turn without reaching SQLite (instances' inserts, claims and ends
still do). What is left is the engine's own cost a step, with no writer thread beside it:
the bound on what a writer that did not share the GIL could give.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from bench._common import count_status, fresh_dir, wait_count
from bench.workflows import Trivial
from stepline import Stepline
from stepline.engine.tuning import tune_garbage_collector
from stepline.store.sqlite_queries import UPSERT_STEP_FENCED
from stepline.store.sqlite_writer import SqliteWriter
from stepline.store.sqlite_writes import FencedWrite


@dataclass(frozen=True)
class Split:
    wall_us: float
    loop_cpu_us: float
    process_cpu_us: float

    def row(self) -> str:
        """The three figures as the printed table's columns."""
        return f"{self.wall_us:>8.0f} {self.loop_cpu_us:>9.0f} {self.process_cpu_us:>12.0f}"


async def measure(instances: int, steps: int, synchronous: str) -> Split:
    """One run: per-instance wall, loop-thread CPU and process CPU of the engine's run."""
    with fresh_dir() as folder:
        stepline = Stepline(
            f"sqlite:///{folder / 'stepline.sqlite3'}",
            account_id="bench",
            synchronous=synchronous,
            run_engine=False,
        )
        await stepline.start()
        try:
            flow = await stepline.register("trivial", Trivial, script_name="bench.workflows")
            for first in range(0, instances, 100):
                count = min(100, instances - first)
                await flow.create_batch([{"params": {"steps": steps}}] * count)
            wall, loop_cpu, process_cpu = (
                time.perf_counter(),
                time.thread_time(),
                time.process_time(),
            )
            await stepline.engine.start()
            await wait_count(
                lambda: count_status(stepline, "trivial", "complete"), instances, interval=0.05
            )
            wall = time.perf_counter() - wall
            loop_cpu = time.thread_time() - loop_cpu
            process_cpu = time.process_time() - process_cpu
        finally:
            await stepline.engine.stop()
            await stepline.store.close()
    per = 1e6 / instances
    return Split(wall * per, loop_cpu * per, process_cpu * per)


async def medians(instances: int, steps: int, runs: int, synchronous: str) -> Split:
    """:func:`measure` ``runs`` times; each figure's median."""
    results = [await measure(instances, steps, synchronous) for _ in range(runs)]
    return Split(
        statistics.median(r.wall_us for r in results),
        statistics.median(r.loop_cpu_us for r in results),
        statistics.median(r.process_cpu_us for r in results),
    )


@contextlib.contextmanager
def steps_not_written() -> Iterator[None]:
    """While inside: every step write (``UPSERT_STEP_FENCED``) is settled, unwritten, in the
    loop's next turn, all of a turn's together, as the writer's delivery would."""
    real_run = SqliteWriter.run
    turn: list[asyncio.Future[Any]] = []

    def settle() -> None:
        settled = turn[:]
        turn.clear()
        for future in settled:
            future.set_result(None)

    def run(self: SqliteWriter, operation: Any, *, key: object = None) -> Any:
        if not (isinstance(operation, FencedWrite) and operation.sql == UPSERT_STEP_FENCED):
            return real_run(self, operation, key=key)
        loop = asyncio.get_running_loop()
        if not turn:
            loop.call_soon(settle)
        future = loop.create_future()
        turn.append(future)
        return future

    SqliteWriter.run = run  # type: ignore[method-assign]
    try:
        yield
    finally:
        SqliteWriter.run = real_run  # type: ignore[method-assign]


async def main(instances: int, step_counts: list[int], runs: int, synchronous: str) -> None:
    print(
        f"{instances} instances, synchronous={synchronous}, median of {runs} runs, µs per instance"
    )
    print(f"{'steps':>5} {'wall':>8} {'loop CPU':>9} {'process CPU':>12}")
    for steps in step_counts:
        print(f"{steps:>5} {(await medians(instances, steps, runs, synchronous)).row()}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=2_000)
    parser.add_argument("--steps", default="0,1,3,10", help="step counts, e.g. 1,3,10")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--synchronous", default="FULL", choices=["FULL", "NORMAL"])
    parser.add_argument(
        "--steps-not-written", action="store_true", help="an experiment: see the module's doc"
    )
    args = parser.parse_args()
    tune_garbage_collector()
    counts = [int(s) for s in args.steps.split(",")]
    with steps_not_written() if args.steps_not_written else contextlib.nullcontext():
        asyncio.run(main(args.instances, counts, args.runs, args.synchronous))
