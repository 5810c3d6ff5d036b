"""Kill an engine process with SIGKILL at random moments; nothing recorded may run twice."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from stepline import Stepline

ROOT = Path(__file__).resolve().parents[2]
INSTANCES = int(os.environ.get("STEPLINE_CRASH_INSTANCES", "200"))
KILLS = int(os.environ.get("STEPLINE_CRASH_KILLS", "6"))


def worker(db: Path, ledger: Path, *args: str) -> subprocess.Popen[bytes]:
    log = db.with_name(f"worker-{args[0]}.log").open("ab")
    with log:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.durability.worker", str(db), str(ledger), *args],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )


def finish(proc: subprocess.Popen[bytes], db: Path, timeout: float = 60) -> None:
    proc.wait(timeout=timeout)
    log = db.with_name(f"worker-{proc.args[5]}.log").read_text()  # type: ignore[index]
    assert proc.returncode == 0, log[-3000:]


def statuses(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT status, COUNT(*) FROM instances GROUP BY status"))


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_and_repeats_nothing(tmp_path: Path) -> None:
    rng = random.Random(int(os.environ.get("STEPLINE_CRASH_SEED", time.time())))
    db, ledger = tmp_path / "crash.sqlite3", tmp_path / "ledger.txt"
    finish(worker(db, ledger, "create", str(INSTANCES)), db)

    for kill in range(KILLS):
        proc = worker(db, ledger, "run")
        time.sleep(rng.uniform(0.4, 1.6))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        if kill == KILLS // 2:
            finish(worker(db, ledger, "send-second"), db)

    proc = worker(db, ledger, "run")
    try:
        deadline = time.time() + 120
        while time.time() < deadline and statuses(db).get("complete", 0) < INSTANCES:
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)

    assert statuses(db) == {"complete": INSTANCES}
    check_outputs_and_ledger(db, ledger)


def check_outputs_and_ledger(db: Path, ledger: Path) -> None:
    runs: dict[tuple[str, str], list[str]] = defaultdict(list)
    for line in ledger.read_text().splitlines():
        instance_id, step, token = line.split()
        runs[(instance_id, step)].append(token)

    async def read() -> None:
        async with Stepline(f"sqlite:///{db}", account_id="durability", run_engine=False) as s:
            for n in range(INSTANCES):
                detail = await s.client.describe_instance("durability", "crashy", f"i{n}")
                assert detail["output"]["total"] == sum(range(5))
                # Each wait got exactly one event, first-in first-out, none twice.
                assert detail["output"]["events"] == [{"seq": 1}, {"seq": 2}]
                steps = [x for x in detail["steps"] if x["type"] == "step"]
                assert len(steps) == 5
                for x in steps:
                    key = (f"i{n}", "work-" + x["name"].split(" ")[1].split("-")[0])
                    recorded = x["output"]["token"]
                    # The recorded execution is the last one: nothing ran after the success
                    # was recorded.
                    assert runs[key][-1] == recorded, (key, runs[key], recorded)

    asyncio.run(read())
    with sqlite3.connect(db) as conn:
        unconsumed = conn.execute("SELECT COUNT(*) FROM events WHERE consumed_by IS NULL")
        assert unconsumed.fetchone()[0] == 0
        consumers = conn.execute(
            "SELECT COUNT(*), COUNT(DISTINCT instance_pk || consumed_by) FROM events"
        ).fetchone()
        assert consumers[0] == consumers[1] == 2 * INSTANCES
