"""Sleeping instances cost a row, not memory, and wake on time."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from stepline import Stepline

ROOT = Path(__file__).resolve().parents[2]
SLEEPERS = int(os.environ.get("STEPLINE_SLEEPERS", "10000"))


@pytest.mark.slow
def test_ten_thousand_sleepers_keep_memory_flat_and_wake_on_time(tmp_path: Path) -> None:
    db = tmp_path / "sleepers.sqlite3"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.durability.worker",
            str(db),
            str(tmp_path / "ledger.txt"),
            "sleepers",
            str(SLEEPERS),
            "8",
        ],
        cwd=ROOT,
        capture_output=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    report = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    # No runner stays in memory for a parked instance, and the process grew by little:
    # a sleeping instance is a row, not a coroutine.
    assert report["runners_parked"] == 0
    assert report["parked_mb"] - report["baseline_mb"] < 60, report

    async def lateness() -> list[int]:
        async with Stepline(f"sqlite:///{db}", account_id="durability", run_engine=False) as s:
            late = []
            for n in range(0, SLEEPERS, max(1, SLEEPERS // 500)):
                detail = await s.client.describe_instance("durability", "sleeper", f"s{n}")
                planned = detail["params"]["wake_at"]
                late.append(detail["output"] - planned)
            return late

    late = asyncio.run(lateness())
    assert min(late) >= 0, "an instance woke before its time"
    p99 = statistics.quantiles(late, n=100)[98]
    assert p99 < 2_000, f"p99 wake-up lateness {p99} ms"
