"""``python -m bench.shared_file_trial``: the most that engine processes sharing one SQLite file
could give the throughput scenario.

An experiment, not a mode of Stepline: a SQLite file has one engine, and a second is
refused (``EngineAlreadyRunning``); the trial sets that lock aside. Here each of P child
processes opens a Stepline of its own on the same file, registers a workflow of its own and,
from a common start, creates and runs its share of N instances of K trivial steps (the
throughput scenario's workload, split in advance: no process waits for work, claims another's
or tells another of it, so this is a ceiling, not a design). The time is from the first create
in any process to the last completion in any process. The process counts take turns, round
after round, each on a fresh file.

Two ways to wait for SQLite's write lock, which the processes' writers now contend for:

- ``--lock spin`` (the default): the writer's connection tries again every 0.1 ms, as
  Stepline's writer does (``stepline.store.sqlite_lock_wait``);
- ``--lock sqlite``: SQLite's own busy handler (``busy_timeout``), which sleeps 1, 2, 5,
  10 ms and longer between its tries, as Stepline's writer did before.

    python -m bench.shared_file_trial               # 1 and 2 processes, 1,000 x 3, 5 rounds
    python -m bench.shared_file_trial --lock sqlite --rounds 3
    python -m bench.shared_file_trial --instances 10000 --steps 10 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import queue
import sqlite3
import statistics
import time
from pathlib import Path
from typing import Any

from bench._common import fresh_dir, wait_complete
from stepline.engine.tuning import tune_garbage_collector
from stepline.store.sqlite import SqliteStore


class SharedStore(SqliteStore):
    """The SQLite store without its engine lock: the one thing Stepline does to keep a
    second engine off a SQLite file, set aside because that is what the trial measures. Its
    writer waits for another process's lock as Stepline's does: it tries again every 0.1 ms
    (``stepline.store.sqlite_lock_wait``)."""

    def hold_engine(self, owner: str) -> None:
        """Hold nothing."""


class BusyHandlerStore(SharedStore):
    """:class:`SharedStore` whose writer waits in SQLite's busy handler instead (as Stepline's
    writer did before it tried again itself)."""

    def _connect_writer(self) -> sqlite3.Connection:
        return self._set_up_writer(self._connect())  # with busy_timeout: SQLite's handler


def child(*args: Any) -> None:
    """One engine process (``_child``'s arguments): open, register, say ready, wait for the
    start, run its share."""
    tune_garbage_collector()  # as every benchmark's child process does
    asyncio.run(_child(*args))


async def _child(
    path: str,
    index: int,
    instances: int,
    steps: int,
    lock: str,
    ready: Any,
    go: Any,
    results: Any,
) -> None:
    from bench.workflows import Trivial
    from stepline import Stepline

    store = SharedStore(Path(path)) if lock == "spin" else BusyHandlerStore(Path(path))
    name = f"trivial-{index}"
    async with Stepline(store, account_id="bench") as stepline:
        flow = await stepline.register(name, Trivial, script_name="bench.workflows")
        ready.put(index)
        await asyncio.to_thread(go.wait)
        started = time.monotonic()
        for first in range(0, instances, 100):
            count = min(100, instances - first)
            await flow.create_batch([{"params": {"steps": steps}}] * count)
        await wait_complete(stepline, name, instances)
        results.put((started, time.monotonic()))


def _wait_ready(ready: Any, process: Any) -> None:
    """Until ``process`` says it is ready; an error if it ends first."""
    while True:
        try:
            ready.get(timeout=0.2)
            return
        except queue.Empty:
            if not process.is_alive():
                raise RuntimeError(f"an engine process ended with {process.exitcode}") from None


def run_once(processes: int, instances: int, steps: int, lock: str) -> tuple[float, list[float]]:
    """Steps a second over all processes, and each process's own time in seconds."""
    context = multiprocessing.get_context("spawn")
    ready, results, go = context.Queue(), context.Queue(), context.Event()
    with fresh_dir() as folder:
        path = str(folder / "stepline.sqlite3")
        shares = [instances // processes + (i < instances % processes) for i in range(processes)]
        children = []
        for index, share in enumerate(shares):
            process = context.Process(
                target=child, args=(path, index, share, steps, lock, ready, go, results)
            )
            process.start()
            children.append(process)
            _wait_ready(ready, process)  # one at a time: each opens the file after the last
        go.set()
        spans = [results.get(timeout=600) for _ in children]
        for process in children:
            process.join(timeout=60)
    first = min(start for start, _ in spans)
    last = max(end for _, end in spans)
    return instances * steps / (last - first), [end - start for start, end in spans]


def main(counts: list[int], instances: int, steps: int, rounds: int, lock: str) -> None:
    print(f"{instances} x {steps} steps, synchronous=FULL, lock={lock}, one file")
    print(f"{'round':>5} {'processes':>9} {'steps/s':>9}  each process's time (s)")
    rates: dict[int, list[float]] = {count: [] for count in counts}
    for round_number in range(1, rounds + 1):
        for count in counts:
            rate, times = run_once(count, instances, steps, lock)
            rates[count].append(rate)
            each = ", ".join(f"{t:.3f}" for t in times)
            print(f"{round_number:>5} {count:>9} {rate:>9,.0f}  {each}")
    print("median steps/s, and against 1 process (the median of the rounds' ratios):")
    base = rates.get(1)
    for count, values in rates.items():
        line = f"{count:>5} processes: {statistics.median(values):>9,.0f}"
        if base is not None and count != 1:
            ratios = [v / b for v, b in zip(values, base, strict=True)]
            spread = f"rounds {min(ratios):.2f}-{max(ratios):.2f}"
            line += f"  {statistics.median(ratios):.2f}x ({spread})"
        print(line)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", default="1,2", help="process counts, e.g. 1,2")
    parser.add_argument("--instances", type=int, default=1_000)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--lock", default="spin", choices=["spin", "sqlite"])
    args = parser.parse_args()
    process_counts = [int(s) for s in args.processes.split(",")]
    main(process_counts, args.instances, args.steps, args.rounds, args.lock)
