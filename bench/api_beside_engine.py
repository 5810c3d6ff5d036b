"""``python -m bench.api_beside_engine``: creates from a process without an engine, beside a
busy engine on the same SQLite file.

A SQLite file has one engine, and other processes may write it too: an API served with
``stepline serve --no-engine``, say. A child process runs the file's engine on the throughput
workload (N instances of K trivial steps, created in its own process in batches of 100), so
that its writer commits back to back; meanwhile this process, an engine-less Stepline on the
same file, creates one instance at a time for S seconds. Printed: how many creates got
through, and their latency (p50, p99, max).

Two ways for both processes' writers to wait for the file's write lock, in turn round after
round, each on a fresh file:

- ``stepline``: Stepline's writer, which tries again every 0.1 ms
  (``stepline.store.sqlite_lock_wait``);
- ``sqlite``: SQLite's own busy handler (``busy_timeout``), which sleeps 1, 2, 5, 10 and up
  to 100 ms between its tries, as Stepline's writer did before.

    python -m bench.api_beside_engine                     # 3 rounds, ~1 min
    python -m bench.api_beside_engine --rounds 5 --seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import time
from pathlib import Path
from typing import Any

from bench._common import fresh_dir
from bench.shared_file_trial import BusyHandlerStore
from stepline.engine.tuning import tune_garbage_collector
from stepline.store.sqlite import SqliteStore

WAITS = ("stepline", "sqlite")


def _store(path: Path, wait: str) -> SqliteStore:
    return SqliteStore(path) if wait == "stepline" else BusyHandlerStore(path)


def engine_child(path: str, wait: str, instances: int, steps: int, busy: Any, done: Any) -> None:
    """The file's engine: create the workload, say so, and run until told to stop."""
    tune_garbage_collector()
    asyncio.run(_engine(Path(path), wait, instances, steps, busy, done))


async def _engine(path: Path, wait: str, instances: int, steps: int, busy: Any, done: Any) -> None:
    from bench.workflows import Trivial
    from stepline import Stepline

    async with Stepline(_store(path, wait), account_id="bench") as stepline:
        flow = await stepline.register("trivial", Trivial, script_name="bench.workflows")
        await flow.create_batch([{"params": {"steps": steps}}] * 100)
        busy.set()
        for first in range(100, instances, 100):
            count = min(100, instances - first)
            await flow.create_batch([{"params": {"steps": steps}}] * count)
        await asyncio.to_thread(done.wait)


async def creates_beside(path: Path, wait: str, seconds: float) -> list[float]:
    """Create one instance at a time for ``seconds`` from an engine-less Stepline; each
    create's latency in seconds."""
    from bench.workflows import Trivial
    from stepline import Stepline

    latencies = []
    async with Stepline(_store(path, wait), account_id="bench", run_engine=False) as api:
        flow = await api.register("beside", Trivial, script_name="bench.workflows")
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            started = time.perf_counter()
            await flow.create(params={"steps": 1})
            latencies.append(time.perf_counter() - started)
    return latencies


def run_once(wait: str, instances: int, steps: int, seconds: float) -> list[float]:
    context = multiprocessing.get_context("spawn")
    busy, done = context.Event(), context.Event()
    with fresh_dir() as folder:
        path = folder / "stepline.sqlite3"
        engine = context.Process(
            target=engine_child, args=(str(path), wait, instances, steps, busy, done)
        )
        engine.start()
        try:
            if not busy.wait(timeout=60):
                raise RuntimeError(f"the engine process did not start (exit {engine.exitcode})")
            return asyncio.run(creates_beside(path, wait, seconds))
        finally:
            done.set()
            engine.join(timeout=60)


def _ms(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))] * 1000


def main(rounds: int, instances: int, steps: int, seconds: float) -> None:
    print(f"engine: {instances} x {steps} steps; creates beside it for {seconds:g} s; FULL")
    print(f"{'round':>5} {'wait':>8} {'creates':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    figures: dict[str, list[tuple[int, float, float, float]]] = {wait: [] for wait in WAITS}
    for round_number in range(1, rounds + 1):
        for wait in WAITS:
            latencies = run_once(wait, instances, steps, seconds)
            row = (len(latencies), _ms(latencies, 0.5), _ms(latencies, 0.99), max(latencies) * 1000)
            figures[wait].append(row)
            print(
                f"{round_number:>5} {wait:>8} {row[0]:>8} {row[1]:>8.1f} {row[2]:>8.1f} "
                f"{row[3]:>8.0f}"
            )
    print("medians of the rounds:")
    for wait, rows in figures.items():
        columns = [statistics.median(column) for column in zip(*rows, strict=True)]
        print(
            f"{'':>5} {wait:>8} {columns[0]:>8.0f} {columns[1]:>8.1f} {columns[2]:>8.1f} "
            f"{columns[3]:>8.0f}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--instances", type=int, default=20_000)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    main(args.rounds, args.instances, args.steps, args.seconds)
