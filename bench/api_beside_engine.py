"""``python -m bench.api_beside_engine``: creates from a process without an engine, beside a
busy engine on the same SQLite file.

A SQLite file has one engine, and other processes may write it too: an API served with
``stepline serve --no-engine``, say. A child process runs the file's engine on the throughput
workload (N instances of K trivial steps, created in its own process in batches of 100), so
that its writer commits back to back; meanwhile this process, an engine-less Stepline on the
same file, creates one instance at a time for S seconds. Printed: how many creates got
through, their latency (p50, p99, max), and the engine's own steps a second over those S
seconds (the steps of its instances complete by then), against a round with nothing beside it.

Two ways for both processes' writers to wait for the file's write lock, in turn round after
round, each on a fresh file:

- ``stepline``: Stepline's writer, which tries again every 0.1 ms
  (``stepline.store.sqlite_lock_wait``);
- ``sqlite``: SQLite's own busy handler (``busy_timeout``), which sleeps 1, 2, 5, 10 and up
  to 100 ms between its tries, as Stepline's writer did before;
- ``alone``: Stepline's writer, and no creates beside the engine (its steps a second alone).

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

WAITS = ("stepline", "sqlite", "alone")


def _store(path: Path, wait: str) -> SqliteStore:
    return BusyHandlerStore(path) if wait == "sqlite" else SqliteStore(path)


def engine_child(path: str, wait: str, instances: int, steps: int, *events: Any) -> None:
    """The file's engine: create the workload, say so, run until told to stop, and report
    its steps a second from then to the stop."""
    tune_garbage_collector()
    asyncio.run(_engine(Path(path), wait, instances, steps, *events))


async def _engine(
    path: Path, wait: str, instances: int, steps: int, busy: Any, done: Any, rate: Any
) -> None:
    from bench._common import count_status
    from bench.workflows import Trivial
    from stepline import Stepline

    async with Stepline(_store(path, wait), account_id="bench") as stepline:
        flow = await stepline.register("trivial", Trivial, script_name="bench.workflows")
        await flow.create_batch([{"params": {"steps": steps}}] * 100)
        busy.set()
        started = time.perf_counter()
        for first in range(100, instances, 100):
            count = min(100, instances - first)
            await flow.create_batch([{"params": {"steps": steps}}] * count)
        await asyncio.to_thread(done.wait)
        complete = await count_status(stepline, "trivial", "complete")
        rate.put(complete * steps / (time.perf_counter() - started))


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


def run_once(wait: str, instances: int, steps: int, seconds: float) -> tuple[list[float], float]:
    """The latencies of the creates beside the engine, and the engine's steps a second."""
    context = multiprocessing.get_context("spawn")
    busy, done, rate = context.Event(), context.Event(), context.Queue()
    with fresh_dir() as folder:
        path = folder / "stepline.sqlite3"
        engine = context.Process(
            target=engine_child, args=(str(path), wait, instances, steps, busy, done, rate)
        )
        engine.start()
        try:
            if not busy.wait(timeout=60):
                raise RuntimeError(f"the engine process did not start (exit {engine.exitcode})")
            if wait == "alone":
                time.sleep(seconds)
                latencies: list[float] = []
            else:
                latencies = asyncio.run(creates_beside(path, wait, seconds))
        finally:
            done.set()
        engine_rate = float(rate.get(timeout=60))
        engine.join(timeout=60)
    return latencies, engine_rate


def _ms(values: list[float], share: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))] * 1000


def main(rounds: int, instances: int, steps: int, seconds: float) -> None:
    print(f"engine: {instances} x {steps} steps; creates beside it for {seconds:g} s; FULL")
    header = f"{'creates':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'engine steps/s':>15}"
    print(f"{'round':>5} {'wait':>8} {header}")
    figures: dict[str, list[tuple[float, ...]]] = {wait: [] for wait in WAITS}
    for round_number in range(1, rounds + 1):
        for wait in WAITS:
            latencies, engine_rate = run_once(wait, instances, steps, seconds)
            row = (
                len(latencies),
                _ms(latencies, 0.5),
                _ms(latencies, 0.99),
                _ms(latencies, 1.0),
                engine_rate,
            )
            figures[wait].append(row)
            print(f"{round_number:>5} {wait:>8} {_row(row)}")
    print("medians of the rounds:")
    for wait, rows in figures.items():
        medians = tuple(statistics.median(column) for column in zip(*rows, strict=True))
        print(f"{'':>5} {wait:>8} {_row(medians)}")


def _row(row: tuple[float, ...]) -> str:
    creates, p50, p99, most, engine_rate = row
    return f"{creates:>8.0f} {p50:>8.1f} {p99:>8.1f} {most:>8.0f} {engine_rate:>15,.0f}"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--instances", type=int, default=20_000)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    main(args.rounds, args.instances, args.steps, args.seconds)
