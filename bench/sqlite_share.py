"""``python -m bench.sqlite_share``: SQLite's own share of a step's write, on one thread.

Creates N instances, then writes one batch of N step rows at a time exactly as the writer
thread would (one fenced many-row statement, then ``COMMIT``), on a connection of its own
with nothing else running: no event loop, no second thread, no GIL changing hands. What it
prints is what the writer would cost if taking turns with the loop cost nothing.

    python -m bench.sqlite_share                    # 1,000 instances, 10 batches, FULL
    python -m bench.sqlite_share --instances 2000 --batches 20 --synchronous NORMAL

With ``--inserts``, it times a create batch's write instead: 100 new instances at a time,
with random ids (version 4 UUIDs, as the engine makes them) and then with ids in order, on a
table that already holds ``--instances`` rows; each part of the write on its own.

    python -m bench.sqlite_share --inserts --instances 30000 --batches 30
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import time
from pathlib import Path

from bench._common import fresh_dir
from bench.workflows import Trivial
from stepline import Stepline
from stepline.engine.instances import new_instance_record, random_instance_ids
from stepline.store.records import Attempt, StepRecord, WorkflowRecord
from stepline.store.sqlite import _STEPS_MANY, _fenced_step_params
from stepline.store.sqlite_instances import _insert_part, _instance_values
from stepline.store.sqlite_queries import DELETE_EXPIRED_IDS, TOUCH_TRIGGERED, UPSERT_STEP_FENCED
from stepline.store.sqlite_rows import marks
from stepline.store.sqlite_writes import FencedWrite, run_fenced


async def create_instances(path: Path, instances: int) -> WorkflowRecord:
    stepline = Stepline(f"sqlite:///{path}", account_id="bench", run_engine=False)
    await stepline.start()
    try:
        flow = await stepline.register("trivial", Trivial, script_name="bench.workflows")
        for first in range(0, instances, 100):
            await flow.create_batch([{"params": {"steps": 1}}] * min(100, instances - first))
        workflow = await stepline.store.get_workflow("bench", "trivial")
        assert workflow is not None
        return workflow
    finally:
        await stepline.store.close()


def step_write(pk: int, index: int) -> tuple[FencedWrite, None, None, None]:
    """One completed step's write, as the runner hands it to the writer (generation 0:
    the instances were never claimed)."""
    record = StepRecord(
        instance_pk=pk,
        key=f"do:1:s{index}",
        seq=index,
        kind="do",
        name=f"s{index}-1",
        status="complete",
        start=1,
        end=2,
        config='{"retries":{"limit":5,"delay":1000,"backoff":"exponential"},"timeout":600000}',
        output=str(index),
    )
    record.attempts.append(Attempt(start=1, end=2, success=True))
    params = _fenced_step_params(record, pk, 0)
    return FencedWrite(UPSERT_STEP_FENCED, params, pk, 0, many=_STEPS_MANY), None, None, None


def measure(path: Path, batches: int, synchronous: str) -> tuple[list[float], list[float]]:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        pks = [pk for (pk,) in conn.execute("SELECT pk FROM instances")]
        statement_ms, commit_ms = [], []
        for index in range(batches):
            writes = [step_write(pk, index) for pk in pks]
            conn.execute("BEGIN IMMEDIATE")
            started = time.perf_counter()
            outcomes = run_fenced(conn, writes)
            ran = time.perf_counter()
            conn.execute("COMMIT")
            committed = time.perf_counter()
            if any(error is not None for _, _, error, _ in outcomes):
                raise RuntimeError("a step write was fenced out")
            statement_ms.append((ran - started) * 1000)
            commit_ms.append((committed - ran) * 1000)
        return statement_ms, commit_ms
    finally:
        conn.close()


def measure_inserts(
    path: Path, workflow: WorkflowRecord, batches: int, synchronous: str, *, in_order: bool
) -> dict[str, list[float]]:
    """CPU ms of each part of a 100-instance create, as ``insert_instances`` writes it."""
    conn = sqlite3.connect(path, isolation_level=None)
    parts: dict[str, list[float]] = {"expired ids": [], "insert": [], "touch": [], "commit": []}
    try:
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        for batch in range(batches):
            if in_order:
                ids = [f"in-order-{batch:05d}-{n:03d}" for n in range(100)]
            else:
                ids = random_instance_ids(100)
            now = int(time.time() * 1000)
            records = [
                new_instance_record(workflow, i, "{}", now=now, trigger_source="api") for i in ids
            ]
            values = [v for r in records for v in _instance_values(r)]
            conn.execute("BEGIN IMMEDIATE")
            marks_at = [time.thread_time()]
            conn.execute(DELETE_EXPIRED_IDS.format(marks=marks(100)), (workflow.id, now, *ids))
            marks_at.append(time.thread_time())
            _insert_part(conn, records, values)
            marks_at.append(time.thread_time())
            conn.execute(TOUCH_TRIGGERED, (now, workflow.id))
            marks_at.append(time.thread_time())
            conn.execute("COMMIT")
            marks_at.append(time.thread_time())
            for times, start, end in zip(parts.values(), marks_at, marks_at[1:], strict=False):
                times.append((end - start) * 1000)
        return parts
    finally:
        conn.close()


def main_inserts(instances: int, batches: int, synchronous: str) -> None:
    with fresh_dir() as folder:
        path = folder / "stepline.sqlite3"
        workflow = asyncio.run(create_instances(path, instances))
        print(f"creates of 100 on {instances} rows, {batches} batches each, {synchronous}")
        print("CPU ms a batch (median): " + ", ".join(["expired ids", "insert", "touch", "commit"]))
        for in_order in (False, True, False):
            parts = measure_inserts(path, workflow, batches, synchronous, in_order=in_order)
            medians = [statistics.median(times) for times in parts.values()]
            label = "in order" if in_order else "random"
            print(
                f"{label:>9}: "
                + ", ".join(f"{m:.3f}" for m in medians)
                + f"; all {sum(medians):.3f}"
            )


def main(instances: int, batches: int, synchronous: str) -> None:
    with fresh_dir() as folder:
        path = folder / "stepline.sqlite3"
        asyncio.run(create_instances(path, instances))
        statement_ms, commit_ms = measure(path, batches, synchronous)
    print(f"{instances} step rows a batch, {batches} batches, synchronous={synchronous}")
    for what, values in (("statement", statement_ms), ("commit", commit_ms)):
        median = statistics.median(values)
        print(
            f"{what:>9}: median {median:.2f} ms ({min(values):.2f}-{max(values):.2f}), "
            f"{median * 1000 / instances:.2f} µs a row"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=1_000)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--synchronous", default="FULL", choices=["FULL", "NORMAL"])
    parser.add_argument("--inserts", action="store_true", help="time creates, not step writes")
    args = parser.parse_args()
    if args.inserts:
        main_inserts(args.instances, args.batches, args.synchronous)
    else:
        main(args.instances, args.batches, args.synchronous)
