"""``python -m bench --quick`` runs end to end and writes sane JSON (no timing assertions:
benchmarks are not timed tests). Stepline only when DBOS is not installed."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def bench_output(module: str, args: str, *, timeout: float) -> str:
    """What ``python -m module args`` printed (``args`` split at spaces), once it has
    exited 0."""
    command = [sys.executable, "-m", module, *args.split()]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_quick_bench_writes_results(tmp_path: Path) -> None:
    out = tmp_path / "results" / "bench.json"  # a folder that is not there yet, as in a clone
    command = [sys.executable, "-m", "bench", "--quick", "--runs", "1", "--scenarios", "1,2,4"]
    command += ["--json", str(out)]
    peer = importlib.util.find_spec("dbos") is not None
    if not peer:
        command.append("--no-peer")
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=280)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["machine"]["cpus"] >= 1
    assert set(report["scenarios"]) == {"1", "2", "4"}
    for scenario in report["scenarios"].values():
        rows = scenario["summary"]
        assert rows, scenario["name"]
        for row in rows:
            assert row["runs"] == 1
            assert row["min"] <= row["median"] <= row["max"]
            assert row["median"] > 0, row
        labels = {case["label"] for case in scenario["cases"]}
        assert any(label.startswith("dbos") for label in labels) == peer
        if peer:
            assert any("vs_peer" in row for row in rows)
        for label, runs in scenario["results"].items():
            assert not runs[0].get("logged"), (label, runs[0].get("logged"))  # no warnings
    throughput = report["scenarios"]["1"]["results"]
    for runs in throughput.values():
        assert runs[0]["elapsed_s"] >= runs[0]["create_s"] > 0


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.timeout(300)
def test_postgres_scenario_runs_on_a_database_of_its_own_and_drops_it(tmp_path: Path) -> None:
    from tests.store.databases import postgres_url

    url = postgres_url()
    out = tmp_path / "bench.json"
    command = [sys.executable, "-m", "bench", "--quick", "--runs", "1", "--scenarios", "6"]
    command += ["--no-peer", "--json", str(out)]
    env = {**os.environ, "STEPLINE_BENCH_POSTGRES": url}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=280)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())["scenarios"]["6"]["results"]
    assert len(results) == 3  # 1, 2 and 4 engine processes
    for runs in results.values():
        assert runs[0]["steps_per_s"] > 0
    names = asyncio.run(_databases(url))
    assert not [n for n in names if n.startswith("stepline_bench_")]  # each run dropped its own


async def _databases(url: str) -> list[str]:
    from tests.store.databases import fetch_rows

    return [row[0] for row in await fetch_rows(url, "SELECT datname FROM pg_database")]


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_split_prints_a_row_per_step_count() -> None:
    stdout = bench_output("bench.split", "--instances 40 --steps 0,2 --runs 1", timeout=110)
    fields = [line.split() for line in stdout.splitlines()]
    rows = [f for f in fields if len(f) == 4 and f[0].isdigit()]  # steps, wall, loop, process
    assert [row[0] for row in rows] == ["0", "2"]
    for row in rows:
        wall, loop_cpu, process_cpu = (float(v) for v in row[1:])
        assert wall > 0 and 0 < loop_cpu <= process_cpu


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_split_can_leave_the_steps_unwritten(tmp_path: Path) -> None:
    """The experiment's stand-in settles step writes without SQLite and only while asked:
    the run completes, its steps are nowhere in the database, and the writer is itself again
    afterwards."""
    from bench.split import steps_not_written
    from bench.workflows import Trivial

    from stepline import Stepline
    from stepline.store.sqlite_writer import SqliteWriter

    real_run = SqliteWriter.run

    async def run_one(name: str) -> dict:
        async with Stepline(f"sqlite:///{tmp_path / name}") as stepline:
            flow = await stepline.register("trivial", Trivial)
            instance = await flow.create(params={"steps": 2})
            for _ in range(500):
                view = await instance.status()
                if view["status"] == "complete":
                    return view
                await asyncio.sleep(0.01)
            raise AssertionError(view)

    with steps_not_written():
        unwritten = asyncio.run(run_one("unwritten.sqlite3"))
    assert SqliteWriter.run is real_run
    written = asyncio.run(run_one("written.sqlite3"))
    assert unwritten["output"] == written["output"] == 1
    assert unwritten["steps"] == [] and len(written["steps"]) == 2


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_sqlite_share_prints_the_statement_and_the_commit() -> None:
    stdout = bench_output("bench.sqlite_share", "--instances 50 --batches 2", timeout=110)
    lines = stdout.splitlines()
    assert lines[0] == "50 step rows a batch, 2 batches, synchronous=FULL"
    assert [line.split(":")[0].strip() for line in lines[1:]] == ["statement", "commit"]


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_writer_process_trial_prints_both_writers() -> None:
    """The trial's step writer in a child process writes every step: ``measure`` waits for
    every instance to complete, so a lost or unsettled write would hang it."""
    stdout = bench_output(
        "bench.writer_process_trial", "--instances 40 --steps 0,2 --runs 1", timeout=170
    )
    fields = [line.split() for line in stdout.splitlines()]
    rows = [f for f in fields if len(f) == 5 and f[0] in ("thread", "process")]
    assert [(row[0], row[1]) for row in rows] == [
        ("thread", "0"),
        ("thread", "2"),
        ("process", "0"),
        ("process", "2"),
    ]


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_sqlite_share_times_the_parts_of_a_create() -> None:
    stdout = bench_output(
        "bench.sqlite_share", "--inserts --instances 200 --batches 2", timeout=110
    )
    rows = [line.split(":") for line in stdout.splitlines()[2:]]
    assert [label.strip() for label, _ in rows] == ["random", "in order", "random"]
    for _, figures in rows:
        parts, total = figures.split("; all ")
        assert sum(float(p) for p in parts.split(", ")) == pytest.approx(float(total), abs=0.01)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_shared_file_trial_runs_every_process_share() -> None:
    """Each process's share completes (``wait_complete`` in the child would hang otherwise),
    and the two process counts take turns."""
    stdout = bench_output(
        "bench.shared_file_trial", "--instances 30 --steps 2 --rounds 1", timeout=170
    )
    rows = [line.split(maxsplit=3) for line in stdout.splitlines()[2:4]]
    assert [(row[0], row[1]) for row in rows] == [("1", "1"), ("1", "2")]
    assert len(rows[1][3].split(", ")) == 2  # a time for each of the two processes
    assert "2 processes:" in stdout


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_api_beside_engine_prints_both_waits() -> None:
    stdout = bench_output(
        "bench.api_beside_engine", "--rounds 1 --instances 300 --steps 2 --seconds 0.5", timeout=170
    )
    rows = [line.split() for line in stdout.splitlines()[2:5]]
    assert [row[:2] for row in rows] == [["1", "stepline"], ["1", "sqlite"], ["1", "alone"]]
    assert all(int(row[2]) > 0 for row in rows[:2])  # creates got through in both
    assert rows[2][2] == "0"  # none beside the engine alone
    assert all(float(row[-1].replace(",", "")) > 0 for row in rows)  # the engine's steps/s


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_wake_memory_prints_both_phases() -> None:
    stdout = bench_output("bench.wake_memory", "--instances 3 --steps 2 --size 20000", timeout=110)
    lines = stdout.splitlines()
    assert lines[0].startswith("3 instances x 2 results of 20,000 bytes")
    phases = [line.rsplit(None, 1) for line in lines[2:]]
    assert [p[0].split(" (")[0] for p in phases] == ["run, then park", "wake and replay"]
    assert all(float(p[1]) >= 0 for p in phases)
