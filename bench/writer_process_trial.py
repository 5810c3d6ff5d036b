"""``python -m bench.writer_process_trial``: what a step writer in a process of its own gives.

An experiment, not a mode of Stepline. While it runs, every step write (the runner's
``UPSERT_STEP_FENCED``) goes to a child process instead of the store's writer thread: each
loop turn's step writes are pickled into one message; the child runs them as the writer
thread would (one fenced many-row statement, then ``COMMIT``, with every message waiting in
its pipe in one transaction) and answers with the writes its fence turned away; the loop
reads the answer from the pipe and settles the futures. Every other write (claims, ends,
inserts) still goes to the writer thread, so the two writers share SQLite's write lock.

It prints ``bench.split``'s rows for the real writer and for the trial, in turn:

    python -m bench.writer_process_trial                  # 2,000 instances, 3 and 10 steps, 5 runs
    python -m bench.writer_process_trial --rounds 2 --synchronous NORMAL

The trial keeps none of the writer thread's guarantees beyond the happy path (no ordering
with queued writes of the same step, no recovery when the child dies): it only measures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import pickle
import sqlite3
from collections import deque
from collections.abc import Iterator
from multiprocessing.connection import Connection
from typing import Any

from bench.split import medians
from stepline.engine.tuning import tune_garbage_collector
from stepline.errors import StaleRunError
from stepline.store.sqlite import _STEPS_MANY
from stepline.store.sqlite_queries import UPSERT_STEP_FENCED
from stepline.store.sqlite_writer import SqliteWriter
from stepline.store.sqlite_writes import FencedWrite, run_fenced


def child_main(path: str, synchronous: str, pipe: Connection) -> None:
    """The child: commit each message's step writes; answer with the fenced-out indexes."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    while True:
        try:
            messages = [pipe.recv_bytes()]
        except EOFError:
            return
        while pipe.poll():
            messages.append(pipe.recv_bytes())
        batches = [pickle.loads(m) for m in messages]
        writes = [(_step_write(params), None, None, None) for batch in batches for params in batch]
        conn.execute("BEGIN IMMEDIATE")
        outcomes = run_fenced(conn, writes)
        conn.execute("COMMIT")
        at = 0
        for batch in batches:
            stale = [i for i in range(len(batch)) if outcomes[at + i][2] is not None]
            pipe.send_bytes(pickle.dumps(stale))
            at += len(batch)


def _step_write(params: tuple[Any, ...]) -> FencedWrite:
    """A step write from its parameters, which end with the instance's pk and generation."""
    return FencedWrite(UPSERT_STEP_FENCED, params, params[-2], params[-1], many=_STEPS_MANY)


class StepWriterProcess:
    """The parent's side: one message per loop turn, answers read on the loop."""

    def __init__(self, path: str, synchronous: str) -> None:
        context = multiprocessing.get_context("spawn")
        self._pipe, child_end = context.Pipe()
        self._child = context.Process(
            target=child_main, args=(path, synchronous, child_end), daemon=True
        )
        self._child.start()
        child_end.close()
        self._turn: list[tuple[tuple[Any, ...], asyncio.Future[None], bool]] = []
        self._sent: deque[list[tuple[tuple[Any, ...], asyncio.Future[None], bool]]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None

    def submit(self, write: FencedWrite) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
            loop.add_reader(self._pipe.fileno(), self._answered)
        if not self._turn:
            loop.call_soon(self._flush)
        future: asyncio.Future[None] = loop.create_future()
        self._turn.append((write.params, future, write.quiet))
        return future

    def _flush(self) -> None:
        batch, self._turn = self._turn, []
        self._sent.append(batch)
        self._pipe.send_bytes(pickle.dumps([params for params, _, _ in batch]))

    def _answered(self) -> None:
        while self._pipe.poll():
            stale = set(pickle.loads(self._pipe.recv_bytes()))
            for index, (params, future, quiet) in enumerate(self._sent.popleft()):
                if future.done():
                    continue
                if index in stale and not quiet:
                    pk, generation = params[-2], params[-1]
                    future.set_exception(
                        StaleRunError(f"instance {pk} moved on from generation {generation}")
                    )
                else:
                    future.set_result(None)

    def close(self) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self._pipe.fileno())
        self._pipe.close()
        self._child.join(timeout=10)


@contextlib.contextmanager
def steps_in_a_process(synchronous: str) -> Iterator[None]:
    """While inside: each SQLite store's step writes go to a child process of its own."""
    real_start, real_run, real_stop = SqliteWriter.start, SqliteWriter.run, SqliteWriter.stop
    children: dict[int, StepWriterProcess] = {}

    def start(self: SqliteWriter) -> None:
        real_start(self)
        conn = self._connect()
        path = conn.execute("PRAGMA database_list").fetchone()[2]
        conn.close()
        children[id(self)] = StepWriterProcess(path, synchronous)

    def run(self: SqliteWriter, operation: Any, *, key: object = None) -> Any:
        child = children.get(id(self))
        if child is None or not (
            isinstance(operation, FencedWrite) and operation.sql == UPSERT_STEP_FENCED
        ):
            return real_run(self, operation, key=key)
        return child.submit(operation)

    def stop(self: SqliteWriter) -> None:
        child = children.pop(id(self), None)
        if child is not None:
            child.close()
        real_stop(self)

    SqliteWriter.start = start  # type: ignore[method-assign]
    SqliteWriter.run = run  # type: ignore[method-assign]
    SqliteWriter.stop = stop  # type: ignore[method-assign]
    try:
        yield
    finally:
        SqliteWriter.start = real_start  # type: ignore[method-assign]
        SqliteWriter.run = real_run  # type: ignore[method-assign]
        SqliteWriter.stop = real_stop  # type: ignore[method-assign]


async def main(instances: int, step_counts: list[int], runs: int, rounds: int, sync: str) -> None:
    print(f"{instances} instances, synchronous={sync}, median of {runs} runs, µs per instance")
    print(f"{'writer':>8} {'steps':>5} {'wall':>8} {'loop CPU':>9} {'process CPU':>12}")
    for _ in range(rounds):
        for label in ("thread", "process"):
            trial = steps_in_a_process(sync) if label == "process" else contextlib.nullcontext()
            with trial:
                for steps in step_counts:
                    split = await medians(instances, steps, runs, sync)
                    print(f"{label:>8} {steps:>5} {split.row()}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=2_000)
    parser.add_argument("--steps", default="3,10", help="step counts, e.g. 3,10")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=1, help="thread, then process, this often")
    parser.add_argument("--synchronous", default="FULL", choices=["FULL", "NORMAL"])
    args = parser.parse_args()
    tune_garbage_collector()
    counts = [int(s) for s in args.steps.split(",")]
    asyncio.run(main(args.instances, counts, args.runs, args.rounds, args.synchronous))
